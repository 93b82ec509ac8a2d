using System.Diagnostics;
using System.Globalization;
using FairMedFM.Client;
using Spectre.Console;

namespace FairMedFM.Cluster.Tests;

/// <summary>
/// Bad cluster configuration with real processes: a silo given a port that is not a number or a Redis password that Redis
/// refuses stops at once with one line and its exit code (2 bad configuration, 3 Redis refusing or unreachable), never the
/// password; the CLI says "authentication failed" within seconds instead of after StackExchange.Redis's retries.
/// </summary>
public sealed class ConfigurationTests : IDisposable
{
    private const string Password = "right-pw-7731";
    private readonly string _root = Path.Combine(Path.GetTempPath(), "fmfm-config-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly List<IDisposable> _owned = new();

    public void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private async Task<RedisServer> RedisWithPasswordAsync()
    {
        var redis = new RedisServer(Path.Combine(_root, "redis"), Path.Combine(_root, "redis.log"), appendOnly: false, password: Password);
        _owned.Add(redis);
        await redis.StartAsync();
        return redis;
    }

    private async Task<(int? Code, string Output, TimeSpan Took)> SiloAsync(IReadOnlyDictionary<string, string> env, params string[] args)
    {
        var sw = Stopwatch.StartNew();
        var env2 = new Dictionary<string, string>(env)
        {
            ["FAIRMEDFM_ParentPid"] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture),
            ["FAIRMEDFM_Cache"] = Path.Combine(_root, "cache"),
            ["FAIRMEDFM_HealthPort"] = Ports.Free().ToString(CultureInfo.InvariantCulture),
            ["FAIRMEDFM_GatewayPort"] = Ports.Free().ToString(CultureInfo.InvariantCulture),
        };
        var p = ChildProcess.Start("silo", "dotnet", [TestPaths.SiloDll, .. args], env2, Path.Combine(_root, $"silo-{Guid.NewGuid():N}.log"), _root);
        _owned.Add(p);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try { await p.WaitForExitAsync(cts.Token); } catch (OperationCanceledException) { }
        await Task.Delay(200); // the last lines of the log
        return (p.ExitCode, p.Tail(), sw.Elapsed);
    }

    [Fact]
    public async Task A_silo_port_that_is_not_a_number_is_one_line_and_exit_2()
    {
        Directory.CreateDirectory(_root);
        var (code, output, _) = await SiloAsync(new Dictionary<string, string>(), "--SiloPort", "abc");
        Assert.True(code == 2, output);
        Assert.Contains("error: SiloPort must be a whole number (got 'abc')", output);
        Assert.DoesNotContain("System.Int32", output);
        Assert.DoesNotContain("Unhandled exception", output);
    }

    [Fact]
    public async Task A_misspelt_silo_setting_is_named_with_the_nearest_instead_of_ignored()
    {
        Directory.CreateDirectory(_root);
        var (code, output, _) = await SiloAsync(new Dictionary<string, string>(), "--Devcies", "cpu=4");
        Assert.True(code == 2, output);
        Assert.Contains("error: unknown setting --Devcies (did you mean --Devices?)", output);
        (code, output, _) = await SiloAsync(new Dictionary<string, string>(), "--TrainingSlot=4");
        Assert.True(code == 2, output);
        Assert.Contains("unknown setting --TrainingSlot (did you mean --TrainingSlots?)", output);
    }

    [Fact]
    public async Task A_silo_with_a_wrong_redis_password_stops_with_one_line_and_exit_3_without_the_password()
    {
        var redis = await RedisWithPasswordAsync();
        var (code, output, took) = await SiloAsync(new Dictionary<string, string> { ["FAIRMEDFM_REDIS"] = $"127.0.0.1:{redis.Port},password=wrong-secret-42" },
            "--SiloPort", Ports.Free().ToString(CultureInfo.InvariantCulture));
        Assert.True(code == 3, output);
        Assert.Contains($"Redis at 127.0.0.1:{redis.Port} refused the credentials: authentication failed", output);
        Assert.DoesNotContain("wrong-secret-42", output);
        Assert.DoesNotContain("Unhandled exception", output);
        Assert.DoesNotContain("   at ", output);
        Assert.True(took < TimeSpan.FromSeconds(30), $"took {took.TotalSeconds:0.0} s");
    }

    [Theory]
    [InlineData("status")]
    [InlineData("watch")]
    public async Task The_cli_reports_a_refused_or_missing_redis_password_within_seconds(string verb)
    {
        var redis = await RedisWithPasswordAsync();
        foreach (var (connection, expected) in new[]
                 {
                     ($"127.0.0.1:{redis.Port},password=wrongpw-55", "refused the credentials: authentication failed"),
                     ($"127.0.0.1:{redis.Port}", "requires a password and none was given"),
                 })
        {
            var writer = new StringWriter();
            var console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No, Out = new AnsiConsoleOutput(writer),
            });
            console.Profile.Width = 240;
            var sw = Stopwatch.StartNew();
            var code = await new Cli(console).InvokeAsync([verb, "s1", "--redis", connection]).WaitAsync(TimeSpan.FromMinutes(1));
            sw.Stop();
            var output = writer.ToString();
            Assert.True(code == SweepCommands.ExitUnreachable, output);
            Assert.Contains(expected, output);
            Assert.DoesNotContain("wrongpw", output);
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(6), $"{verb} took {sw.Elapsed.TotalSeconds:0.0} s: {output}");
        }
    }

    [Fact]
    public async Task A_redis_with_no_silo_is_reported_as_such_not_in_orleans_words()
    {
        var redis = await RedisWithPasswordAsync();
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No, Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 240;
        var code = await new Cli(console).InvokeAsync(["status", "--redis", $"127.0.0.1:{redis.Port},password={Password}"]).WaitAsync(TimeSpan.FromMinutes(1));
        var output = writer.ToString();
        Assert.True(code == SweepCommands.ExitUnreachable, output);
        Assert.Contains("no silo of this cluster is running (Redis lists no gateway)", output);
        Assert.DoesNotContain("RedisGatewayListProvider", output);
    }

    [Fact]
    public async Task The_right_password_passes_the_check()
    {
        var redis = await RedisWithPasswordAsync();
        await FairMedFM.Grains.RedisProbe.CheckAsync(FairMedFM.Grains.FairMedFMHosting.ParseRedis(redis.Connection), "--redis", "");
    }
}
