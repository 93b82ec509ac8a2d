namespace FairMedFM.Engine.Tests;

/// <summary>yamllint over deploy/ with the repository's rules (deploy/.yamllint), warnings included.</summary>
public class DeployLintTests
{
    [Fact]
    public void Yamllint_passes_on_deploy()
    {
        var config = Path.Combine("deploy", ".yamllint");
        Assert.True(File.Exists(Path.Combine(TestPaths.RepoRoot, config)), "deploy/.yamllint is missing");
        var (rc, stdout, stderr) = DeployTools.Run("yamllint", new[] { "-c", config, "--strict", "-f", "parsable", "deploy" });
        Assert.True(rc == 0, $"yamllint found problems in deploy/ (exit {rc}):\n{stdout}{stderr}");
    }

    [Fact]
    public void Yamllint_config_catches_what_it_should()
    {
        // The rules are live: an over-long line and a duplicated key are reported.
        using var tmp = new TempDir();
        var bad = tmp.File("bad.yaml");
        File.WriteAllText(bad, "a: 1\na: 2\nb: " + new string('x', 170) + "\n");
        var (rc, stdout, _) = DeployTools.Run("yamllint", new[] { "-c", Path.Combine("deploy", ".yamllint"), "--strict", "-f", "parsable", bad });
        Assert.NotEqual(0, rc);
        Assert.Contains("key-duplicates", stdout);
        Assert.Contains("line-length", stdout);
        Assert.DoesNotContain("document-start", stdout);
    }
}
