using System.Globalization;
using System.Text.Json.Nodes;

namespace FairMedFM.Data;

/// <summary>
/// Describes one dataset: where its metadata CSV and images are, how to read the binary label, the sensitive
/// attributes (and their intersections), its normalisation and its zero-shot prompts.
/// Loaded from YAML (<c>.yaml/.yml</c>) or JSON (<c>.json</c>) with snake_case keys; see
/// <c>datasets/nih_chestxray14_64px.yaml</c> for a complete example. Unknown keys are errors (typos must not be
/// silently ignored in a benchmark).
/// </summary>
public sealed class DatasetCard
{
    public required string Name { get; init; }
    /// <summary>Free text; not part of the semantic hash.</summary>
    public string? Description { get; init; }
    /// <summary>Absolute path once loaded from a file (relative paths in the card resolve against the card's folder).</summary>
    public required string MetadataCsv { get; init; }
    /// <summary>Folder that the path column is relative to; absolute once loaded from a file.</summary>
    public required string ImageRoot { get; init; }
    public required string PathColumn { get; init; }
    /// <summary>When null, every row is its own patient (the split is then image-level: say so in reports).</summary>
    public string? PatientIdColumn { get; init; }
    public required LabelRule Label { get; init; }
    public IReadOnlyList<AttributeSpec> Attributes { get; init; } = Array.Empty<AttributeSpec>();
    public IReadOnlyList<IntersectionSpec> Intersections { get; init; } = Array.Empty<IntersectionSpec>();
    public NormalizationSpec? Normalization { get; init; }
    public ZeroShotSpec? ZeroShot { get; init; }
    /// <summary>Path the card was loaded from (absolute), or null for a card built in code.</summary>
    public string? SourceFile { get; init; }

    private static readonly string[] RootKeys =
    {
        "name", "description", "metadata_csv", "image_root", "path_column", "patient_id_column", "label",
        "attributes", "intersections", "normalization", "zero_shot", "task",
    };

    /// <summary>Attribute names followed by intersection names (the keys of <see cref="Sample.Groups"/>).</summary>
    public IReadOnlyList<string> AttributeNames =>
        Attributes.Select(a => a.Name).Concat(Intersections.Select(i => i.Name)).ToList();

    /// <param name="guard">Where the card and what it names may lie; <see cref="PathGuard.Current"/> when null.</param>
    public static DatasetCard Load(string path, PathGuard? guard = null)
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
        // Optional 'task' (absent = classification); segmentation cards have their own loader and keys.
        if (root.OptString("task") is { } task && task != "classification")
            throw root.Error("task", task == Segmentation.SegmentationCard.TaskName
                ? "this is a segmentation card; load it with SegmentationCard.Load (see DatasetCardTask.Detect)"
                : $"unknown task '{task}' (classification or segmentation)");
        var dir = System.IO.Path.GetDirectoryName(full)!;
        string Resolve(string p) => System.IO.Path.GetFullPath(System.IO.Path.Combine(dir, p));

        var labelMap = root.OptMap("label") ?? throw root.Missing("label", "required field is missing");
        var card = new DatasetCard
        {
            Name = root.ReqString("name"),
            Description = root.OptString("description"),
            MetadataCsv = Resolve(root.ReqString("metadata_csv")),
            ImageRoot = Resolve(root.ReqString("image_root")),
            PathColumn = root.ReqString("path_column"),
            PatientIdColumn = root.OptString("patient_id_column"),
            Label = LabelRule.Read(labelMap),
            Attributes = ReadList(root, "attributes", AttributeSpec.Read),
            Intersections = ReadList(root, "intersections", IntersectionSpec.Read),
            Normalization = root.OptMap("normalization") is { } nm ? NormalizationSpec.Read(nm) : null,
            ZeroShot = root.OptMap("zero_shot") is { } zm ? ZeroShotSpec.Read(zm) : null,
            SourceFile = full,
        };
        // Every known key has been asked for above, so anything left is unknown.
        foreach (var k in RootKeys) root.Get(k);
        root.RejectUnknown();
        card.Validate();
        guard.Check(card.MetadataCsv, "metadata CSV", full, field: "metadata_csv");
        guard.Check(card.ImageRoot, "image root", full, field: "image_root");
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

