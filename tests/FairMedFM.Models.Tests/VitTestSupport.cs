using System.Text.Json;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>Reads a golden ViT case: weights (both formats), io tensors, config and tolerance from case.json.</summary>
public sealed class GoldenCase : IDisposable
{
    public string Name { get; }
    public string Dir { get; }
    public JsonElement Case { get; }
    public IReadOnlyDictionary<string, Tensor> Io { get; }

    /// <summary>Relative tolerance: 1e-4 per the golden README unless case.json says otherwise.</summary>
    public double Rel { get; } = 1e-4;

    public GoldenCase(string name)
    {
        Name = name;
        Dir = TestPaths.Golden(name);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "case.json")));
        Case = doc.RootElement.Clone();
        Io = SafeTensors.Load(Path.Combine(Dir, "io.safetensors"));
        // Every case states "max|diff| <= 1e-4 * max(1, max|ref|)"; read the factor from the text so a changed
        // fixture policy is honoured rather than silently overridden (the loosest stated factor wins).
        bool found = false;
        if (Case.TryGetProperty("tolerance", out var tol))
            foreach (var p in tol.EnumerateObject())
                if (p.Value.ValueKind == JsonValueKind.String &&
                    System.Text.RegularExpressions.Regex.Match(p.Value.GetString()!, @"<=\s*([0-9.eE+-]+)\s*\*") is { Success: true } m)
                {
                    double v = double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
                    Rel = found ? Math.Max(Rel, v) : v;
                    found = true;
                }
    }

    public string Weights(string ext) => Path.Combine(Dir, "weights." + ext);

    public JsonElement Config => Case.GetProperty("config");

    /// <summary>Weight keys and shapes as case.json lists them.</summary>
    public Dictionary<string, long[]> WeightKeys() =>
        Case.GetProperty("weights_keys").EnumerateObject()
            .ToDictionary(p => p.Name, p => p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray());

    public void Dispose()
    {
        foreach (var t in Io.Values) t.Dispose();
    }
}

/// <summary>Collects max|diff| per tensor and writes them to the test log.</summary>
public sealed class DiffLog
{
    private readonly ITestOutputHelper _out;
    private readonly string _prefix;
    private readonly double _rel;
    public Dictionary<string, double> Diffs { get; } = new();

    public DiffLog(ITestOutputHelper output, string prefix, double rel)
    {
        _out = output;
        _prefix = prefix;
        _rel = rel;
    }

    public void Check(Tensor expected, Tensor actual, string name)
    {
        double d = TensorAssert.Close(expected, actual, $"{_prefix}/{name}", _rel);
        Diffs[name] = d;
        _out.WriteLine($"{_prefix}/{name}: max|diff| {d:E2}");
    }
}
