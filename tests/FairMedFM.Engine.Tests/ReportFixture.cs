using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using SkiaSharp;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// A synthetic results folder for the report tests: 2 datasets × 2 models × 2 attributes × 2 seeds of done cells, whose AUC gap
/// is undefined (TooFewGroups) for one dataset × model × attribute in both seeds, whose first cell has a group without positives
/// (its AUC undefined: NoPositives), and one failed cell; with a summary.md title and a LICENSE_AND_ATTRIBUTION file as a sweep
/// writes them. With <c>withCis</c> every defined metric also carries bootstrap bounds (<c>lower</c>/<c>upper</c>) in the JSON.
/// </summary>
internal static class ReportFixture
{
    public static readonly string[] Datasets = { "chest_a", "chest_b" };
    public static readonly string[] Models = { "fm-alpha", "fm-beta" };
    public static readonly string[] Attributes = { "sex", "age60" };
    public static readonly int[] Seeds = { 0, 1 };
    public const string Title = "synthetic-grid";
    public const string FailedError = "attribute 'ethnicity' is not in card chest_a (known: sex, age60)";
    public const string Attribution = "Synthetic test data. Attribution: made by the FairMedFM.NET report tests.\n";

    /// <summary>The dataset × model × attribute whose AUC gap is undefined in every seed.</summary>
    public static (string Dataset, string Model, string Attribute) UndefinedGap => ("chest_b", "fm-beta", "age60");