    /// <summary>Cross-field checks (names unique, intersections refer to attributes, ...). Load calls it; call it for cards built in code.</summary>
    public void Validate()
    {
        var file = SourceFile ?? "<card built in code>";
        DataException Err(string field, string reason) => new(reason, file, field: field);
        if (string.IsNullOrWhiteSpace(Name)) throw Err("name", "must not be empty");
        if (string.IsNullOrWhiteSpace(PathColumn)) throw Err("path_column", "must not be empty");
        Label.Validate(file, "label");
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
        Normalization?.Validate(file, "normalization");
        ZeroShot?.Validate(file, "zero_shot");
    }

    public AttributeSpec? FindAttribute(string name) => Attributes.FirstOrDefault(a => a.Name == name);

    /// <summary>
    /// Group labels of an attribute or intersection, in code order (index = integer group code). Intersections
    /// enumerate the product of their members' labels, first member major.
    /// </summary>
    public IReadOnlyList<string> GroupLabels(string attributeOrIntersection)
    {
        if (FindAttribute(attributeOrIntersection) is { } a) return a.GroupLabels;
        var x = Intersections.FirstOrDefault(i => i.Name == attributeOrIntersection)
                ?? throw new ArgumentException($"unknown attribute or intersection '{attributeOrIntersection}'");
        IEnumerable<string> acc = new[] { "" };
        bool first = true;
        foreach (var member in x.Of)
        {
            var labels = FindAttribute(member)!.GroupLabels;
            var f = first;
            acc = acc.SelectMany(prefix => labels.Select(l => f ? l : prefix + IntersectionSpec.Separator + l)).ToList();
            first = false;
        }
        return acc.ToList();
    }

    /// <summary>
    /// Canonical JSON of everything that changes what the data means (name, columns, label rule, attributes,
    /// intersections, normalisation, zero-shot prompts). File locations and the description are left out: moving
    /// a dataset must not change its hash (the CSV and image bytes are hashed separately).
    /// </summary>
    public string SemanticJson()
    {
        var o = new JsonObject
        {
            ["name"] = Name,
            ["path_column"] = PathColumn,
            ["patient_id_column"] = PatientIdColumn,
            ["label"] = Label.ToJson(),
            ["attributes"] = new JsonArray(Attributes.Select(a => (JsonNode)a.ToJson()).ToArray()),
            ["intersections"] = new JsonArray(Intersections.Select(i => (JsonNode)new JsonObject
            {
                ["name"] = i.Name,
                ["of"] = new JsonArray(i.Of.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
            }).ToArray()),
            ["normalization"] = Normalization?.ToJson(),
            ["zero_shot"] = ZeroShot?.ToJson(),
        };
        return o.ToJsonString();
    }

    internal static JsonArray Strings(IEnumerable<string> xs) => new(xs.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray());
    internal static JsonArray Numbers(IEnumerable<double> xs) => new(xs.Select(v => (JsonNode)JsonValue.Create(CsvNumbers.Format(v))!).ToArray());
}

/// <summary>
/// Binary label: either a text match (<c>positive</c> values → 1; <c>negative</c> values → 0 when given, else every
/// other non-empty value → 0) or a numeric threshold (<c>value &gt;= threshold</c> → 1). Cells are trimmed first.
/// </summary>
public sealed class LabelRule
{
    public required string Column { get; init; }
    public IReadOnlyList<string>? Positive { get; init; }
    public IReadOnlyList<string>? Negative { get; init; }
    public double? Threshold { get; init; }

    internal static LabelRule Read(CardMap m)
    {
        var r = new LabelRule
        {
            Column = m.ReqString("column"),
            Positive = m.OptStringList("positive"),
            Negative = m.OptStringList("negative"),
            Threshold = m.OptDouble("threshold"),
        };
        m.RejectUnknown("label");
        return r;
    }

