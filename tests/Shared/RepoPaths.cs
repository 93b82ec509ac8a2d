namespace FairMedFM.Tests.Shared;

/// <summary>
/// Where the repository and the shared fixtures are, for every test project (linked into each, one copy of the rule):
/// the first folder above the test binaries that holds FairMedFM.sln, and <c>$FAIRMEDFM_SHARED</c> if set, else
/// <c>&lt;repo&gt;/../shared</c>.
/// </summary>
internal static class RepoPaths
{
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "FairMedFM.sln"))) return d.FullName;
        throw new DirectoryNotFoundException($"FairMedFM.sln not found above {AppContext.BaseDirectory}.");
    });

    public static string RepoRoot => Root.Value;

    public static string Shared
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("FAIRMEDFM_SHARED");
            return Path.GetFullPath(string.IsNullOrWhiteSpace(env) ? Path.Combine(RepoRoot, "..", "shared") : env);
        }
    }
}
