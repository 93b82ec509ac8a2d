using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FairMedFM.Data.Segmentation;

public enum SyntheticDimensionality { TwoD, ThreeD }

/// <summary>
/// Settings of a synthetic segmentation dataset. Each image (or volume) shows a large "organ" (label 1) with a smaller
/// "lesion" (label 2, the target) inside it, on a noisy background. A known difference is planted for one sex
/// (<see cref="AffectedSex"/>): its lesions have <see cref="ContrastFactor"/> × the contrast,
/// <see cref="SizeFactor"/> × the radii and <see cref="NoiseFactor"/> × the noise. With all three factors 1 the groups
/// differ only by chance.
/// </summary>
public sealed record SyntheticSegOptions
{
    public SyntheticDimensionality Dimensionality { get; init; } = SyntheticDimensionality.TwoD;
    public int Patients { get; init; } = 24;
    /// <summary>2-D: images per patient; 3-D: volumes per patient.</summary>
    public int ItemsPerPatient { get; init; } = 2;
    /// <summary>2-D image side (square), pixels.</summary>
    public int ImageSize { get; init; } = 64;
    /// <summary>3-D volume shape (Nx, Ny, Nz), slices along the last axis.</summary>
    public int[] VolumeShape { get; init; } = { 48, 48, 16 };
    /// <summary>3-D voxel spacing (mm), written into the NIfTI header.</summary>
    public double[] VoxelSpacing { get; init; } = { 0.8, 0.8, 2.5 };
    public long Seed { get; init; } = 20240611;
    /// <summary>"F" or "M": the group that gets the planted difference.</summary>
    public string AffectedSex { get; init; } = "F";
    public double ContrastFactor { get; init; } = 0.5;
    public double SizeFactor { get; init; } = 0.75;
    public double NoiseFactor { get; init; } = 1.5;
    /// <summary>Dataset name written into the card.</summary>
    public string Name { get; init; } = "";

    /// <summary>The default 2-D dataset (24 patients × 2 images of 64², planted difference for F).</summary>
    public static SyntheticSegOptions Default2D { get; } = new();

    /// <summary>The default 3-D dataset (12 patients × 1 volume of 48×48×16, int16 CT-like values, .nii.gz).</summary>
    public static SyntheticSegOptions Default3D { get; } = new()
    {
        Dimensionality = SyntheticDimensionality.ThreeD, Patients = 12, ItemsPerPatient = 1,
    };

    public string EffectiveName => Name.Length > 0 ? Name
        : Dimensionality == SyntheticDimensionality.TwoD ? "synthetic_seg2d" : "synthetic_seg3d";

    /// <summary>Upper limits, so that sizes stay within memory and 32-bit pixel indices: 2-D side ≤ 4096 px; 3-D side
    /// ≤ 1024 voxels and ≤ 67,108,864 voxels in all (e.g. 512×512×256); ≤ 100,000 patients, ≤ 1,000 items per patient and
    /// ≤ 100,000 items in all.</summary>
    public const int MaxImageSize = 4096, MaxVolumeSide = 1024, MaxVolumeVoxels = 1 << 26, MaxPatients = 100_000,
        MaxItemsPerPatient = 1000, MaxItems = 100_000;