    public void Validate(string file, string field)
    {
        if (string.IsNullOrWhiteSpace(Column)) throw new DataException("must not be empty", file, field: field + ".column");
        if ((Positive is null) == (Threshold is null))
            throw new DataException("give exactly one of 'positive' (values meaning class 1) or 'threshold' (numeric, value >= threshold is class 1)", file, field: field);
        if (Positive is { Count: 0 }) throw new DataException("must list at least one value", file, field: field + ".positive");
        if (Negative is not null && Threshold is not null)
            throw new DataException("'negative' only goes with 'positive'", file, field: field + ".negative");
        if (Positive is not null && Negative is not null && Positive.Intersect(Negative).Any())
            throw new DataException("a value is both positive and negative", file, field: field + ".negative");
    }

    /// <summary>Encodes one cell; throws <see cref="DataException"/> with the given location on a bad value.</summary>
    public int Encode(string? raw, string? file = null, int? row = null)
    {
        var v = (raw ?? "").Trim();
        if (Threshold is { } t)
        {
            if (v.Length == 0) throw new DataException("empty label cell", file, row, Column);
            if (!CsvNumbers.TryParse(v, out var x)) throw new DataException($"label '{v}' is not a number (label rule is a numeric threshold)", file, row, Column);
            return x >= t ? 1 : 0;
        }
        if (Positive!.Contains(v)) return 1;
        if (Negative is not null)
        {
            if (Negative.Contains(v)) return 0;
            throw new DataException($"label '{v}' is neither positive [{string.Join(", ", Positive!)}] nor negative [{string.Join(", ", Negative)}]", file, row, Column);
        }
        if (v.Length == 0) throw new DataException("empty label cell", file, row, Column);
        return 0;
    }

    internal JsonObject ToJson() => new()
    {
        ["column"] = Column,
        ["positive"] = Positive is null ? null : DatasetCard.Strings(Positive),
        ["negative"] = Negative is null ? null : DatasetCard.Strings(Negative),
        ["threshold"] = Threshold is null ? null : CsvNumbers.Format(Threshold.Value),
    };
}

public enum AttributeKind { Categorical, Threshold, Bins }

/// <summary>
/// One sensitive attribute, read from one CSV column.
/// <list type="bullet">
/// <item><c>categorical</c>: <c>map</c> raw value → group label. A value not in the map is an error unless
/// <c>other</c> gives a label for it; an empty cell is an error unless <c>missing</c> gives a label.</item>
/// <item><c>threshold</c>: numeric; <c>value &gt;= threshold</c> → <c>label_high</c> (default "T+") else <c>label_low</c>
/// (default "&lt;T"), as FairMedFM's <c>age &gt;= 60</c>.</item>
/// <item><c>bins</c>: numeric; increasing <c>edges</c> e1..ek give k+1 bins <c>v &lt; e1</c>, <c>e1 &lt;= v &lt; e2</c>, …,
/// <c>v &gt;= ek</c>; <c>labels</c> optional (default for integer edges [50,65]: "&lt;50", "50-64", "65+").</item>
/// </list>
/// A non-numeric cell for threshold/bins is an error (an empty one too, unless <c>missing</c> is set).
/// Group code = index in <see cref="GroupLabels"/>: map order for categorical (then <c>other</c>, <c>missing</c>),
/// [low, high] for threshold (so 60+ = 1, female = 1 with map M, F: FairMedFM's convention), bin order for bins.
/// </summary>
public sealed class AttributeSpec
{
    public required string Name { get; init; }
    public required string Column { get; init; }
    public required AttributeKind Kind { get; init; }
    /// <summary>Categorical: ordered raw value → label pairs.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Map { get; init; } = Array.Empty<KeyValuePair<string, string>>();
    /// <summary>Label for an empty cell; null = empty cell is an error.</summary>
    public string? Missing { get; init; }
    /// <summary>Categorical: label for a value not in the map; null = such a value is an error.</summary>
    public string? Other { get; init; }
    public double? Threshold { get; init; }
    public string? LabelLow { get; init; }
    public string? LabelHigh { get; init; }
    public IReadOnlyList<double>? Edges { get; init; }
    public IReadOnlyList<string>? BinLabels { get; init; }
    /// <summary>
    /// True when the attribute describes the patient and must be the same on all of a patient's rows (checked at load;
    /// a contradiction is an error naming the patient and both rows). Card key <c>per_patient</c>; default true for
    /// categorical attributes (sex, race), false for threshold and bins (age changes between visits).
    /// Not part of the semantic hash: it only decides what is checked.
    /// </summary>
    public bool? PerPatient { get; init; }

