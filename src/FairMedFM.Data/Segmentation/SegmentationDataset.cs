using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace FairMedFM.Data.Segmentation;

/// <summary>
/// One segmentation sample: a 2-D image, or one slice of a 3-D volume. Everything the engine needs to group, seed and
/// aggregate results (ids, patient, volume, slice, sensitive groups) is here; pixels come from
/// <see cref="SegmentationDataset.LoadItem"/>.
/// </summary>
public sealed class SegSample
{
    /// <summary>0-based position in <see cref="SegmentationDataset.Samples"/>.</summary>
    public required int Index { get; init; }
    /// <summary>
    /// Stable, unique id: the image path as written in the CSV for a 2-D row; <c>&lt;volume path&gt;#axis&lt;a&gt;/&lt;k&gt;</c>
    /// for a slice cut from a volume. Prompt seeds derive from it.
    /// </summary>
    public required string Id { get; init; }
    /// <summary>1-based CSV data row (header = row 0) the sample comes from.</summary>
    public required int Row { get; init; }
    /// <summary>Absolute image path (a 2-D image or the NIfTI volume).</summary>
    public required string ImagePath { get; init; }
    /// <summary>Absolute label path (a 2-D label map or the NIfTI label volume).</summary>
    public required string LabelPath { get; init; }
    /// <summary>The image column's value as written in the CSV.</summary>
    public required string RelativeImagePath { get; init; }
    /// <summary>The label column's value as written in the CSV.</summary>
    public string RelativeLabelPath { get; init; } = "";
    public required string PatientId { get; init; }
    /// <summary>Volume the sample belongs to (a 2-D row is its own volume unless the card names a volume id column).</summary>
    public required string VolumeId { get; init; }
    /// <summary>Slice index within the volume; null for a plain 2-D image.</summary>
    public int? SliceIndex { get; init; }
    /// <summary>Axis the slice was cut along (0..2) when cut here from a NIfTI volume; null otherwise.</summary>
    public int? SliceAxis { get; init; }
    /// <summary>True when the sample is cut from a NIfTI volume at load time.</summary>
    public bool FromVolume => SliceAxis is not null;
    /// <summary>Attribute or intersection name → group label.</summary>
    public required IReadOnlyDictionary<string, string> Groups { get; init; }
    /// <summary>Attribute or intersection name → group code (index in <see cref="SegmentationCard.GroupLabels"/>).</summary>
    public required IReadOnlyDictionary<string, int> GroupCodes { get; init; }
}

/// <summary>A volume that gave no sample (no slice kept by the slicing rule): reported, never dropped silently.</summary>
public sealed record SkippedVolume(int Row, string VolumeId, string Reason);

/// <summary>
/// FairMedFM's segmentation image transform (spec §2.6): albumentations <c>Resize(S, S)</c> — OpenCV
/// <c>INTER_LINEAR</c> for the image, <c>INTER_NEAREST</c> for the label map, aspect ratio not kept — or, with a null
/// size, the native resolution. Normalisation is separate (<see cref="SegmentationItem.ImageChw"/>).
/// </summary>
public sealed record SegmentationTransform(int? Size = null)
{
    public string Id => Size is { } s ? $"cv2-linear{s}+mask-nearest{s}" : "native";
}

/// <summary>A loaded sample: 8-bit RGB image, label map and binary target mask (same size), and its prompts.</summary>
public sealed class SegmentationItem
{
    public required SegSample Sample { get; init; }
    /// <summary>8-bit image, RGB order (FairMedFM's cv2 path sees BGR; <see cref="AlbumentationsNormalization"/> handles that).</summary>
    public required RgbImage Image { get; init; }
    /// <summary>Full label map at the image's size.</summary>
    public required LabelMap Labels { get; init; }
    /// <summary>Target mask, row-major, 1 = target class, 0 = anything else.</summary>
    public required byte[] Mask { get; init; }
    public required int TargetValue { get; init; }
    public required MaskPrompts Prompts { get; init; }
    public int Width => Image.Width;
    public int Height => Image.Height;
    /// <summary>True when the target class is absent (prompts skipped with reason <see cref="PromptSkipReason.EmptyMask"/>).</summary>
    public bool EmptyMask => Prompts.SkipReason == PromptSkipReason.EmptyMask;