    /// <param name="name">Maps a property name (Patients, ItemsPerPatient, ImageSize, VolumeShape, AffectedSex,
    /// ContrastFactor, SizeFactor, NoiseFactor, Name) to the word the caller's user knows (a CLI flag); identity when null.</param>
    public void Validate(Func<string, string>? name = null)
    {
        string N(string property) => name?.Invoke(property) ?? property;
        if (Patients is < 1 or > MaxPatients) throw new ArgumentException($"{N("Patients")} must be from 1 to {MaxPatients:N0}, got {Patients}");
        if (ItemsPerPatient is < 1 or > MaxItemsPerPatient) throw new ArgumentException($"{N("ItemsPerPatient")} must be from 1 to {MaxItemsPerPatient:N0}, got {ItemsPerPatient}");
        if ((long)Patients * ItemsPerPatient > MaxItems)
            throw new ArgumentException($"{N("Patients")} × {N("ItemsPerPatient")} = {(long)Patients * ItemsPerPatient:N0} items; at most {MaxItems:N0}");
        if (ImageSize is < 16 or > MaxImageSize) throw new ArgumentException($"{N("ImageSize")} must be from 16 to {MaxImageSize} pixels, got {ImageSize}");
        if (VolumeShape is not { Length: 3 } || VolumeShape.Take(2).Any(v => v < 16) || VolumeShape[2] < 4)
            throw new ArgumentException($"{N("VolumeShape")} must be 3 sizes, in-plane at least 16, slices at least 4");
        if (VolumeShape.Any(v => v > MaxVolumeSide) || (long)VolumeShape[0] * VolumeShape[1] * VolumeShape[2] > MaxVolumeVoxels)
            throw new ArgumentException($"{N("VolumeShape")} {string.Join(",", VolumeShape)} is too large: at most {MaxVolumeSide} per side and {MaxVolumeVoxels:N0} voxels in all (e.g. 512,512,256)");
        if (VoxelSpacing is not { Length: 3 } || VoxelSpacing.Any(v => !(v > 0) || !double.IsFinite(v)))
            throw new ArgumentException("VoxelSpacing must be 3 positive numbers");
        if (AffectedSex is not ("F" or "M")) throw new ArgumentException($"{N("AffectedSex")} must be F or M, got '{AffectedSex}'");
        if (!(ContrastFactor > 0) || !double.IsFinite(ContrastFactor)) throw new ArgumentException($"{N("ContrastFactor")} must be a positive number");
        if (!(SizeFactor > 0) || SizeFactor > 1.5) throw new ArgumentException($"{N("SizeFactor")} must be positive and at most 1.5 (so lesions stay inside organs)");
        if (!(NoiseFactor > 0) || !double.IsFinite(NoiseFactor)) throw new ArgumentException($"{N("NoiseFactor")} must be a positive number");
        if (EffectiveName.Any(c => char.IsWhiteSpace(c) || c is '"' or '\'' or ':' or '#'))
            throw new ArgumentException($"{N("Name")} must not contain spaces, quotes, ':' or '#'");
    }
}

/// <summary>The output folder holds files synth-seg did not write (refused without force).</summary>
public sealed class SyntheticOutputFolderException(string message) : Exception(message);

/// <summary>What <see cref="SyntheticSegmentation.Generate"/> wrote.</summary>
public sealed record SyntheticSegResult(string Folder, string CardPath, string MetadataCsv, int Rows, int Patients, int TargetLabel);

/// <summary>
/// Writes a seeded synthetic segmentation dataset in FairMedFM's layout (spec §2.6): <c>metadata.csv</c>
/// (<c>index, imagePath, labelPath, patient_id, sex, sexBinary, age</c>), <c>image/</c>, <c>label/</c> — 8-bit grey
/// PNGs for 2-D, int16 image and uint8 label <c>.nii.gz</c> volumes for 3-D — plus a ready segmentation card
/// (<c>card.yaml</c>: target = label 2, attributes sex, age60, age_bins and sex × age60) and
/// <c>synthetic.json</c> recording the options. Every item is drawn from its own stream
/// (<see cref="SegRandom.DeriveSeed"/> of the seed and the item id), so the output is identical for the same options.
/// </summary>
public static class SyntheticSegmentation
{
    public const int OrganLabel = 1;
    public const int LesionLabel = 2;

    /// <summary>
    /// Written first into every output folder: it marks the folder as synth-seg's and lists the files written, so a rerun
    /// removes exactly its own previous output (no stale images of patients that are gone) and nothing else.
    /// </summary>
    public const string MarkerFile = ".synth-seg-files";