    /// <summary><see cref="PerPatient"/> with its default applied.</summary>
    public bool IsPerPatient => PerPatient ?? Kind == AttributeKind.Categorical;

    private IReadOnlyList<string>? _groupLabels;

    /// <summary>All labels this attribute can produce, in code order.</summary>
    public IReadOnlyList<string> GroupLabels => _groupLabels ??= ComputeGroupLabels();

    private List<string> ComputeGroupLabels()
    {
        var labels = new List<string>();
        void Add(string? l) { if (l is not null && !labels.Contains(l)) labels.Add(l); }
        switch (Kind)
        {
            case AttributeKind.Categorical:
                foreach (var kv in Map) Add(kv.Value);
                Add(Other);
                break;
            case AttributeKind.Threshold:
                Add(EffectiveLow); Add(EffectiveHigh);
                break;
            case AttributeKind.Bins:
                foreach (var l in EffectiveBinLabels) Add(l);
                break;
        }
        Add(Missing);
        return labels;
    }

    private string EffectiveLow => LabelLow ?? "<" + CsvNumbers.Format(Threshold ?? 0);
    private string EffectiveHigh => LabelHigh ?? CsvNumbers.Format(Threshold ?? 0) + "+";

    private IReadOnlyList<string> EffectiveBinLabels => BinLabels ?? DefaultBinLabels(Edges ?? Array.Empty<double>());

    /// <summary>[50,65] → "&lt;50","50-64","65+" for integer edges (ages); "[a,b)" style otherwise.</summary>
    public static IReadOnlyList<string> DefaultBinLabels(IReadOnlyList<double> edges)
    {
        if (edges.Count == 0) return Array.Empty<string>();
        bool ints = edges.All(e => e == Math.Floor(e) && Math.Abs(e) < 1e15);
        var labels = new List<string> { "<" + CsvNumbers.Format(edges[0]) };
        for (int i = 0; i + 1 < edges.Count; i++)
            labels.Add(ints
                ? $"{CsvNumbers.Format(edges[i])}-{CsvNumbers.Format(edges[i + 1] - 1)}"
                : $"[{CsvNumbers.Format(edges[i])},{CsvNumbers.Format(edges[i + 1])})");
        labels.Add(CsvNumbers.Format(edges[^1]) + "+");
        return labels;
    }

    private static readonly Dictionary<AttributeKind, string[]> KindKeys = new()
    {
        [AttributeKind.Categorical] = new[] { "map", "other" },
        [AttributeKind.Threshold] = new[] { "threshold", "label_low", "label_high" },
        [AttributeKind.Bins] = new[] { "edges", "labels" },
    };

