namespace FairMedFM.Metrics.Tests;

/// <summary>Locates the repository root (the folder holding FairMedFM.sln) and the shared fixtures next to it.</summary>
internal static class TestPaths
{
    public static string RepoRoot => FairMedFM.Tests.Shared.RepoPaths.RepoRoot;

    /// <summary><c>$FAIRMEDFM_SHARED</c> if set, else <c>&lt;repo root&gt;/../shared</c>.</summary>
    public static string Shared => FairMedFM.Tests.Shared.RepoPaths.Shared;

    public static string MetricsGolden(string file) => Path.Combine(Shared, "golden", "metrics", file);
}
