using System.Globalization;
using System.Text.Json.Nodes;

namespace FairMedFM.Data.Segmentation;

/// <summary>
/// A segmentation dataset card (<c>task: segmentation</c>): FairMedFM's segmentation layout (spec §2.6) — a folder
/// with <c>metadata.csv</c>, <c>image/</c> and <c>label/</c>, image and label paths in the CSV relative to that folder —
/// the class to segment (its label value), the sensitive attributes (same attribute/intersection definitions as
/// classification cards: any column, any number of groups) and, for 3-D rows, how volumes are cut into 2-D slices.
/// YAML or JSON, snake_case keys, unknown keys are errors. Example: <c>datasets/synthetic_seg2d.yaml</c> as written by
/// <see cref="SyntheticSegmentation"/>.
/// </summary>
public sealed class SegmentationCard
{
    public const string TaskName = "segmentation";

    public required string Name { get; init; }
    public string? Description { get; init; }
    /// <summary>The dataset folder (FairMedFM's <c>data_path</c>); absolute once loaded from a file.</summary>
    public required string DataRoot { get; init; }
    /// <summary>Absolute path of the metadata CSV (default <c>&lt;data_root&gt;/metadata.csv</c>).</summary>
    public required string MetadataCsv { get; init; }
    /// <summary>Column with the image path relative to <see cref="DataRoot"/> (FairMedFM: <c>imagePath</c>).</summary>
    public string ImageColumn { get; init; } = "imagePath";
    /// <summary>Column with the label-map path relative to <see cref="DataRoot"/> (FairMedFM: <c>labelPath</c>).</summary>
    public string LabelColumn { get; init; } = "labelPath";
    /// <summary>When null, every row (image or volume) is its own patient.</summary>
    public string? PatientIdColumn { get; init; }
    /// <summary>
    /// For 2-D rows that are slices cut beforehand (FairMedFM's KiTS/IRCADb/CANDI/SPIDER PNGs): the column naming the
    /// volume each slice came from, so results can be aggregated per volume. Default: each 2-D row is its own volume.
    /// </summary>
    public string? VolumeIdColumn { get; init; }
    /// <summary>With <see cref="VolumeIdColumn"/>: the column holding the slice index (an integer).</summary>
    public string? SliceIndexColumn { get; init; }
    public required SegmentationTarget Target { get; init; }
    public SlicingSpec Slicing { get; init; } = new();
    public IReadOnlyList<AttributeSpec> Attributes { get; init; } = Array.Empty<AttributeSpec>();
    public IReadOnlyList<IntersectionSpec> Intersections { get; init; } = Array.Empty<IntersectionSpec>();
    public string? SourceFile { get; init; }

    private static readonly string[] RootKeys =
    {
        "task", "name", "description", "data_root", "metadata_csv", "image_column", "label_column", "patient_id_column",
        "volume_id_column", "slice_index_column", "target", "slicing", "attributes", "intersections",
    };

    /// <summary>Attribute names followed by intersection names (the keys of <see cref="SegSample.Groups"/>).</summary>
    public IReadOnlyList<string> AttributeNames =>
        Attributes.Select(a => a.Name).Concat(Intersections.Select(i => i.Name)).ToList();

