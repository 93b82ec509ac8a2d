namespace FairMedFM.Data.Tests;

/// <summary>Locates the repository (walk up to FairMedFM.sln) and the shared data folder.</summary>
internal static class TestPaths
{
    public static string RepoRoot => FairMedFM.Tests.Shared.RepoPaths.RepoRoot;

    /// <summary><c>$FAIRMEDFM_SHARED</c> if set, else <c>&lt;repo&gt;/../shared</c>.</summary>
    public static string Shared => FairMedFM.Tests.Shared.RepoPaths.Shared;

    public static string GoldenPreprocessing => Path.Combine(Shared, "golden", "preprocessing");
    public static string NihDir => Path.Combine(Shared, "data", "nih_chestxray14_64px");
    public static string NihCard => Path.Combine(RepoRoot, "datasets", "nih_chestxray14_64px.yaml");
}

/// <summary>A temporary folder removed at dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "fmfm-data-" + Guid.NewGuid().ToString("N"));
    public TempDir() => Directory.CreateDirectory(Path);
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
