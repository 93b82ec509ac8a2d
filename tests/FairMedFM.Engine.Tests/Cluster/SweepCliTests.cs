using System.CommandLine;
using FairMedFM.Client;
using FairMedFM.Grains;

namespace FairMedFM.Engine.Tests.Cluster;

/// <summary>The cluster commands' parsing, validation and unreachable-cluster behaviour (no cluster needed), and the
/// redaction of Redis secrets in everything the CLI and silo print.</summary>
public sealed class SweepCliTests
{
    private static ParseResult Parse(params string[] args) => new Cli().Build().Parse(args);

    [Theory]
    [InlineData("submit --grid g.yaml")]
    [InlineData("submit --grid g.yaml --sweep s1 --parallelism 4 --device cuda --redis 127.0.0.1:6379")]
    [InlineData("status")]
    [InlineData("status s1 --gateway 127.0.0.1:30000")]
    [InlineData("watch s1 --plain")]
    [InlineData("cancel s1")]
    [InlineData("rerun s1 --failed")]
    [InlineData("parallelism s1 3")]
    [InlineData("parallelism s1 0")]
    [InlineData("matrix s1 --usage lp --method erm --attribute sex --metric eod")]
    [InlineData("matrix s1 --cell abc --limit 5")]
    [InlineData("results s1 --format json --out r.json")]
    public void Valid_command_lines_parse(string line) => Assert.Empty(Parse(line.Split(' ')).Errors);

    [Theory]
    [InlineData("submit", "--grid")]
    [InlineData("rerun s1", "--failed")]
    [InlineData("parallelism s1 -2", "≥ 0")]
    [InlineData("parallelism s1", "N")]
    [InlineData("results s1 --format xml --out r", "csv or json")]
    [InlineData("results s1", "--out")]
    [InlineData("cancel", "SWEEP")]
    public void Invalid_command_lines_say_what_is_wrong(string line, string expected)
    {
        var errors = Parse(line.Split(' ')).Errors;
        Assert.NotEmpty(errors);
        Assert.Contains(errors, e => e.Message.Contains(expected));
    }

    [Theory]
    [InlineData("run --grid g.yaml --bogus-flag", "--bogus-flag", "fairmedfm run --help")]
    [InlineData("run", "--grid", "fairmedfm run --help")]
    [InlineData("results s1 --format xml --out r", "csv or json", "fairmedfm results --help")]
    [InlineData("parallelism s1 -5", "≥ 0", "fairmedfm parallelism --help")]
    [InlineData("run --grdi g.yaml", "--grdi", "did you mean --grid?")]
    public async Task Usage_errors_exit_2_with_the_error_and_a_help_hint_not_the_whole_help(string line, string error, string hint)
    {
        var (code, output) = await CliRunner.Run(line.Split(' '));
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains(error, output);
        Assert.Contains(hint, output);
        Assert.DoesNotContain("Options:", output);
        Assert.DoesNotContain("Usage:", output);
    }

    [Fact]
    public async Task Cluster_commands_without_a_cluster_exit_3_with_a_clear_message()
    {
        var saved = Environment.GetEnvironmentVariable("FAIRMEDFM_REDIS");
        Environment.SetEnvironmentVariable("FAIRMEDFM_REDIS", null);
        try
        {
            var (code, output) = await CliRunner.Run("status", "s1");
            Assert.Equal(SweepCommands.ExitUnreachable, code);
            Assert.Contains("needs a running cluster", output);
            Assert.Contains("--redis", output);
        }
        finally { Environment.SetEnvironmentVariable("FAIRMEDFM_REDIS", saved); }
    }

    [Fact]
    public async Task An_unreachable_gateway_exits_3()
    {
        var (code, output) = await CliRunner.Run("status", "--gateway", "127.0.0.1:1");
        Assert.Equal(SweepCommands.ExitUnreachable, code);
        Assert.Contains("could not reach", output);
    }

    [Fact]
    public async Task An_unreachable_redis_exits_3_and_never_prints_the_password()
    {
        var (code, output) = await CliRunner.Run("watch", "s1", "--redis", "127.0.0.1:1,password=hunter2-secret,connectTimeout=300,abortConnect=false");
        Assert.Equal(SweepCommands.ExitUnreachable, code);
        Assert.Contains("127.0.0.1:1", output);
        Assert.DoesNotContain("hunter2", output);
    }