    /// <param name="guard">Where the card and what it names may lie; <see cref="PathGuard.Current"/> when null.</param>
    public static SegmentationCard Load(string path, PathGuard? guard = null)
    {
        guard ??= PathGuard.Current;
        var full = System.IO.Path.GetFullPath(path);
        guard.Check(full, "dataset card");
        if (!File.Exists(full)) throw new DataException("dataset card not found", full);
        string text;
        try { text = File.ReadAllText(full); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new DataException($"cannot read dataset card: {e.Message}", full, inner: e); }

        var root = new CardMap(CardNode.Parse(full, text), full, "").Known(RootKeys);
        var task = root.OptString("task");
        if (task is null) throw root.Missing("task", $"required field is missing: a segmentation card says 'task: {TaskName}'");
        if (task != TaskName) throw root.Error("task", $"is '{task}'; this loader reads '{TaskName}' cards (classification cards: DatasetCard.Load)");
        var dir = System.IO.Path.GetDirectoryName(full)!;
        string Resolve(string p) => System.IO.Path.GetFullPath(System.IO.Path.Combine(dir, p));
        var dataRoot = Resolve(root.ReqString("data_root"));
        var targetMap = root.OptMap("target") ?? throw root.Missing("target", "required field is missing (target: {label_value: N})");
        var card = new SegmentationCard
        {
            Name = root.ReqString("name"),
            Description = root.OptString("description"),
            DataRoot = dataRoot,
            MetadataCsv = root.OptString("metadata_csv") is { } m ? Resolve(m) : System.IO.Path.Combine(dataRoot, "metadata.csv"),
            ImageColumn = root.OptString("image_column") ?? "imagePath",
            LabelColumn = root.OptString("label_column") ?? "labelPath",
            PatientIdColumn = root.OptString("patient_id_column"),
            VolumeIdColumn = root.OptString("volume_id_column"),
            SliceIndexColumn = root.OptString("slice_index_column"),
            Target = SegmentationTarget.Read(targetMap),
            Slicing = root.OptMap("slicing") is { } sm ? SlicingSpec.Read(sm) : new SlicingSpec(),
            Attributes = ReadList(root, "attributes", AttributeSpec.Read),
            Intersections = ReadList(root, "intersections", IntersectionSpec.Read),
            SourceFile = full,
        };
        foreach (var k in RootKeys) root.Get(k);
        root.RejectUnknown();
        card.Validate();
        guard.Check(card.DataRoot, "data root", full, field: "data_root");
        guard.Check(card.MetadataCsv, "metadata CSV", full, field: "metadata_csv");
        return card;
    }

    private static IReadOnlyList<T> ReadList<T>(CardMap root, string key, Func<CardMap, T> read)
    {
        var items = root.OptList(key);
        if (items is null) return Array.Empty<T>();
        var list = new List<T>();
        for (int i = 0; i < items.Count; i++)
            list.Add(read(new CardMap(items[i], root.File, $"{root.Path(key)}[{i}]")));
        return list;
    }