    /// <summary>
    /// Generates into <paramref name="folder"/>: created when missing; when it holds synth-seg's own previous output (its
    /// <see cref="MarkerFile"/>), that output is removed first. Any other non-empty folder is refused (the user's own
    /// metadata.csv or card.yaml would be overwritten) unless <paramref name="force"/>, which overwrites files of the same
    /// names and leaves the rest.
    /// </summary>
    public static SyntheticSegResult Generate(string folder, SyntheticSegOptions? options = null, bool force = false)
    {
        var o = options ?? SyntheticSegOptions.Default2D;
        o.Validate();
        var root = Path.GetFullPath(folder);
        var planned = PlannedFiles(o);
        PrepareFolder(root, force);
        Directory.CreateDirectory(Path.Combine(root, "image"));
        Directory.CreateDirectory(Path.Combine(root, "label"));
        File.WriteAllText(Path.Combine(root, MarkerFile),
            "# written by fairmedfm synth-seg; the files below are removed when it writes into this folder again\n" + string.Join("\n", planned) + "\n");

        var csv = new StringBuilder("index,imagePath,labelPath,patient_id,sex,sexBinary,age\n");
        int row = 0;
        for (int p = 0; p < o.Patients; p++)
        {
            string pid = $"P{p:D4}";
            // Sex alternates (balanced); age is drawn per patient.
            string sex = p % 2 == 0 ? "F" : "M";
            var prng = new SegRandom(SegRandom.DeriveSeed(o.Seed, "synthetic:patient", pid));
            int age = 20 + prng.NextInt(66); // 20..85
            bool affected = sex == o.AffectedSex;
            for (int k = 0; k < o.ItemsPerPatient; k++)
            {
                string id = $"{pid}_{k:D2}";
                var rng = new SegRandom(SegRandom.DeriveSeed(o.Seed, "synthetic:item", id));
                string img, lbl;
                if (o.Dimensionality == SyntheticDimensionality.TwoD)
                {
                    img = $"image/{id}.png";
                    lbl = $"label/{id}.png";
                    var (pixels, labels) = Draw2D(o, rng, affected);
                    SegImaging.WriteGrayPng(Path.Combine(root, img), o.ImageSize, o.ImageSize, pixels);
                    SegImaging.WriteLabelPng(Path.Combine(root, lbl), new LabelMap(o.ImageSize, o.ImageSize, labels));
                }
                else
                {
                    img = $"image/{id}.nii.gz";
                    lbl = $"label/{id}.nii.gz";
                    var (values, labels) = Draw3D(o, rng, affected);
                    var origin = new[] { -o.VolumeShape[0] * o.VoxelSpacing[0] / 2, -o.VolumeShape[1] * o.VoxelSpacing[1] / 2, 0.0 };
                    Nifti.Write(Path.Combine(root, img), new NiftiWriteOptions
                    {
                        Shape = o.VolumeShape, DataType = NiftiDataType.Int16, Spacing = o.VoxelSpacing, Origin = origin,
                        Description = "FairMedFM.NET synthetic CT-like volume",
                    }, values);
                    Nifti.Write(Path.Combine(root, lbl), new NiftiWriteOptions
                    {
                        Shape = o.VolumeShape, DataType = NiftiDataType.UInt8, Spacing = o.VoxelSpacing, Origin = origin,
                        Description = "FairMedFM.NET synthetic labels 1=organ 2=lesion",
                    }, labels);
                }
                csv.Append(CultureInfo.InvariantCulture, $"{row},{img},{lbl},{pid},{(sex == "F" ? "female" : "male")},{sex},{age}\n");
                row++;
            }
        }
        var csvPath = Path.Combine(root, "metadata.csv");
        File.WriteAllText(csvPath, csv.ToString());

        var cardPath = Path.Combine(root, "card.yaml");
        File.WriteAllText(cardPath, CardYaml(o));
        var meta = new JsonObject
        {
            ["generator"] = "FairMedFM.Data.Segmentation.SyntheticSegmentation",
            // Written field by field (no reflection-based serialisation: works in trimmed/AOT hosts too).
            ["options"] = new JsonObject
            {
                ["dimensionality"] = o.Dimensionality == SyntheticDimensionality.TwoD ? "2d" : "3d",
                ["patients"] = o.Patients,
                ["items_per_patient"] = o.ItemsPerPatient,
                ["image_size"] = o.ImageSize,
                ["volume_shape"] = new JsonArray(o.VolumeShape.Select(v => (JsonNode)v).ToArray()),
                ["voxel_spacing"] = new JsonArray(o.VoxelSpacing.Select(v => (JsonNode)v).ToArray()),
                ["seed"] = o.Seed,
                ["affected_sex"] = o.AffectedSex,
                ["contrast_factor"] = o.ContrastFactor,
                ["size_factor"] = o.SizeFactor,
                ["noise_factor"] = o.NoiseFactor,
                ["name"] = o.EffectiveName,
            },
            ["labels"] = new JsonObject { ["0"] = "background", ["1"] = "organ", ["2"] = "lesion (target)" },
            ["planted_difference"] = $"sex {o.AffectedSex}: lesion contrast x{F(o.ContrastFactor)}, lesion radii x{F(o.SizeFactor)}, noise x{F(o.NoiseFactor)}",
        };
        File.WriteAllText(Path.Combine(root, "synthetic.json"), meta.ToJsonString(IndentedJson) + "\n");
        return new SyntheticSegResult(root, cardPath, csvPath, row, o.Patients, LesionLabel);
    }

    /// <summary>Every file <see cref="Generate"/> writes for <paramref name="o"/>, relative to the folder.</summary>
    private static List<string> PlannedFiles(SyntheticSegOptions o)
    {
        var ext = o.Dimensionality == SyntheticDimensionality.TwoD ? ".png" : ".nii.gz";
        var files = new List<string> { "metadata.csv", "card.yaml", "synthetic.json" };
        for (int p = 0; p < o.Patients; p++)
            for (int k = 0; k < o.ItemsPerPatient; k++)
            {
                files.Add($"image/P{p:D4}_{k:D2}{ext}");
                files.Add($"label/P{p:D4}_{k:D2}{ext}");
            }
        return files;
    }