    internal static AttributeSpec Read(CardMap m)
    {
        m.Known(new[] { "name", "column", "kind", "missing", "per_patient" }.Concat(KindKeys.Values.SelectMany(k => k)));
        var name = m.ReqString("name");
        var column = m.ReqString("column");
        var kindText = m.ReqString("kind");
        AttributeKind kind = kindText switch
        {
            "categorical" => AttributeKind.Categorical,
            "threshold" => AttributeKind.Threshold,
            "bins" => AttributeKind.Bins,
            _ => throw m.Error("kind", $"unknown attribute kind '{kindText}' (categorical, threshold or bins)"),
        };
        var missing = m.OptString("missing");
        AttributeSpec spec;
        switch (kind)
        {
            case AttributeKind.Categorical:
            {
                var mapNode = m.OptMap("map") ?? throw m.Missing("map", "required field is missing for a categorical attribute");
                var pairs = new List<KeyValuePair<string, string>>();
                foreach (var (k, v) in mapNode.Entries)
                {
                    if (v.Kind != CardNode.NodeKind.Scalar)
                        throw new DataException("group label must be text", m.File, field: mapNode.Path(k));
                    pairs.Add(new(k, v.Text!));
                }
                spec = new AttributeSpec { Name = name, Column = column, Kind = kind, Map = pairs, Missing = missing, Other = m.OptString("other") };
                break;
            }
            case AttributeKind.Threshold:
                spec = new AttributeSpec
                {
                    Name = name, Column = column, Kind = kind, Missing = missing,
                    Threshold = m.OptDouble("threshold") ?? throw m.Missing("threshold", "required field is missing for a threshold attribute"),
                    LabelLow = m.OptString("label_low"), LabelHigh = m.OptString("label_high"),
                };
                break;
            default:
                spec = new AttributeSpec
                {
                    Name = name, Column = column, Kind = kind, Missing = missing,
                    Edges = m.OptDoubleList("edges") ?? throw m.Missing("edges", "required field is missing for a bins attribute"),
                    BinLabels = m.OptStringList("labels"),
                };
                break;
        }
        if (m.OptString("per_patient") is { } pp)
            spec = CopyWithPerPatient(spec, pp switch
            {
                "true" or "True" or "TRUE" => true,
                "false" or "False" or "FALSE" => false,
                _ => throw m.Error("per_patient", $"expected true or false, got '{pp}'"),
            });
        foreach (var k in KindKeys[kind]) m.Get(k);
        m.RejectUnknown($"a {kindText} attribute");
        return spec;
    }

    private static AttributeSpec CopyWithPerPatient(AttributeSpec a, bool perPatient) => new()
    {
        Name = a.Name, Column = a.Column, Kind = a.Kind, Map = a.Map, Missing = a.Missing, Other = a.Other,
        Threshold = a.Threshold, LabelLow = a.LabelLow, LabelHigh = a.LabelHigh, Edges = a.Edges, BinLabels = a.BinLabels,
        PerPatient = perPatient,
    };

    public void Validate(string file, string field)
    {
        DataException Err(string f, string reason) => new(reason, file, field: f.Length == 0 ? field : $"{field}.{f}");
        if (string.IsNullOrWhiteSpace(Name)) throw Err("name", "must not be empty");
        if (Name.Contains(IntersectionSpec.Separator)) throw Err("name", $"must not contain '{IntersectionSpec.Separator}'");
        if (string.IsNullOrWhiteSpace(Column)) throw Err("column", "must not be empty");
        switch (Kind)
        {
            case AttributeKind.Categorical:
                if (Map.Count == 0) throw Err("map", "must map at least one value");
                if (Map.Select(p => p.Key).Distinct().Count() != Map.Count) throw Err("map", "a raw value is mapped twice");
                if (Threshold is not null || Edges is not null) throw Err("", "threshold/edges do not apply to a categorical attribute");
                break;
            case AttributeKind.Threshold:
                if (Threshold is null) throw Err("threshold", "required field is missing for a threshold attribute");
                if (EffectiveLow == EffectiveHigh) throw Err("label_high", "label_low and label_high must differ");
                break;
            case AttributeKind.Bins:
                if (Edges is null || Edges.Count == 0) throw Err("edges", "give at least one bin edge");
                for (int i = 1; i < Edges.Count; i++)
                    if (!(Edges[i] > Edges[i - 1])) throw Err("edges", "edges must be strictly increasing");
                if (BinLabels is not null && BinLabels.Count != Edges.Count + 1)
                    throw Err("labels", $"{Edges.Count} edges make {Edges.Count + 1} bins, but {BinLabels.Count} labels are given");
                if (EffectiveBinLabels.Distinct().Count() != EffectiveBinLabels.Count) throw Err("labels", "bin labels must be distinct");
                break;
        }
        foreach (var l in GroupLabels)
            if (l.Contains(IntersectionSpec.Separator)) throw Err("", $"group label '{l}' must not contain '{IntersectionSpec.Separator}' (it joins intersection labels)");
    }

