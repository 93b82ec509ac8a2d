namespace FairMedFM.Metrics.Tests;

/// <summary>Locates the repository root (the folder holding FairMedFM.sln) and the shared fixtures next to it.</summary>
internal static class TestPaths
{
    private static readonly Lazy<string> RootLazy = new(FindRoot);

    public static string RepoRoot => RootLazy.Value;

    /// <summary><c>$FAIRMEDFM_SHARED</c> if set, else <c>&lt;repo root&gt;/../shared</c>.</summary>
    public static string Shared
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("FAIRMEDFM_SHARED");
            return string.IsNullOrWhiteSpace(env)
                ? Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"))
                : Path.GetFullPath(env);
        }
    }

    public static string MetricsGolden(string file) => Path.Combine(Shared, "golden", "metrics", file);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FairMedFM.sln")))
                return dir.FullName;
        throw new DirectoryNotFoundException($"No folder containing FairMedFM.sln above {AppContext.BaseDirectory}.");
    }
}