    /// <summary>Cross-field checks; Load calls it, call it for cards built in code.</summary>
    public void Validate()
    {
        var file = SourceFile ?? "<card built in code>";
        DataException Err(string field, string reason) => new(reason, file, field: field);
        if (string.IsNullOrWhiteSpace(Name)) throw Err("name", "must not be empty");
        if (string.IsNullOrWhiteSpace(ImageColumn)) throw Err("image_column", "must not be empty");
        if (string.IsNullOrWhiteSpace(LabelColumn)) throw Err("label_column", "must not be empty");
        if (ImageColumn == LabelColumn) throw Err("label_column", "image and label columns must differ");
        if ((VolumeIdColumn is null) != (SliceIndexColumn is null))
            throw Err(VolumeIdColumn is null ? "volume_id_column" : "slice_index_column", "volume_id_column and slice_index_column go together (pre-cut slices of volumes)");
        Target.Validate(file, "target");
        Slicing.Validate(file, "slicing");
        // Attributes and intersections: the same rules as DatasetCard.Validate.
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < Attributes.Count; i++)
        {
            Attributes[i].Validate(file, $"attributes[{i}]");
            // Asked for explicitly, the per-patient check must not be skipped without a word for want of patient ids.
            if (Attributes[i].PerPatient == true && string.IsNullOrEmpty(PatientIdColumn))
                throw new DataException("per_patient is true, but the card has no patient_id_column: the check needs patient ids " +
                                        "(add patient_id_column, or leave per_patient out)", file, field: $"attributes[{i}].per_patient");
            if (!names.Add(Attributes[i].Name)) throw Err($"attributes[{i}].name", $"duplicate attribute name '{Attributes[i].Name}'");
        }
        for (int i = 0; i < Intersections.Count; i++)
        {
            var x = Intersections[i];
            if (string.IsNullOrWhiteSpace(x.Name)) throw Err($"intersections[{i}].name", "must not be empty");
            if (!names.Add(x.Name)) throw Err($"intersections[{i}].name", $"name '{x.Name}' is already used");
            if (x.Of.Count < 2) throw Err($"intersections[{i}].of", "an intersection needs at least two attributes");
            if (x.Of.Distinct().Count() != x.Of.Count) throw Err($"intersections[{i}].of", "an attribute is listed twice");
            foreach (var a in x.Of)
                if (!Attributes.Any(at => at.Name == a))
                    throw Err($"intersections[{i}].of", $"'{a}' is not an attribute of this card (intersections of intersections are not supported)");
        }
    }

    public AttributeSpec? FindAttribute(string name) => Attributes.FirstOrDefault(a => a.Name == name);

    /// <summary>Group labels of an attribute or intersection in code order (as <see cref="DatasetCard.GroupLabels"/>).</summary>
    public IReadOnlyList<string> GroupLabels(string attributeOrIntersection) => AttributeCard().GroupLabels(attributeOrIntersection);

    private DatasetCard? _attrCard;

    /// <summary>
    /// A classification card carrying this card's attributes, so the classification machinery (group labels, the
    /// patient splitter) is reused unchanged. Its label rule is a placeholder (segmentation has no class label).
    /// </summary>
    internal DatasetCard AttributeCard() => _attrCard ??= new DatasetCard
    {
        Name = Name, MetadataCsv = MetadataCsv, ImageRoot = DataRoot, PathColumn = ImageColumn,
        PatientIdColumn = PatientIdColumn, Label = new LabelRule { Column = LabelColumn, Threshold = 0 },
        Attributes = Attributes, Intersections = Intersections, SourceFile = SourceFile,
    };

    /// <summary>Canonical JSON of what changes the data's meaning (file locations and the description left out).</summary>
    public string SemanticJson()
    {
        var o = new JsonObject
        {
            ["task"] = TaskName,
            ["name"] = Name,
            ["image_column"] = ImageColumn,
            ["label_column"] = LabelColumn,
            ["patient_id_column"] = PatientIdColumn,
            ["volume_id_column"] = VolumeIdColumn,
            ["slice_index_column"] = SliceIndexColumn,
            ["target"] = new JsonObject { ["label_value"] = Target.LabelValue, ["name"] = Target.Name },
            ["slicing"] = Slicing.ToJson(),
            ["attributes"] = new JsonArray(Attributes.Select(a => (JsonNode)a.ToJson()).ToArray()),
            ["intersections"] = new JsonArray(Intersections.Select(i => (JsonNode)new JsonObject
            {
                ["name"] = i.Name,
                ["of"] = new JsonArray(i.Of.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
            }).ToArray()),
        };
        return o.ToJsonString();
    }
}

/// <summary>The class to segment: mask := (label == <see cref="LabelValue"/>), FairMedFM's <c>pos_class</c>.</summary>
public sealed class SegmentationTarget
{
    public required int LabelValue { get; init; }
    /// <summary>Optional display name (e.g. "kidney").</summary>
    public string? Name { get; init; }

    internal static SegmentationTarget Read(CardMap m)
    {
        var raw = m.OptString("label_value") ?? throw m.Missing("label_value", "required field is missing (the integer label value of the class to segment, FairMedFM's pos_class)");
        if (!int.TryParse(raw.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v))
            throw m.Error("label_value", $"expected an integer label value, got '{raw}'");
        var t = new SegmentationTarget { LabelValue = v, Name = m.OptString("name") };
        m.RejectUnknown("target");
        return t;
    }

    public void Validate(string file, string field)
    {
        if (LabelValue == 0) throw new DataException("label value 0 is the background; choose the class to segment", file, field: field + ".label_value");
        if (LabelValue < 0)
            throw new DataException($"label value {LabelValue} is impossible: label values are non-negative integers (1..255 in 8-bit PNG label maps; larger ones only in NIfTI label volumes)", file, field: field + ".label_value");
        if (Name is not null && string.IsNullOrWhiteSpace(Name)) throw new DataException("must not be empty", file, field: field + ".name");
    }
}

