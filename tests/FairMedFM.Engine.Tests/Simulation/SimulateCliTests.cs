using System.Text.Json.Nodes;

namespace FairMedFM.Engine.Tests.Simulation;

/// <summary>`fairmedfm simulate` end to end, in-process.</summary>
public sealed class SimulateCliTests
{
    [Fact]
    public async Task Simulate_prints_a_row_per_device_count_and_writes_the_json()
    {
        using var tmp = new TempDir();
        var json = tmp.File("sim.json");
        var (code, output) = await CliRunner.Run("simulate", "--devices", "1,4", "--datasets", "3", "--models", "2", "--usages", "4", "--methods", "1",
            "--seeds", "2", "--order", "both", "--failure-rate", "0.1", "--seed", "3", "--json", json);
        Assert.True(code == 0, output);
        Assert.Contains("3 datasets × 2 FMs × 4 usages × 1 methods × 2 seeds × 1 attribute(s) = 48 cells", output);
        Assert.Contains("GPU = 400 ×", output);
        Assert.Contains("longest-first", output);
        Assert.Contains("submission", output);
        var doc = JsonNode.Parse(File.ReadAllText(json))!;
        var results = doc["results"]!.AsArray();
        Assert.Equal(4, results.Count);                              // 2 device counts × 2 orders
        Assert.Equal(new[] { 1, 1, 4, 4 }, results.Select(r => (int)r!["devices"]!));
        Assert.All(results, r => Assert.Equal(48, (int)r!["done"]! + (int)r!["failed"]!));
        Assert.Equal(4, results[3]!["per_device"]!.AsArray().Count);
        Assert.Equal(48, (int)doc["cells"]!);
        Assert.Equal(400, (double)doc["calibration"]!["gpu"]!["speedup"]!);
    }

    [Fact]
    public async Task Simulate_takes_a_costs_file_and_refuses_bad_input_with_one_line()
    {
        using var tmp = new TempDir();
        var costs = tmp.File("costs.json");
        File.WriteAllText(costs, """{ "gpu": { "speedup": 50 } }""");
        var (code, output) = await CliRunner.Run("simulate", "--devices", "2", "--datasets", "1", "--models", "1", "--seeds", "1", "--methods", "1", "--costs", costs);
        Assert.True(code == 0, output);
        Assert.Contains("GPU = 50 ×", output);
        Assert.Contains("merged with " + costs, output);

        (code, output) = await CliRunner.Run("simulate", "--devices", "0");
        Assert.Equal(2, code);
        Assert.Contains("'0' is not a GPU count", output);
        File.WriteAllText(costs, """{ "gpu": { "speedup": -1 } }""");
        (code, output) = await CliRunner.Run("simulate", "--costs", costs);
        Assert.Equal(2, code);
        Assert.Contains("gpu.speedup must be", output);
        (code, output) = await CliRunner.Run("simulate", "--order", "random");
        Assert.Equal(2, code);
        Assert.Contains("--order 'random'", output);
    }

    [Fact]
    public async Task Simulate_checks_every_option_before_printing_and_names_keys_and_files_in_the_users_words()
    {
        var (code, output) = await CliRunner.Run("simulate", "--failure-rate", "2");
        Assert.Equal(2, code);
        Assert.StartsWith("error: --failure-rate must be in [0, 1] (got 2)", output.Trim());
        Assert.DoesNotContain("Sweep:", output);

        using var tmp = new TempDir();
        var costs = tmp.File("c.json");
        File.WriteAllText(costs, """{"gpux": {}}""");
        (code, output) = await CliRunner.Run("simulate", "--costs", costs);
        Assert.Equal(2, code);
        Assert.Contains("unknown key 'gpux'", output);
        Assert.Contains("gpu, training", output);
        Assert.DoesNotContain(".NET", output);
        Assert.DoesNotContain("FairMedFM.Engine", output);

        File.WriteAllText(costs, """{"gpu": {"speedup": "fast"}}""");
        (code, output) = await CliRunner.Run("simulate", "--costs", costs);
        Assert.Equal(2, code);
        Assert.Contains("gpu.speedup must be a number (got \"fast\")", output);
        Assert.DoesNotContain("BytePositionInLine", output);
        Assert.DoesNotContain("Path: $", output);

        File.WriteAllText(costs, """{"gpu": {"speedupp": 3}}""");
        (code, output) = await CliRunner.Run("simulate", "--costs", costs);
        Assert.Contains("unknown key 'gpu.speedupp' (known keys of gpu: speedup,", output);

        (code, output) = await CliRunner.Run("simulate", "--devices", "1", "--datasets", "1", "--models", "1", "--seeds", "1", "--json", "/proc/x.json");
        Assert.Equal(2, code);
        Assert.StartsWith("error: cannot write --json /proc/x.json:", output.Trim());
        Assert.DoesNotContain(".tmp", output);
        (code, output) = await CliRunner.Run("simulate", "--devices", "1", "--json", tmp.Path);
        Assert.Equal(2, code);
        Assert.Contains($"--json {tmp.Path} is a folder; give a file name", output);
    }
}