    /// <summary>Group label of one cell; throws <see cref="DataException"/> naming file, row and column on a bad value.</summary>
    public string Encode(string? raw, string? file = null, int? row = null)
    {
        var v = (raw ?? "").Trim();
        if (v.Length == 0)
            return Missing ?? throw new DataException($"empty cell for attribute '{Name}' (set 'missing' in the card to give it a group)", file, row, Column);
        switch (Kind)
        {
            case AttributeKind.Categorical:
                foreach (var kv in Map)
                    if (kv.Key == v) return kv.Value;
                return Other ?? throw new DataException(
                    $"value '{v}' of attribute '{Name}' is not in the card's map [{string.Join(", ", Map.Select(p => p.Key))}] (set 'other' to accept it)",
                    file, row, Column);
            case AttributeKind.Threshold:
            {
                if (!CsvNumbers.TryParse(v, out var x))
                    throw new DataException($"value '{v}' of attribute '{Name}' is not a number", file, row, Column);
                return x >= Threshold!.Value ? EffectiveHigh : EffectiveLow;
            }
            default:
            {
                if (!CsvNumbers.TryParse(v, out var x))
                    throw new DataException($"value '{v}' of attribute '{Name}' is not a number", file, row, Column);
                var edges = Edges!;
                int bin = 0;
                while (bin < edges.Count && x >= edges[bin]) bin++;
                return EffectiveBinLabels[bin];
            }
        }
    }

    internal JsonObject ToJson() => new()
    {
        ["name"] = Name,
        ["column"] = Column,
        ["kind"] = Kind.ToString().ToLowerInvariant(),
        ["map"] = Kind == AttributeKind.Categorical
            ? new JsonArray(Map.Select(p => (JsonNode)DatasetCard.Strings(new[] { p.Key, p.Value })).ToArray())
            : null,
        ["missing"] = Missing,
        ["other"] = Other,
        ["threshold"] = Threshold is null ? null : CsvNumbers.Format(Threshold.Value),
        ["edges"] = Edges is null ? null : DatasetCard.Numbers(Edges),
        // Effective labels, so that spelling out the defaults does not change the hash.
        ["groups"] = DatasetCard.Strings(GroupLabels),
    };
}

/// <summary>Cross product of attributes, e.g. <c>sex_x_age60</c> of [sex, age60] with group labels like "F|60+".</summary>
public sealed class IntersectionSpec
{
    public const string Separator = "|";
    public required string Name { get; init; }
    public required IReadOnlyList<string> Of { get; init; }

    internal static IntersectionSpec Read(CardMap m)
    {
        var x = new IntersectionSpec
        {
            Name = m.ReqString("name"),
            Of = m.OptStringList("of") ?? throw m.Missing("of", "required field is missing"),
        };
        m.RejectUnknown("an intersection");
        return x;
    }
}

/// <summary>Dataset normalisation (FairMedFM normalises per dataset: CXR 0.5056/0.252, GF3300 0.2756/0.1708, else CLIP stats).</summary>
public sealed class NormalizationSpec
{
    /// <summary>RGB order, in [0,1] units.</summary>
    public required IReadOnlyList<float> Mean { get; init; }
    public required IReadOnlyList<float> Std { get; init; }

    internal static NormalizationSpec Read(CardMap m)
    {
        var mean = m.OptDoubleList("mean") ?? throw m.Missing("mean", "required field is missing");
        var std = m.OptDoubleList("std") ?? throw m.Missing("std", "required field is missing");
        m.RejectUnknown("normalization");
        // One value means "the same for R, G and B" (grey-scale datasets).
        static float[] Expand(List<double> v) => v.Count == 1 ? new[] { (float)v[0], (float)v[0], (float)v[0] } : v.Select(d => (float)d).ToArray();
        return new NormalizationSpec { Mean = Expand(mean), Std = Expand(std) };
    }

    public void Validate(string file, string field)
    {
        if (Mean.Count != 3) throw new DataException("give 1 or 3 values (R,G,B)", file, field: field + ".mean");
        if (Std.Count != 3) throw new DataException("give 1 or 3 values (R,G,B)", file, field: field + ".std");
        if (Std.Any(s => !(s > 0) || !float.IsFinite(s))) throw new DataException("std must be positive", file, field: field + ".std");
        if (Mean.Any(s => !float.IsFinite(s))) throw new DataException("mean must be finite", file, field: field + ".mean");
    }

    public MeanStdNormalization ToNormalization() => new(Mean.ToArray(), Std.ToArray());

