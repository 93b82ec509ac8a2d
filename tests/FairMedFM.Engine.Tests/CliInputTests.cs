using Xunit;

namespace FairMedFM.Engine.Tests;

/// <summary>The command line's own bad input and interruptions: one line in the user's words, the documented exit code.</summary>
[Collection(BackboneCollection.Name)]
public sealed class CliInputTests
{
    /// <summary>A tiny card and a grid over it in <paramref name="tmp"/>; returns the grid's path.</summary>
    private static string TinyGrid(TempDir tmp, string name)
    {
        var card = TinyData.WriteCard(tmp.Sub("card"), name + "_tiny");
        var grid = tmp.File("g.yaml");
        File.WriteAllText(grid, TinyData.GridYaml(name + "-tiny", card));
        return grid;
    }

    /// <summary>40 rows of label, score and group (A/B): a small valid input for <c>fairmedfm evaluate</c>.</summary>
    private static string PredictionsCsv(TempDir tmp)
    {
        var csv = tmp.File("p.csv");
        File.WriteAllLines(csv, new[] { "label,score,group" }.Concat(Enumerable.Range(0, 40).Select(i => $"{i % 2},{(i % 2 == 0 ? 0.3 : 0.7) + i / 400.0},{(i % 4 < 2 ? "A" : "B")}")));
        return csv;
    }

    [Fact]
    public async Task An_interrupted_run_exits_130_saying_finished_cells_are_kept()
    {
        using var tmp = new TempDir();
        var grid = TinyGrid(tmp, "cancel");
        using var cts = new CancellationTokenSource();
        cts.Cancel(); // as Ctrl-C does through System.CommandLine's token
        var (code, o) = await CliRunner.Run(cts.Token, "run", "--grid", grid, "--out", tmp.File("out"), "--cache", tmp.File("cache"), "--plain");
        Assert.True(code == Client.Cli.ExitInterrupted, $"exit {code}: {o}");
        Assert.Contains("interrupted:", o);
        Assert.Contains("run the same command again", o);
        Assert.DoesNotContain("Exception", o);
    }

    [Fact]
    public async Task Two_cards_sharing_a_name_exit_2_before_any_cell()
    {
        using var tmp = new TempDir();
        var a = TinyData.WriteCard(tmp.Sub("a"), "same");
        var b = TinyData.WriteCard(tmp.Sub("b"), "same");
        var grid = tmp.File("g.yaml");
        File.WriteAllText(grid, TinyData.GridYaml("same-name", a).Replace($"[\"{a}\"]", $"[\"{a}\", \"{b}\"]"));
        var (code, o) = await CliRunner.Run("run", "--grid", grid, "--out", tmp.File("out"), "--cache", tmp.File("cache"), "--plain");
        Assert.True(code == 2, o);
        Assert.Contains("are both named 'same'", o);
        Assert.DoesNotContain("cells:", o);
    }

    [Fact]
    public async Task Parse_errors_say_what_kind_of_value_is_wanted_never_a_dotnet_type()
    {
        var (code, o) = await CliRunner.Run("evaluate", "--predictions", "p.csv", "--threshold-value", "abc");
        Assert.Equal(2, code);
        Assert.Contains("'abc'", o);
        Assert.Contains("as a number", o);
        Assert.DoesNotContain("System.", o);
        (code, o) = await CliRunner.Run("submit", "--grid", "g.yaml", "--parallelism", "abc");
        Assert.Equal(2, code);
        Assert.Contains("as a whole number", o);
        Assert.DoesNotContain("System.", o);
    }

    [Fact]
    public async Task Options_made_meaningless_by_others_are_said_to_be_ignored()
    {
        using var tmp = new TempDir();
        var csv = PredictionsCsv(tmp);
        var (code, o) = await CliRunner.Run("evaluate", "--predictions", csv, "--specificity", "0.5", "--ci", "bca", "--bootstrap", "0");
        Assert.True(code == 0, o);
        Assert.Contains("--specificity applies to --threshold fixed-specificity; ignored here", o);
        Assert.Contains("ignored with --bootstrap 0", o);
        (code, o) = await CliRunner.Run("evaluate", "--predictions", csv, "--bootstrap", "0");
        Assert.DoesNotContain("note:", o);
        // --weights naming a file is refused before any cell.
        File.WriteAllText(tmp.File("w"), "x");
        var grid = TinyGrid(tmp, "w");
        (code, o) = await CliRunner.Run("run", "--grid", grid, "--out", tmp.File("out"), "--cache", tmp.File("cache"), "--weights", tmp.File("w"));
        Assert.True(code == 2, o);
        Assert.Contains("is a file; give the folder that holds the weights", o);
    }

    [Fact]
    public async Task A_mistyped_command_gets_the_nearest_command()
    {
        var (code, o) = await CliRunner.Run("runn", "--grid", "g.yaml");
        Assert.Equal(2, code);
        Assert.Contains("did you mean run?", o);
    }

    [Fact]
    public async Task Empty_paths_and_an_unwritable_cache_exit_2_naming_the_option()
    {
        using var tmp = new TempDir();
        var grid = TinyGrid(tmp, "opt");
        var (code, o) = await CliRunner.Run("run", "--grid", grid, "--out", "", "--cache", tmp.File("cache"));
        Assert.True(code == 2, o);
        Assert.Contains("--out needs a path", o);
        // A cache under a file can never be created: refused before any cell, not once per cell.
        File.WriteAllText(tmp.File("afile"), "x");
        (code, o) = await CliRunner.Run("run", "--grid", grid, "--out", tmp.File("out"), "--cache", Path.Combine(tmp.File("afile"), "cache"));
        Assert.True(code == 2, o);
        Assert.Contains("cannot write the cache folder --cache", o);
        Assert.DoesNotContain("cells:", o);
        // A folder that cannot be created is called a folder (.NET says "Could not find file '/proc/…'").
        if (Directory.Exists("/proc/self"))
            Assert.Equal("the folder cannot be created there (its parent is missing or does not allow new folders)",
                Client.OutputFolder.CheckWritable("/proc/fairmedfm-no-such-folder"));
    }

    [Fact]
    public async Task Evaluate_names_its_own_flags_and_refuses_a_repeated_attribute_and_a_folder_for_json()
    {
        using var tmp = new TempDir();
        var csv = PredictionsCsv(tmp);
        var (code, o) = await CliRunner.Run("evaluate", "--predictions", csv, "--mode", "foo", "--bootstrap", "0");
        Assert.True(code == 2, o);
        Assert.Contains("--mode 'foo' is not one of", o);
        Assert.DoesNotContain("metrics.mode", o);
        (code, o) = await CliRunner.Run("evaluate", "--predictions", csv, "--ci-level", "1.5");
        Assert.Contains("--ci-level must be in (0, 1)", o);
        (code, o) = await CliRunner.Run("evaluate", "--predictions", csv, "--attribute", "group", "--attribute", "group", "--bootstrap", "0");
        Assert.True(code == 2, o);
        Assert.Contains("--attribute group is given more than once", o);
        (code, o) = await CliRunner.Run("evaluate", "--predictions", csv, "--json", tmp.Path, "--bootstrap", "0");
        Assert.True(code == 2, o);
        Assert.Contains("is a folder; give a file name", o);
    }
}