    /// <summary>H×W×3 float32, RGB, values 0..255 (no normalisation).</summary>
    public float[] ImageHwc()
    {
        var px = Image.Pixels;
        var f = new float[px.Length];
        for (int i = 0; i < px.Length; i++) f[i] = px[i];
        return f;
    }

    /// <summary>H×W float32 grey, 0..255 (the first channel; slices and grey images have three equal channels).</summary>
    public float[] ImageGrayHw()
    {
        var px = Image.Pixels;
        var f = new float[Width * Height];
        for (int i = 0; i < f.Length; i++) f[i] = px[i * 3];
        return f;
    }

    /// <summary>
    /// 3×H×W float32 normalised by <paramref name="norm"/>. FairMedFM's segmentation path:
    /// <see cref="AlbumentationsNormalization.FairMedFMSegmentation"/> (BGR order, ImageNet statistics).
    /// </summary>
    public float[] ImageChw(INormalization norm) => norm.ToChw(Image);
}

/// <summary>A segmentation card's CSV read and validated: rows expanded into 2-D samples (images or slices).</summary>
public sealed class SegmentationDataset
{
    public required SegmentationCard Card { get; init; }
    public required IReadOnlyList<SegSample> Samples { get; init; }
    public required IReadOnlyList<SkippedVolume> SkippedVolumes { get; init; }
    /// <summary>Number of CSV data rows (images or volumes).</summary>
    public required int RowCount { get; init; }
    /// <summary>
    /// sha256 (hex) over the card's semantic JSON, the CSV bytes and, when hashed, every referenced image and label
    /// file's sha256 in row order (else a marker, so the two kinds of hash never coincide).
    /// </summary>
    public required string DataHash { get; init; }
    public required bool FilesHashed { get; init; }

    public int Count => Samples.Count;
    public IReadOnlyList<string> AttributeNames => Card.AttributeNames;
    public IReadOnlyList<string> GroupLabels(string attributeOrIntersection) => Card.GroupLabels(attributeOrIntersection);

    /// <summary>Distinct volume ids in first-appearance order.</summary>
    public IReadOnlyList<string> VolumeIds => Samples.Select(s => s.VolumeId).Distinct(StringComparer.Ordinal).ToList();

    /// <summary>Sample indices of one volume in slice order.</summary>
    public IReadOnlyList<int> SamplesOfVolume(string volumeId) =>
        Samples.Where(s => s.VolumeId == volumeId).OrderBy(s => s.SliceIndex ?? 0).Select(s => s.Index).ToList();

    public static SegmentationDataset Load(string cardPath, bool hashFiles = true, PathGuard? guard = null) =>
        Load(SegmentationCard.Load(cardPath, guard), hashFiles, guard);

