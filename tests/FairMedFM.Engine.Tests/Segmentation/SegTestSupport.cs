using FairMedFM.Data.Segmentation;
using FairMedFM.Engine.Segmentation;
using FairMedFM.Models;
using FairMedFM.Models.Sam;
using FairMedFM.Models.Vit;

namespace FairMedFM.Engine.Tests.Segmentation;

/// <summary>Segmentation tests share static counters (encoder forwards, model loads): they run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class SegCollection
{
    public const string Name = "segmentation";
}

/// <summary>
/// The tiny SAM of the golden fixture (../shared/golden/sam_vit: segment-anything's modules at img 128, embed 64, depth 2,
/// prompt dim 32, weights from the original code) registered as a segmentation model, and small synthetic datasets.
/// With these weights the masks are meaningless as segmentations (random-init network), but every stage of the real
/// pipeline — encoder, cache, prompt encoder, decoder, post-processing, metrics — runs exactly as it would for SAM ViT-B.
/// </summary>
internal static class SegTestSupport
{
    public const string TinySam = "tiny-sam-golden";
    public const int TinySize = 128;

    public static string GoldenWeights => Path.Combine(TestPaths.Shared, "golden", "sam_vit", "weights.safetensors");

    public static SamVitConfig TinyVit { get; } = new()
    {
        ImgSize = TinySize, PatchSize = 16, EmbedDim = 64, Depth = 2, NumHeads = 4, OutChans = 32, WindowSize = 5, GlobalAttnIndexes = [1],
    };

    public static SegModelCard TinyCard { get; } = new()
    {
        Id = TinySam,
        Family = SegModelZoo.FamilySamVit,
        Sam = SamConfig.ForVit(TinyVit) with { MaskInChans = 16, DecoderMlpDim = 64, DecoderHeads = 4, IouHeadHiddenDim = 32 },
        Vit = TinyVit,
        ImageEncoderFactory = name => new SamImageEncoderViT(name, TinyVit),
        Architecture = "golden sam_vit fixture: SAM ViT at 128 px, embed 64, depth 2, prompt dim 32",
        WeightsFile = "weights.safetensors",
        WeightsLayout = "golden fixture state dict",
        WeightsUrl = "../shared/golden/sam_vit",
        NormalizationKind = "sam-pixel",
        NormalizationNote = "as SAM",
        License = "test fixture",
        Source = "segment-anything @ dca509f, reduced dims",
        Verification = "golden",
    };

    private static int _registered;

    /// <summary>Registers the tiny SAM once per process (idempotent).</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1) return;
        SegModelCatalog.Register(TinyCard, _ =>
        {
            var model = SegModelZoo.Build(TinyCard);
            model.LoadCheckpoint(GoldenWeights);
            model.eval();
            foreach (var p in model.parameters()) p.requires_grad = false;
            return new LoadedSegModel(TinyCard, model, GoldenWeights, WeightLoader.FileSha256(GoldenWeights));
        });
    }

    /// <summary>A small 2-D synthetic dataset (64² PNGs, sex alternating, planted gap for F unless the factors say otherwise).</summary>
    public static SyntheticSegResult Synth2D(string folder, int patients = 8, double contrast = 0.5, double size = 0.75, double noise = 1.5, string name = "seg2d_test",
        long seed = 20240611) =>
        SyntheticSegmentation.Generate(folder, SyntheticSegOptions.Default2D with
        {
            Seed = seed, Patients = patients, ItemsPerPatient = 1, ContrastFactor = contrast, SizeFactor = size, NoiseFactor = noise, Name = name,
        });

    /// <summary>A small 3-D synthetic dataset (32×32×8 int16 NIfTI volumes, one per patient).</summary>
    public static SyntheticSegResult Synth3D(string folder, int patients = 4, string name = "seg3d_test") =>
        SyntheticSegmentation.Generate(folder, SyntheticSegOptions.Default3D with
        {
            Patients = patients, VolumeShape = [32, 32, 8], Name = name,
        });

    public static Config.CellSpec Cell(string card, string model, string usage, string attribute = "sex", int seed = 0, string normalization = "model",
        int bootstrap = 50) => new()
    {
        Dataset = Path.GetFullPath(card), Model = model, Usage = usage, Method = "erm", Attribute = attribute, Seed = seed,
        Normalization = normalization, Metrics = new Config.MetricsConfig { Bootstrap = bootstrap },
    };

    /// <summary>Rows of a records file as column → value maps.</summary>
    public static List<Dictionary<string, string>> ReadRecords(string path)
    {
        var rows = new List<Dictionary<string, string>>();
        var options = new CsvHelper.CsvReaderOptions { Separator = ',', HasHeader = true, MalformedData = CsvHelper.CsvMalformedDataHandling.Throw };
        using var reader = CsvHelper.CsvReader.Create(File.ReadAllBytes(path), options);
        var header = reader.Headers.ToList();
        while (reader.Read())
        {
            var d = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int i = 0; i < header.Count; i++) d[header[i]] = reader.GetString(i) ?? "";
            rows.Add(d);
        }
        return rows;
    }
}