/// <summary>How 3-D rows (NIfTI volumes) become 2-D samples (ignored for 2-D rows).</summary>
public sealed class SlicingSpec
{
    /// <summary>Axis to cut along, 0..2 in the file's voxel order; default 2 (the last axis, as FairMedFM's KiTS/SPIDER scripts).</summary>
    public int Axis { get; init; } = 2;
    public SliceKeep Keep { get; init; } = SliceKeep.Target;
    public IntensityScaling Intensity { get; init; } = IntensityScaling.MinMax;
    /// <summary>
    /// Optional: resize each slice (image and labels) to this square size with nearest-neighbour first, as FairMedFM's
    /// 3-D scripts wrote 1024² PNGs with <c>INTER_NEAREST</c>. Null = keep the volume's in-plane size.
    /// </summary>
    public int? ResizeNearest { get; init; }

    internal static SlicingSpec Read(CardMap m)
    {
        int axis = 2;
        if (m.OptString("axis") is { } a)
        {
            if (!int.TryParse(a.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out axis) || axis > 2)
                throw m.Error("axis", $"expected 0, 1 or 2, got '{a}'");
        }
        var keepText = m.OptString("keep") ?? "target";
        var keep = keepText switch
        {
            "target" => SliceKeep.Target,
            "any_label" => SliceKeep.AnyLabel,
            "all" => SliceKeep.All,
            _ => throw m.Error("keep", $"unknown value '{keepText}' (target, any_label or all)"),
        };
        var modeText = m.OptString("intensity") ?? "minmax";
        var mode = modeText switch
        {
            "minmax" => IntensityMode.MinMax,
            "percentile" => IntensityMode.Percentile,
            "window" => IntensityMode.Window,
            _ => throw m.Error("intensity", $"unknown value '{modeText}' (minmax, percentile or window)"),
        };
        var low = m.OptDouble("low");
        var high = m.OptDouble("high");
        if (mode == IntensityMode.MinMax && (low is not null || high is not null))
            throw m.Error(low is not null ? "low" : "high", "low/high only apply to intensity: percentile or window");
        if (mode != IntensityMode.MinMax && (low is null || high is null))
            throw m.Error(low is null ? "low" : "high", $"required for intensity: {modeText}");
        int? resize = null;
        if (m.OptString("resize_nearest") is { } rs)
        {
            if (!int.TryParse(rs.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var r) || r < 1)
                throw m.Error("resize_nearest", $"expected a positive integer size, got '{rs}'");
            resize = r;
        }
        var spec = new SlicingSpec
        {
            Axis = axis, Keep = keep, Intensity = new IntensityScaling(mode, low ?? 0, high ?? 0), ResizeNearest = resize,
        };
        m.RejectUnknown("slicing");
        return spec;
    }

    public void Validate(string file, string field)
    {
        if (Axis is < 0 or > 2) throw new DataException($"axis must be 0, 1 or 2, got {Axis}", file, field: field + ".axis");
        if (ResizeNearest is < 1) throw new DataException("must be positive", file, field: field + ".resize_nearest");
        Intensity.Validate(file, field + ".intensity");
    }

    internal JsonObject ToJson() => new()
    {
        ["axis"] = Axis,
        ["keep"] = Keep switch { SliceKeep.Target => "target", SliceKeep.AnyLabel => "any_label", _ => "all" },
        ["intensity"] = Intensity.Id,
        ["resize_nearest"] = ResizeNearest,
    };
}

/// <summary>Which kind of card a file is, by its optional <c>task</c> key (absent = classification).</summary>
public static class DatasetCardTask
{
    /// <summary>"classification" or "segmentation"; throws <see cref="DataException"/> for an unreadable card or another task.</summary>
    public static string Detect(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full)) throw new DataException("dataset card not found", full);
        var root = new CardMap(CardNode.Parse(full, File.ReadAllText(full)), full, "");
        var task = root.OptString("task") ?? "classification";
        return task is "classification" or SegmentationCard.TaskName
            ? task
            : throw root.Error("task", $"unknown task '{task}' (classification or segmentation)");
    }
}