    /// <summary>Refuses a foreign non-empty folder (unless forced) and removes synth-seg's own previous output.</summary>
    private static void PrepareFolder(string root, bool force)
    {
        if (File.Exists(root)) throw new IOException($"'{root}' is a file, not a folder");
        if (!Directory.Exists(root) || !Directory.EnumerateFileSystemEntries(root).Any()) return;
        var marker = Path.Combine(root, MarkerFile);
        if (!File.Exists(marker))
        {
            if (force) return;
            throw new SyntheticOutputFolderException(
                $"folder '{root}' is not empty and was not written by synth-seg (no {MarkerFile} in it); its metadata.csv, card.yaml, " +
                "image/ and label/ files would be overwritten. Choose a new or empty folder, or pass --force to write into it anyway");
        }
        foreach (var line in File.ReadAllLines(marker))
        {
            var rel = line.Trim();
            if (rel.Length == 0 || rel.StartsWith('#')) continue;
            var path = Path.GetFullPath(Path.Combine(root, rel));
            // Only files inside the folder, whatever the marker says.
            if (!path.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal)) continue;
            if (File.Exists(path)) File.Delete(path);
        }
        File.Delete(marker);
    }

    private static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static readonly JsonSerializerOptions IndentedJson = new()
    {
        WriteIndented = true,
        TypeInfoResolver = System.Text.Json.Serialization.Metadata.JsonTypeInfoResolver.Combine(),
    };

    /// <summary>The card written next to the data (paths relative to it).</summary>
    public static string CardYaml(SyntheticSegOptions o)
    {
        var sb = new StringBuilder();
        sb.Append("# Synthetic segmentation dataset written by FairMedFM.NET (SyntheticSegmentation.Generate).\n");
        sb.Append(CultureInfo.InvariantCulture, $"# Planted difference for sex {o.AffectedSex}: lesion contrast x{F(o.ContrastFactor)}, lesion radii x{F(o.SizeFactor)}, noise x{F(o.NoiseFactor)}; seed {o.Seed}.\n");
        sb.Append("task: segmentation\n");
        sb.Append(CultureInfo.InvariantCulture, $"name: {o.EffectiveName}\n");
        sb.Append("description: >-\n  Synthetic ")
          .Append(o.Dimensionality == SyntheticDimensionality.TwoD ? "2-D grey images (PNG)" : "3-D CT-like volumes (int16 NIfTI, sliced along the last axis)")
          .Append(" with an organ (label 1) and a lesion (label 2, the target).\n");
        sb.Append("data_root: .\n");
        sb.Append("image_column: imagePath\nlabel_column: labelPath\npatient_id_column: patient_id\n");
        sb.Append("target:\n  label_value: 2\n  name: lesion\n");
        if (o.Dimensionality == SyntheticDimensionality.ThreeD)
            sb.Append("slicing:\n  axis: 2\n  keep: target\n  intensity: minmax\n");
        sb.Append("""
            # Group code = order of the map: F = 0, M = 1 (FairMedFM's segmentation coding, sexBinary F -> 0).
            attributes:
              - name: sex
                column: sexBinary
                kind: categorical
                map: {F: "F", M: "M"}
              - name: age60
                column: age
                kind: threshold
                threshold: 60
                label_low: "<60"
                label_high: "60+"
              - name: age_bins
                column: age
                kind: bins
                edges: [40, 60]
                labels: ["<40", "40-59", "60+"]
            intersections:
              - name: sex_x_age60
                of: [sex, age60]

            """);
        return sb.ToString();
    }

    private static (byte[] Pixels, int[] Labels) Draw2D(SyntheticSegOptions o, SegRandom rng, bool affected)
    {
        int s = o.ImageSize;
        var labels = new int[s * s];
        var values = new double[s * s];
        // Organ: a large ellipse near the centre.
        double ocx = s * rng.Uniform(0.42, 0.58), ocy = s * rng.Uniform(0.42, 0.58);
        double orx = s * rng.Uniform(0.28, 0.36), ory = s * rng.Uniform(0.24, 0.34);
        // Lesion: a smaller ellipse inside the organ (radii shrunk for the affected group).
        double size = affected ? o.SizeFactor : 1.0;
        double lrx = s * rng.Uniform(0.08, 0.13) * size, lry = s * rng.Uniform(0.08, 0.13) * size;
        double lcx = ocx + rng.Uniform(-0.4, 0.4) * (orx - lrx), lcy = ocy + rng.Uniform(-0.4, 0.4) * (ory - lry);
        double contrast = 70 * (affected ? o.ContrastFactor : 1.0);
        double noise = 8 * (affected ? o.NoiseFactor : 1.0);
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++)
            {
                int i = y * s + x;
                double v = 40 + 10 * (double)y / s; // mild gradient
                if (Inside(x, y, ocx, ocy, orx, ory)) { labels[i] = OrganLabel; v = 110; }
                if (Inside(x, y, lcx, lcy, lrx, lry)) { labels[i] = LesionLabel; v = 110 + contrast; }
                values[i] = v + noise * rng.NextGaussian();
            }
        EnsureLesion(labels, s, s, (int)Math.Floor(lcx), (int)Math.Floor(lcy), values, 110 + contrast);
        var px = new byte[s * s];
        for (int i = 0; i < px.Length; i++) px[i] = (byte)Math.Clamp(Math.Round(values[i], MidpointRounding.ToEven), 0, 255);
        return (px, labels);
    }

    private static (double[] Values, int[] Labels) Draw3D(SyntheticSegOptions o, SegRandom rng, bool affected)
    {
        int nx = o.VolumeShape[0], ny = o.VolumeShape[1], nz = o.VolumeShape[2];
        var labels = new int[nx * ny * nz];
        var values = new double[labels.Length];
        double ocx = nx * rng.Uniform(0.42, 0.58), ocy = ny * rng.Uniform(0.42, 0.58), ocz = nz * rng.Uniform(0.45, 0.55);
        double orx = nx * rng.Uniform(0.28, 0.36), ory = ny * rng.Uniform(0.24, 0.34), orz = nz * rng.Uniform(0.35, 0.45);
        double size = affected ? o.SizeFactor : 1.0;
        double lrx = nx * rng.Uniform(0.08, 0.13) * size, lry = ny * rng.Uniform(0.08, 0.13) * size, lrz = nz * rng.Uniform(0.12, 0.2) * size;
        double lcx = ocx + rng.Uniform(-0.4, 0.4) * (orx - lrx), lcy = ocy + rng.Uniform(-0.4, 0.4) * (ory - lry);
        double lcz = ocz + rng.Uniform(-0.3, 0.3) * (orz - lrz);
        // CT-like values (HU): background -150, organ 40, lesion 40 + 90·contrast factor.
        double contrast = 90 * (affected ? o.ContrastFactor : 1.0);
        double noise = 15 * (affected ? o.NoiseFactor : 1.0);
        for (int k = 0; k < nz; k++)
            for (int j = 0; j < ny; j++)
                for (int i = 0; i < nx; i++)
                {
                    int idx = i + nx * (j + ny * k);
                    double v = -150;
                    if (Inside3(i, j, k, ocx, ocy, ocz, orx, ory, orz)) { labels[idx] = OrganLabel; v = 40; }
                    if (Inside3(i, j, k, lcx, lcy, lcz, lrx, lry, lrz)) { labels[idx] = LesionLabel; v = 40 + contrast; }
                    values[idx] = Math.Round(v + noise * rng.NextGaussian(), MidpointRounding.ToEven);
                }
        int ci = (int)Math.Floor(lcx), cj = (int)Math.Floor(lcy), ck = (int)Math.Floor(lcz);
        int c = ci + nx * (cj + ny * ck);
        if (labels[c] != LesionLabel) { labels[c] = LesionLabel; values[c] = Math.Round(40 + contrast); }
        return (values, labels);
    }

    private static bool Inside(double x, double y, double cx, double cy, double rx, double ry)
    {
        double dx = (x + 0.5 - cx) / rx, dy = (y + 0.5 - cy) / ry;
        return dx * dx + dy * dy <= 1;
    }

    private static bool Inside3(double x, double y, double z, double cx, double cy, double cz, double rx, double ry, double rz)
    {
        double dx = (x + 0.5 - cx) / rx, dy = (y + 0.5 - cy) / ry, dz = (z + 0.5 - cz) / rz;
        return dx * dx + dy * dy + dz * dz <= 1;
    }

    /// <summary>Very small lesions could miss every pixel centre: make sure the centre pixel is lesion.</summary>
    private static void EnsureLesion(int[] labels, int w, int h, int x, int y, double[] values, double v)
    {
        x = Math.Clamp(x, 0, w - 1);
        y = Math.Clamp(y, 0, h - 1);
        if (labels[y * w + x] == LesionLabel) return;
        labels[y * w + x] = LesionLabel;
        values[y * w + x] = v;
    }
}