    internal JsonObject ToJson() => new()
    {
        ["mean"] = DatasetCard.Numbers(Mean.Select(f => (double)f)),
        ["std"] = DatasetCard.Numbers(Std.Select(f => (double)f)),
    };
}

/// <summary>
/// FairMedFM zero-shot prompts: <c>text_template.format(name.strip())</c> for each class name; index 1 is the
/// positive class (label 1 of this card).
/// </summary>
public sealed class ZeroShotSpec
{
    public required string TextTemplate { get; init; }
    public required IReadOnlyList<string> ClassNames { get; init; }

    /// <summary>One prompt per class, in class order.</summary>
    public IReadOnlyList<string> Prompts() =>
        ClassNames.Select(n => TextTemplate.Replace("{}", n.Trim(), StringComparison.Ordinal)).ToList();

    /// <summary>
    /// FairMedFM's zero-shot prompts per data set (spec §3.2: one template, no ensembling; class 1 is the positive
    /// label — for CXP/MIMIC-CXR that is "normal", No Finding). A card says <c>zero_shot: {preset: CXP}</c> instead of
    /// repeating them; an explicit text_template or class_names beside the preset overrides it.
    /// </summary>
    public static IReadOnlyDictionary<string, ZeroShotSpec> FairMedFMPresets { get; } = new Dictionary<string, ZeroShotSpec>(StringComparer.OrdinalIgnoreCase)
    {
        ["CXP"] = new() { TextTemplate = "a chest X-ray of a {}", ClassNames = ["diseased", "normal"] },
        ["MIMIC_CXR"] = new() { TextTemplate = "a chest X-ray of a {}", ClassNames = ["diseased", "normal"] },
        ["HAM10000"] = new() { TextTemplate = "a photo of a {}", ClassNames = ["benign lesion", "malignant lesion"] },
        ["PAPILA"] = new() { TextTemplate = "a fundus image of a {}", ClassNames = ["normal", "glaucoma"] },
        ["FairVLMed10k"] = new() { TextTemplate = "a scanning laser ophthalmoscope fundus image of a {}", ClassNames = ["normal", "glaucoma"] },
        ["GF3300"] = new() { TextTemplate = "a photo of a {}", ClassNames = ["normal", "glaucoma"] },
        ["BREST"] = new() { TextTemplate = "a fundus image of a {}", ClassNames = ["normal", "retinopathy"] },
        ["COVID_CT_MD"] = new() { TextTemplate = "a computed tomography of a {}", ClassNames = ["normal", "pneumonia"] },
        ["ADNI"] = new() { TextTemplate = "a brain MRI of {}", ClassNames = ["normal", "Alzheimer's disease"] },
    };

    internal static ZeroShotSpec Read(CardMap m)
    {
        ZeroShotSpec? preset = null;
        if (m.OptString("preset") is { } name && !FairMedFMPresets.TryGetValue(name, out preset))
            throw m.Error("preset", $"unknown FairMedFM data set '{name}' (known: {string.Join(", ", FairMedFMPresets.Keys)})");
        var z = new ZeroShotSpec
        {
            TextTemplate = m.OptString("text_template") ?? preset?.TextTemplate ?? throw m.Missing("text_template", "required field is missing (or give a preset)"),
            ClassNames = m.OptStringList("class_names") ?? preset?.ClassNames ?? throw m.Missing("class_names", "required field is missing (or give a preset)"),
        };
        m.RejectUnknown("zero_shot");
        return z;
    }

    public void Validate(string file, string field)
    {
        var n = TextTemplate.Split("{}").Length - 1;
        if (n != 1) throw new DataException("text_template must contain '{}' exactly once", file, field: field + ".text_template");
        if (ClassNames.Count != 2) throw new DataException("binary classification: give exactly two class names [class 0, class 1]", file, field: field + ".class_names");
        if (ClassNames.Any(string.IsNullOrWhiteSpace)) throw new DataException("class names must not be empty", file, field: field + ".class_names");
    }

    internal JsonObject ToJson() => new()
    {
        ["text_template"] = TextTemplate,
        ["class_names"] = DatasetCard.Strings(ClassNames),
    };
}