    /// <param name="guard">Where the CSV, images and label maps may lie; <see cref="PathGuard.Current"/> when null.</param>
    public static SegmentationDataset Load(SegmentationCard card, bool hashFiles = true, PathGuard? guard = null)
    {
        guard ??= PathGuard.Current;
        card.Validate();
        var csvPath = Path.GetFullPath(card.MetadataCsv);
        var root = Path.GetFullPath(card.DataRoot);
        if (!Directory.Exists(root)) throw new DataException("data_root folder not found", card.SourceFile, field: "data_root");
        guard.Check(csvPath, "metadata CSV", card.SourceFile, field: "metadata_csv");
        if (!File.Exists(csvPath)) throw new DataException("metadata CSV not found", csvPath);
        byte[] csvBytes;
        try { csvBytes = File.ReadAllBytes(csvPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new DataException($"cannot read metadata CSV: {e.Message}", csvPath, inner: e); }
        var rows = LoadedDataset.ReadCsv(csvPath, csvBytes, out var header);
        if (rows.Count == 0) throw new DataException("the metadata CSV has no data rows", csvPath);

        int Col(string name)
        {
            int idx = Array.IndexOf(header, name);
            if (idx < 0)
                throw new DataException($"column not found in the CSV header (card '{card.Name}' needs it; header has: {string.Join(", ", header)})", csvPath, column: name);
            if (Array.IndexOf(header, name, idx + 1) >= 0) throw new DataException("column appears twice in the CSV header", csvPath, column: name);
            return idx;
        }
        int imgCol = Col(card.ImageColumn), lblCol = Col(card.LabelColumn);
        int? patCol = card.PatientIdColumn is null ? null : Col(card.PatientIdColumn);
        int? volCol = card.VolumeIdColumn is null ? null : Col(card.VolumeIdColumn);
        int? sliceCol = card.SliceIndexColumn is null ? null : Col(card.SliceIndexColumn);
        var attrCols = card.Attributes.Select(a => Col(a.Column)).ToArray();
        var interLabels = card.Intersections.Select(x => card.GroupLabels(x.Name)).ToArray();

        var samples = new List<SegSample>();
        var skipped = new List<SkippedVolume>();
        var fileHashes = hashFiles ? new List<string>() : null;
        var seenImages = new Dictionary<string, (int Row, string Rel)>(StringComparer.Ordinal);
        var perPatient = new PatientAttributeCheck(card.Attributes, csvPath);
        var seenSlices = new Dictionary<(string, int), int>();
        for (int r = 0; r < rows.Count; r++)
        {
            int rowNo = r + 1;
            var f = rows[r];
            string RelPath(int col, string colName, string what)
            {
                var rel = f[col].Trim();
                if (rel.Length == 0) throw new DataException($"empty {what} path", csvPath, rowNo, colName);
                return rel;
            }
            var relImg = RelPath(imgCol, card.ImageColumn, "image");
            var relLbl = RelPath(lblCol, card.LabelColumn, "label");
            var absImg = Path.GetFullPath(Path.Combine(root, relImg));
            // Compared after normalisation (image/./a.png is image/a.png): one image, one row.
            if (seenImages.TryGetValue(absImg, out var prev))
                throw new DataException(LoadedDataset.DuplicateImage(prev.Row, prev.Rel, rowNo, relImg), csvPath, rowNo, card.ImageColumn);
            seenImages[absImg] = (rowNo, relImg);
            var absLbl = Path.GetFullPath(Path.Combine(root, relLbl));
            guard.Check(absImg, "image", csvPath, rowNo, card.ImageColumn);
            guard.Check(absLbl, "label map", csvPath, rowNo, card.LabelColumn);
            if (!File.Exists(absImg)) throw new DataException($"image file not found: '{absImg}'", csvPath, rowNo, card.ImageColumn);
            if (!File.Exists(absLbl)) throw new DataException($"label file not found: '{absLbl}'", csvPath, rowNo, card.LabelColumn);
            string patient = patCol is { } pc ? f[pc].Trim() : relImg;
            if (patient.Length == 0) throw new DataException("empty patient id", csvPath, rowNo, card.PatientIdColumn);

            var groups = new Dictionary<string, string>(StringComparer.Ordinal);
            var codes = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int a = 0; a < card.Attributes.Count; a++)
            {
                var spec = card.Attributes[a];
                var g = spec.Encode(f[attrCols[a]], csvPath, rowNo);
                groups[spec.Name] = g;
                codes[spec.Name] = IndexOf(spec.GroupLabels, g);
            }
            for (int i = 0; i < card.Intersections.Count; i++)
            {
                var x = card.Intersections[i];
                var g = string.Join(IntersectionSpec.Separator, x.Of.Select(m => groups[m]));
                groups[x.Name] = g;
                codes[x.Name] = IndexOf(interLabels[i], g);
            }
            if (patCol is not null) perPatient.Add(patient, rowNo, f, attrCols, groups);

            bool imgVol = IsNifti(relImg), lblVol = IsNifti(relLbl);
            if (imgVol != lblVol)
                throw new DataException($"image '{relImg}' and label '{relLbl}' must both be 2-D images or both NIfTI volumes", csvPath, rowNo, card.LabelColumn);
            if (fileHashes is not null)
            {
                fileHashes.Add(HashFile(absImg, csvPath, rowNo, card.ImageColumn));
                fileHashes.Add(HashFile(absLbl, csvPath, rowNo, card.LabelColumn));
            }

            if (!imgVol)
            {
                // 2-D label maps are 8-bit PNGs (16-bit ones are refused when decoded): a larger value can never occur.
                if (card.Target.LabelValue > 255)
                    throw new DataException($"target.label_value {card.Target.LabelValue} cannot occur in the 8-bit label map '{relLbl}' (values 0..255; store larger label values as NIfTI)",
                        csvPath, rowNo, card.LabelColumn);
                string volumeId = relImg;
                int? slice = null;
                if (volCol is { } vc)
                {
                    volumeId = f[vc].Trim();
                    if (volumeId.Length == 0) throw new DataException("empty volume id", csvPath, rowNo, card.VolumeIdColumn);
                    var st = f[sliceCol!.Value].Trim();
                    if (!int.TryParse(st, NumberStyles.None, CultureInfo.InvariantCulture, out var k))
                        throw new DataException($"slice index '{st}' is not a non-negative integer", csvPath, rowNo, card.SliceIndexColumn);
                    if (seenSlices.TryGetValue((volumeId, k), out var prevRow))
                        throw new DataException($"slice {k} of volume '{volumeId}' is listed twice (also data row {prevRow})", csvPath, rowNo, card.SliceIndexColumn);
                    seenSlices[(volumeId, k)] = rowNo;
                    slice = k;
                }
                samples.Add(new SegSample
                {
                    Index = samples.Count, Id = relImg, Row = rowNo, ImagePath = absImg, LabelPath = absLbl,
                    RelativeImagePath = relImg, RelativeLabelPath = relLbl, PatientId = patient, VolumeId = volumeId, SliceIndex = slice,
                    Groups = groups, GroupCodes = codes,
                });
                continue;
            }

            // 3-D row: check the image header against the label volume, then pick the slices.
            if (volCol is not null)
                throw new DataException("volume_id_column/slice_index_column are for pre-cut 2-D slices; this row is a NIfTI volume (its slices are cut here)", csvPath, rowNo, card.VolumeIdColumn);
            var (imgShape, imgSpacing) = VolumeHeader(absImg, csvPath, rowNo, card.ImageColumn);
            var lblVolume = ReadNifti(absLbl, csvPath, rowNo, card.LabelColumn);
            CheckSameGrid(imgShape, imgSpacing, lblVolume, csvPath, rowNo, card.LabelColumn);
            int[] labels;
            try { labels = lblVolume.ReadLabels(); }
            catch (DataException e) { throw new DataException(e.Message, csvPath, rowNo, card.LabelColumn, inner: e); }
            var keep = VolumeSlicer.SelectSlices(labels, lblVolume.Shape, card.Slicing.Axis, card.Target.LabelValue, card.Slicing.Keep);
            if (keep.Length == 0)
            {
                skipped.Add(new SkippedVolume(rowNo, relImg, card.Slicing.Keep switch
                {
                    SliceKeep.Target => $"no slice along axis {card.Slicing.Axis} contains label {card.Target.LabelValue}",
                    _ => $"no slice along axis {card.Slicing.Axis} contains any label > 0",
                }));
                continue;
            }
            foreach (var k in keep)
                samples.Add(new SegSample
                {
                    Index = samples.Count, Id = $"{relImg}#axis{card.Slicing.Axis}/{k}", Row = rowNo, ImagePath = absImg,
                    LabelPath = absLbl, RelativeImagePath = relImg, RelativeLabelPath = relLbl, PatientId = patient, VolumeId = relImg, SliceIndex = k,
                    SliceAxis = card.Slicing.Axis, Groups = groups, GroupCodes = codes,
                });
        }
        if (samples.Count == 0)
            throw new DataException($"no sample: every volume was skipped ({string.Join("; ", skipped.Select(s => $"row {s.Row}: {s.Reason}"))})", csvPath);

        var sb = new StringBuilder("fairmedfm.segdata.v1\ncard:").Append(card.SemanticJson());
        sb.Append("\ncsv_sha256:").Append(Convert.ToHexStringLower(SHA256.HashData(csvBytes)));
        if (fileHashes is not null)
        {
            sb.Append("\nfiles_sha256:");
            foreach (var h in fileHashes) sb.Append('\n').Append(h);
        }
        else sb.Append("\nfiles:not-hashed");
        return new SegmentationDataset
        {
            Card = card, Samples = samples, SkippedVolumes = skipped, RowCount = rows.Count, FilesHashed = hashFiles,
            DataHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString()))),
        };
    }

    /// <summary>True for <c>.nii</c> and <c>.nii.gz</c> paths.</summary>
    public static bool IsNifti(string path) =>
        path.EndsWith(".nii", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".nii.gz", StringComparison.OrdinalIgnoreCase);

    private static int IndexOf(IReadOnlyList<string> list, string value)
    {
        for (int i = 0; i < list.Count; i++) if (list[i] == value) return i;
        return -1;
    }

    private static string HashFile(string path, string csv, int row, string column)
    {
        try { return Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path))); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new DataException($"cannot read '{path}': {e.Message}", csv, row, column, inner: e); }
    }

    private static (int[] Shape, double[] Spacing) VolumeHeader(string path, string csv, int row, string column)
    {
        try
        {
            var (_, shape, spacing) = Nifti.ReadHeader(path);
            return (shape, spacing);
        }
        catch (DataException e) { throw new DataException(e.Message, csv, row, column, inner: e); }
    }

    private static NiftiVolume ReadNifti(string path, string csv, int row, string column)
    {
        try { return Nifti.Read(path); }
        catch (DataException e) { throw new DataException(e.Message, csv, row, column, inner: e); }
    }

    private static void CheckSameGrid(int[] imgShape, double[] imgSpacing, NiftiVolume lbl, string csv, int row, string column)
    {
        if (!imgShape.SequenceEqual(lbl.Shape))
            throw new DataException($"label volume is {string.Join("x", lbl.Shape)} voxels but the image volume is {string.Join("x", imgShape)}", csv, row, column);
        for (int i = 0; i < 3; i++)
            if (Math.Abs(imgSpacing[i] - lbl.Spacing[i]) > 1e-4 * Math.Max(1, Math.Abs(imgSpacing[i])))
                throw new DataException($"label voxel spacing ({string.Join(", ", lbl.Spacing)}) differs from the image's ({string.Join(", ", imgSpacing)})", csv, row, column);
    }

    // ------------------------------------------------------------------------------------------ loading pixels

    private readonly object _cacheLock = new();
    private (string Path, byte[] Image, int[] Labels, int[] Shape)? _volumeCache;

    /// <summary>
    /// Loads one sample: decodes the image and label map (2-D) or cuts the slice from the volume (3-D; the scaled
    /// volume of the last volume used is cached, so iterating a volume's slices in order reads it once), applies the
    /// optional nearest-neighbour slice resize of the card, then <paramref name="transform"/>, builds the target mask
    /// and the prompts (seeded by <paramref name="runSeed"/> and the sample id). Thread-safe.
    /// </summary>
    public SegmentationItem LoadItem(int index, SegmentationTransform? transform = null, long runSeed = 0,
        CenterRule centerRule = CenterRule.BoxCenter)
    {
        if ((uint)index >= (uint)Samples.Count) throw new ArgumentOutOfRangeException(nameof(index), index, $"sample index outside 0..{Samples.Count - 1}");
        transform ??= new SegmentationTransform();
        var s = Samples[index];
        var csv = Card.MetadataCsv;
        RgbImage image;
        LabelMap labels;
        if (!s.FromVolume)
        {
            try { image = ImageDecoder.DecodeRgb(s.ImagePath); }
            catch (DataException e) { throw new DataException(e.Message, csv, s.Row, Card.ImageColumn, inner: e); }
            try { labels = SegImaging.DecodeLabelMap(s.LabelPath); }
            catch (DataException e) { throw new DataException(e.Message, csv, s.Row, Card.LabelColumn, inner: e); }
            if (image.Width != labels.Width || image.Height != labels.Height)
                throw new DataException($"label map '{s.LabelPath}' is {labels.Width}x{labels.Height} but the image '{s.ImagePath}' is {image.Width}x{image.Height}", csv, s.Row, Card.LabelColumn);
        }
        else
        {
            var (vol8, vlabels, shape) = Volume(s);
            int axis = s.SliceAxis!.Value, k = s.SliceIndex!.Value;
            var (gray, w, h) = VolumeSlicer.Slice(vol8, shape, axis, k);
            image = SegImaging.GrayToRgb(w, h, gray);
            labels = VolumeSlicer.Slice(vlabels, shape, axis, k);
            if (Card.Slicing.ResizeNearest is { } rn)
            {
                image = SegImaging.ResizeNearest(image, rn, rn);
                labels = SegImaging.ResizeNearest(labels, rn, rn);
            }
        }
        if (transform.Size is { } size)
        {
            image = SegImaging.ResizeLinearCv2(image, size, size);
            labels = SegImaging.ResizeNearest(labels, size, size);
        }
        var mask = labels.MaskOf(Card.Target.LabelValue);
        var prompts = PromptGenerator.FromMask(mask, labels.Width, labels.Height, runSeed, s.Id, centerRule);
        if (prompts.SkipReason == PromptSkipReason.EmptyMask)
            // Name the label file (where the value is missing), not only the image the sample id names.
            prompts = MaskPrompts.Skip(PromptSkipReason.EmptyMask, s.FromVolume
                ? $"skipped: empty mask (label value {Card.Target.LabelValue} does not occur in slice {s.SliceIndex} along axis {s.SliceAxis} of label volume '{s.RelativeLabelPath}')"
                : $"skipped: empty mask (label value {Card.Target.LabelValue} does not occur in label map '{s.RelativeLabelPath}' of image '{s.RelativeImagePath}')",
                prompts.Width, prompts.Height);
        return new SegmentationItem { Sample = s, Image = image, Labels = labels, Mask = mask, TargetValue = Card.Target.LabelValue, Prompts = prompts };
    }

    /// <summary>
    /// The label values (other than 0) that occur in the dataset's label files, and how many label files were read: what
    /// a cell reports when the target value occurs nowhere ("label value 7 occurs in none of the 46 label maps; values
    /// present: 1, 2"). Reads every label file once.
    /// </summary>
    public (SortedSet<int> Values, int Files) LabelValuesPresent(CancellationToken ct = default)
    {
        var values = new SortedSet<int>();
        var files = Samples.Select(s => (s.LabelPath, s.Row, s.FromVolume)).DistinctBy(x => x.LabelPath).ToList();
        foreach (var (path, row, volume) in files)
        {
            ct.ThrowIfCancellationRequested();
            int[] labels;
            try { labels = volume ? Nifti.Read(path).ReadLabels() : SegImaging.DecodeLabelMap(path).Values; }
            catch (DataException e) { throw new DataException(e.Message, Card.MetadataCsv, row, Card.LabelColumn, inner: e); }
            foreach (var v in labels) if (v != 0) values.Add(v);
        }
        return (values, files.Count);
    }

    private (byte[] Image, int[] Labels, int[] Shape) Volume(SegSample s)
    {
        lock (_cacheLock)
        {
            if (_volumeCache is { } c && c.Path == s.ImagePath) return (c.Image, c.Labels, c.Shape);
            var csv = Card.MetadataCsv;
            var img = ReadNifti(s.ImagePath, csv, s.Row, Card.ImageColumn);
            var lbl = ReadNifti(s.LabelPath, csv, s.Row, Card.LabelColumn);
            CheckSameGrid(img.Shape, img.Spacing, lbl, csv, s.Row, Card.LabelColumn);
            byte[] vol8;
            try { vol8 = VolumeSlicer.ScaleToUint8(img.ReadImage(), Card.Slicing.Intensity); }
            catch (ArgumentException e) { throw new DataException($"cannot scale the image volume: {e.Message}", csv, s.Row, Card.ImageColumn, inner: e); }
            int[] labels;
            try { labels = lbl.ReadLabels(); }
            catch (DataException e) { throw new DataException(e.Message, csv, s.Row, Card.LabelColumn, inner: e); }
            _volumeCache = (s.ImagePath, vol8, labels, img.Shape);
            return (vol8, labels, img.Shape);
        }
    }

    // ------------------------------------------------------------------------------------------ splits

    /// <summary>
    /// Seeded patient-level train/validation/test split of the samples with <see cref="PatientSplitter"/> (every
    /// patient's images or slices in one split; balanced by sample count and, with <paramref name="stratifyAttribute"/>,
    /// by that attribute's groups). FairMedFM evaluates every segmentation sample zero-shot and has no split; use one
    /// when a method needs training data. Indices in the result are sample indices.
    /// </summary>
    public DataSplit Split(int seed, SplitFractions? fractions = null, string? stratifyAttribute = null)
    {
        var card = Card.AttributeCard();
        var adapter = new LoadedDataset
        {
            Card = card,
            AttributeNames = card.AttributeNames,
            DataHash = DataHash,
            ImagesHashed = FilesHashed,
            // Segmentation has no class label: every sample counts as label 0, so only counts and groups are balanced.
            Samples = Samples.Select(s => new Sample
            {
                Index = s.Index, ImagePath = s.ImagePath, RelativePath = s.Id, PatientId = s.PatientId, Label = 0,
                Groups = s.Groups, GroupCodes = s.GroupCodes,
            }).ToList(),
        };
        return PatientSplitter.Split(adapter, seed, fractions, stratifyAttribute);
    }
}