    [Theory]
    [InlineData("garbage=,,ssl=maybe")]
    [InlineData("127.0.0.1:6379,password=hunter2-secret,ssl=maybe")]
    [InlineData("abortConnect=false,password=hunter2-secret")]
    public async Task A_malformed_redis_string_is_bad_input_and_never_echoed(string connection)
    {
        var (code, output) = await CliRunner.Run("status", "--redis", connection);
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains("--redis", output);
        Assert.DoesNotContain("hunter2", output);
        Assert.DoesNotContain("Exception", output);
    }

    [Fact]
    public async Task A_malformed_gateway_is_bad_input()
    {
        var (code, output) = await CliRunner.Run("status", "--gateway", "nohostport");
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains("not host:port", output);
    }

    [Fact]
    public async Task Redis_with_nothing_listening_fails_in_seconds_with_a_user_message()
    {
        int port;
        using (var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0)) { l.Start(); port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port; }
        using var tmp = new TempDir();
        var card = TinyData.WriteCard(tmp.Sub("card"), "cli_unreach");
        var grid = tmp.File("g.yaml");
        File.WriteAllText(grid, TinyData.GridYaml("cli-unreach", card));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (code, output) = await CliRunner.Run("submit", "--grid", grid, "--redis", $"127.0.0.1:{port},password=hunter2-secret");
        sw.Stop();
        Assert.Equal(SweepCommands.ExitUnreachable, code);
        Assert.Contains($"cannot reach Redis at 127.0.0.1:{port}: connection refused", output);
        Assert.Contains("redis-server", output);
        Assert.DoesNotContain("abortConnect", output);
        Assert.DoesNotContain("hunter2", output);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(8), $"took {sw.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public void Redis_descriptions_and_parse_errors_redact_the_password()
    {
        var o = FairMedFMHosting.ParseRedis("redis.example:6380,password=s3cr3t-pw,ssl=true,user=fmfm");
        var d = FairMedFMHosting.Describe(o);
        Assert.Contains("redis.example:6380", d);
        Assert.Contains("TLS", d);
        Assert.DoesNotContain("s3cr3t", d);
        Assert.DoesNotContain("fmfm", d);
        var e = Assert.Throws<ArgumentException>(() => FairMedFMHosting.ParseRedis("host:1,password=s3cr3t-pw,nosuchoption=1"));
        Assert.DoesNotContain("s3cr3t", e.Message);
    }

    [Fact]
    public async Task Submit_with_a_bad_grid_or_device_exits_2()
    {
        using var tmp = new TempDir();
        var (code, output) = await CliRunner.Run("submit", "--grid", tmp.File("missing.yaml"));
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains("grid file not found", output);

        var card = TinyData.WriteCard(tmp.Sub("card"), "cli_sweep");
        var grid = tmp.File("g.yaml");
        File.WriteAllText(grid, TinyData.GridYaml("cli-sweep", card));
        (code, output) = await CliRunner.Run("submit", "--grid", grid, "--device", "gpu");
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains("device requirement 'gpu'", output);
        (code, output) = await CliRunner.Run("submit", "--grid", grid, "--sweep", "a/b");
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains("sweep id", output);
    }

    [Fact]
    public void A_submission_carries_every_distinct_cell_with_its_canonical_spec()
    {
        using var tmp = new TempDir();
        var card = TinyData.WriteCard(tmp.Sub("card"), "cli_sub");
        var grid = tmp.File("g.yaml");
        File.WriteAllText(grid, TinyData.GridYaml("cli-sub", card, seeds: "[0, 1, 2]"));
        var sub = SweepCommands.BuildSubmission(grid, null, 3, "cuda");
        var expanded = Config.GridSpec.Load(grid).Expand();
        Assert.Equal("cli-sub", sub.SweepId);
        Assert.Equal(3, sub.Parallelism);
        Assert.Equal(expanded.Select(c => c.CellId), sub.Cells.Select(c => c.CellId));
        Assert.All(sub.Cells, c =>
        {
            Assert.Equal("cuda", c.Requirement);
            Assert.Equal(c.CellId, System.Text.Json.JsonSerializer.Deserialize<Config.CellSpec>(c.SpecJson, JsonDefaults.Canonical)!.CellId);
        });
        Assert.Throws<ArgumentException>(() => SweepCommands.BuildSubmission(grid, null, -1, "cpu"));
    }

