using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>Locates the repository and the shared fixtures folder.</summary>
public static class TestPaths
{
    /// <summary>First folder above the test binaries that holds FairMedFM.sln.</summary>
    public static string RepoRoot => FairMedFM.Tests.Shared.RepoPaths.RepoRoot;

    /// <summary>FAIRMEDFM_SHARED, else &lt;repo&gt;/../shared.</summary>
    public static string Shared => FairMedFM.Tests.Shared.RepoPaths.Shared;

    public static string Golden(string caseName) => Path.Combine(Shared, "golden", caseName);


    /// <summary>A fresh temp folder, deleted on dispose.</summary>
    public sealed class TempDir : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "fmfm-models-" + Guid.NewGuid().ToString("N"));
        public TempDir() => Directory.CreateDirectory(Path);
        public void Dispose() { try { Directory.Delete(Path, recursive: true); } catch (IOException) { } }
    }
}

public static class TensorAssert
{
    /// <summary>Same element count and every element equal (TorchSharp's Tensor.equal is element-wise).</summary>
    public static bool Same(Tensor a, Tensor b)
    {
        if (a.NumberOfElements != b.NumberOfElements) return false;
        using var scope = NewDisposeScope();
        return a.flatten().eq(b.flatten()).all().item<bool>();
    }

    /// <summary>The golden tolerance: max|actual − ref| ≤ rel · max(1, max|ref|). Returns max|diff|.</summary>
    public static double Close(Tensor expected, Tensor actual, string what, double rel = 1e-4)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var scope = NewDisposeScope();
        var e = expected.to(float64);
        var a = actual.to(float64);
        double maxRef = e.abs().max().item<double>();
        double diff = (a - e).abs().max().item<double>();
        double tol = rel * Math.Max(1.0, maxRef);
        Assert.True(diff <= tol, $"{what}: max|diff| = {diff:E3} > {tol:E3} (max|ref| = {maxRef:G6})");
        return diff;
    }
}
