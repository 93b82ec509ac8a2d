using System.Globalization;
using System.Text.Json;

namespace FairMedFM.Metrics.Tests;

/// <summary>Reads the metric golden JSON files (parsed once per file).</summary>
internal static class Golden
{
    private static readonly Lazy<JsonDocument> SklearnDoc = new(() => Load("metrics_golden.json"));
    private static readonly Lazy<JsonDocument> LegacyDoc = new(() => Load("fairmedfm_legacy_golden.json"));

    /// <summary>metrics_golden.json "cases".</summary>
    public static JsonElement Cases => SklearnDoc.Value.RootElement.GetProperty("cases");

    /// <summary>fairmedfm_legacy_golden.json root (cls_two_groups, cls_three_groups, seg_two_groups).</summary>
    public static JsonElement Legacy => LegacyDoc.Value.RootElement;

    public static IEnumerable<string> CaseNames => Cases.EnumerateObject().Select(p => p.Name).ToArray();

    private static JsonDocument Load(string file)
    {
        var path = TestPaths.MetricsGolden(file);
        Assert.True(File.Exists(path), $"golden file missing: {path}");
        return JsonDocument.Parse(File.ReadAllText(path));
    }

    /// <summary>Scores are stored as the exact float32 values written in float64, so the cast is lossless.</summary>
    public static float[] Floats(JsonElement a) => a.EnumerateArray().Select(e => (float)e.GetDouble()).ToArray();

    public static double[] Doubles(JsonElement a) => a.EnumerateArray().Select(e => e.GetDouble()).ToArray();

    public static int[] Ints(JsonElement a) => a.EnumerateArray().Select(e => checked((int)e.GetDouble())).ToArray();

    public static string[] GroupLabels(JsonElement a) =>
        a.EnumerateArray().Select(e => checked((int)e.GetDouble()).ToString(CultureInfo.InvariantCulture)).ToArray();

    public sealed record Input(float[] Prob, int[] Label, string[] Group);

    public static Input InputOf(JsonElement c) =>
        new(Floats(c.GetProperty("prob")), Ints(c.GetProperty("label")), GroupLabels(c.GetProperty("group")));
}