    [Fact]
    public void Results_csv_has_one_row_per_cell_with_state_and_metric_columns()
    {
        var ledger = new[]
        {
            new SweepCellView("c1", "a × b", "done", 1, "s", "cpu", null, Array.Empty<string>(), null, "cpu", null),
            new SweepCellView("c2", "a × c", "failed", 3, null, null, "boom, twice", new[] { "x" }, null, "cpu", null),
        };
        var summaries = new Dictionary<string, CellSummary>
        {
            ["c1"] = new("c1", "ds", "m", "lp", "erm", "sex", 0, JobPhase.Done, null,
                new Dictionary<string, MetricDto> { ["overall-auc"] = new(0.75, null, 0.6, 0.9), ["auc-gap"] = new(null, "SingleGroup") },
                Array.Empty<GroupSizeDto>(), null),
        };
        var lines = SweepCommands.ResultsCsv(ledger, summaries).TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.Equal(3, lines.Count);
        Assert.StartsWith("cell_id,dataset,model,usage,method,attribute,seed,state,attempts,reason,auc-gap,auc-gap:undefined,auc-gap:lo,auc-gap:hi,overall-auc", lines[0]);
        Assert.Equal("c1,ds,m,lp,erm,sex,0,done,1,,,SingleGroup,,,0.75,,0.6,0.9", lines[1]);
        Assert.Equal("c2,,,,,,,failed,3,\"boom, twice\",,,,,,,,", lines[2]);
        var json = SweepCommands.ResultsJson("s", ledger, summaries);
        Assert.Contains("\"state\": \"failed\"", json);
        Assert.Contains("\"overall-auc\"", json);
    }
}

/// <summary>What a fresh user hit in the cluster verbs: unparsable counts, a negative --limit, the progress line printed twice,
/// and --out naming a folder.</summary>
public sealed class SweepVerbInputTests
{
    [Theory]
    [InlineData("parallelism sweep-c abc", "N must be a whole number ≥ 0 (got 'abc')")]
    [InlineData("parallelism sweep-c 1.5", "N must be a whole number ≥ 0 (got '1.5')")]
    [InlineData("parallelism sweep-c 99999999999", "N must be a whole number ≥ 0 (got '99999999999')")]
    [InlineData("parallelism sweep-c -2", "N must be a whole number ≥ 0 (got '-2')")]
    [InlineData("matrix sweep-c --cell abc --limit -2", "--limit must be a whole number ≥ 0 (got '-2')")]
    [InlineData("matrix sweep-c --cell abc --limit x", "--limit must be a whole number ≥ 0 (got 'x')")]
    public async Task Unparsable_or_negative_counts_exit_2_in_the_users_words(string line, string expected)
    {
        var (code, output) = await CliRunner.Run(line.Split(' '));
        Assert.Equal(SweepCommands.ExitBadInput, code);
        Assert.Contains(expected, output);
        Assert.DoesNotContain("System.Int32", output);
    }

    [Fact]
    public void Status_prints_the_progress_line_once()
    {
        var writer = new StringWriter();
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Ansi = Spectre.Console.AnsiSupport.No, ColorSystem = Spectre.Console.ColorSystemSupport.NoColors,
            Interactive = Spectre.Console.InteractionSupport.No, Out = new Spectre.Console.AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 240;
        var s = new SweepStatus("sweep-b", "g", true, 12, 0, 0, 12, 0, 0, 0, 0, 0, null, [], [], DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);
        new SweepCommands(console).PrintStatus(s, [], detail: true);
        var output = writer.ToString();
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(output, "12/12 finished"));
    }

    [Fact]
    public void An_output_file_that_is_a_folder_or_cannot_be_created_is_named_in_the_users_words()
    {
        using var tmp = new TempDir();
        var dir = tmp.Sub("out");
        Assert.Equal($"--out {dir} is a folder; give a file name", OutputFile.Write(dir, "x", "--out"));
        var missing = Path.Combine(tmp.File("nowhere"), "r.csv");
        Assert.StartsWith($"cannot write --out {missing}: the folder", OutputFile.Write(missing, "x", "--out"));
        Assert.Null(OutputFile.Write(Path.Combine(dir, "r.csv"), "x", "--out"));
        Assert.Equal("x", File.ReadAllText(Path.Combine(dir, "r.csv")));
    }
}