    public static List<CellResult> Cells()
    {
        var cells = new List<CellResult>();
        int k = 0;
        foreach (var a in Attributes)
        foreach (var d in Datasets)
        foreach (var m in Models)
        foreach (var s in Seeds)
        {
            var spec = Spec(d, m, a, s);
            var groups = a == "sex" ? new[] { "F", "M" } : new[] { "<60", "60+" };
            double auc = 0.62 + 0.06 * Array.IndexOf(Models, m) + 0.05 * Array.IndexOf(Datasets, d) + 0.01 * s;
            var gap = 0.04 + 0.05 * Array.IndexOf(Datasets, d) + 0.03 * Array.IndexOf(Models, m) + 0.005 * s;
            var summary = new Dictionary<string, MetricEntry>
            {
                ["overall-auc"] = new(auc), ["overall-acc"] = new(auc - 0.05), ["worst-auc"] = new(auc - gap / 2),
                ["auc-gap"] = (d, m, a) == UndefinedGap ? new MetricEntry(null, "TooFewGroups", "only group 60+ has both labels") : new(gap),
                ["acc-gap"] = new(gap / 2), ["eod"] = new(1 - gap), ["eo"] = new(gap * 1.5), ["overall-ece"] = new(0.05 + 0.01 * s), ["ece-gap"] = new(0.02),
            };
            GroupResult Group(string name, int i, bool noPositives) => new(name, 50 + 10 * i, noPositives ? 0 : 20 + i, noPositives ? 50 + 10 * i : 30 + 9 * i,
                new Dictionary<string, MetricEntry>
                {
                    ["auc"] = noPositives ? new MetricEntry(null, "NoPositives") : new(auc + (i == 0 ? gap / 2 : -gap / 2)),
                    ["acc"] = new(auc - 0.05 + 0.02 * i), ["tpr"] = noPositives ? new MetricEntry(null, "NoPositives") : new(0.7 - 0.1 * i),
                    ["tnr"] = new(0.6 + 0.05 * i),
                });
            cells.Add(new CellResult
            {
                CellId = spec.CellId, Spec = spec, Status = "done", DatasetName = d,
                DataHash = Hashing.Sha256Hex("data " + d), SplitHash = Hashing.Sha256Hex($"split {d} {a} {s}"), WeightsHash = Hashing.Sha256Hex("weights " + m),
                ConfigHash = Hashing.Of(spec), EmbeddingKey = Hashing.Sha256Hex($"emb {d} {m}")[..24], Sizes = new SplitSizes(300, 100, 100),
                Threshold = 0.42, ThresholdChosenOn = "validation", SelectedEpoch = 3, Summary = summary,
                Overall = new GroupResult("overall", 100, 45, 55, new Dictionary<string, MetricEntry>
                    { ["auc"] = new(auc), ["acc"] = new(auc - 0.05), ["tpr"] = new(0.65), ["tnr"] = new(0.62) }),
                Groups = groups.Select((g, i) => Group(g, i, noPositives: k == 0 && i == 1)).ToList(),
                StartedUtc = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero), FinishedUtc = new DateTimeOffset(2026, 1, 2, 3, 4, 6, TimeSpan.Zero),
            });
            k++;
        }
        cells.Add(CellResult.Failed(Spec("chest_a", "fm-alpha", "ethnicity", 0), FailedError, new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero)));
        return cells;
    }

    private static CellSpec Spec(string d, string m, string a, int s) => new()
    {
        Dataset = $"/cards/{d}.yaml", Model = m, Usage = "lp", Method = "erm", Attribute = a, Seed = s,
    };

    /// <summary>Writes results.json (+ summary.md, attribution) into <paramref name="dir"/> and returns the folder.</summary>
    public static string Write(string dir, bool withCis = false)
    {
        Directory.CreateDirectory(dir);
        var node = JsonSerializer.SerializeToNode(Cells(), JsonDefaults.Pretty)!.AsArray();
        if (withCis)
            foreach (var cell in node.OfType<JsonObject>())
            {
                if (cell["summary"] is JsonObject summary) foreach (var (_, e) in summary) AddCi(e);
                if (cell["overall"]?["values"] is JsonObject ov) foreach (var (_, e) in ov) AddCi(e);
                if (cell["groups"] is JsonArray groups)
                    foreach (var g in groups) if (g?["values"] is JsonObject gv) foreach (var (_, e) in gv) AddCi(e);
            }
        File.WriteAllText(Path.Combine(dir, "results.json"), node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.WriteAllText(Path.Combine(dir, "summary.md"), $"# FairMedFM.NET sweep `{Title}`\n\nsynthetic\n");
        File.WriteAllText(Path.Combine(dir, "chest_a.LICENSE_AND_ATTRIBUTION.txt"), Attribution);
        return dir;
    }

    /// <summary>Bounds ±0.03 around the value, as the bootstrap's fields (lower/upper) would be written.</summary>
    private static void AddCi(JsonNode? entry)
    {
        if (entry is not JsonObject o || o["value"] is not JsonValue v || !v.TryGetValue<double>(out var x)) return;
        o["lower"] = Math.Round(x - 0.03, 6);
        o["upper"] = Math.Round(x + 0.03, 6);
    }

    /// <summary>Decodes a PNG with SkiaSharp; returns (width, height, distinct colours, pixels that are clearly coloured).</summary>
    public static (int Width, int Height, int Distinct, int Colourful) DecodePng(string path)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length > 8, path + " is empty");
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        using var bmp = SKBitmap.Decode(bytes);
        Assert.NotNull(bmp);
        var distinct = new HashSet<uint>();
        int colourful = 0;
        for (int y = 0; y < bmp.Height; y += 2)
        for (int x = 0; x < bmp.Width; x += 2)
        {
            var c = bmp.GetPixel(x, y);
            distinct.Add((uint)c);
            var max = Math.Max(c.Red, Math.Max(c.Green, c.Blue)); var min = Math.Min(c.Red, Math.Min(c.Green, c.Blue));
            if (max - min > 60) colourful++;
        }
        return (bmp.Width, bmp.Height, distinct.Count, colourful);
    }

    /// <summary>The text content of every SVG &lt;text&gt; element (ScottPlot writes one per line, padded with whitespace).</summary>
    public static List<string> SvgTexts(string svg) =>
        System.Text.RegularExpressions.Regex.Matches(svg, @"<text\b[^>]*>\s*(.*?)\s*</text>", System.Text.RegularExpressions.RegexOptions.Singleline)
            .Select(m => System.Net.WebUtility.HtmlDecode(m.Groups[1].Value)).ToList();

    public static string Inv(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);
}
