using System.Net;
using FairMedFM.Engine;
using FairMedFM.Grains;
using Orleans.Runtime;

// A standalone silo hosting the FairMedFM grains. Settings come from the command line (--Name value) or FAIRMEDFM_*
// environment variables (the deployment manifests use these):
//   Redis          StackExchange.Redis connection string → Redis clustering + grain storage (else localhost clustering)
//   Clustering     "kubernetes" → Orleans Kubernetes hosting (pod name/namespace/IP from the downward API)
//   SiloPort, GatewayPort (11111, 30000), PrimarySilo (host:port, localhost clustering only), ClusterId
//   Cache, Weights (folders; default ./.fairmedfm, ./weights)
//   DATA_ROOTS / --DataRoots: folders (':'-separated) that dataset cards, CSVs and images must lie in; unset = unconfined
//   Devices ("cpu"; e.g. "cpu=2,cuda:0=1,cuda:1=1": device=slots), TrainingSlots (1: slots of a device named without =N)
//   SweepTickMs (1000), LeaseSeconds (60), MaxAttempts (3), BackoffSeconds (5), MaxBackoffSeconds (300), AnnounceSeconds (10),
//   ReminderMinutes (1): how sweeps pace, retry and notice lost silos
//   HealthPort (8080): GET /healthz (alive) and /ready (the silo is an active cluster member)
//   ProbeTimeoutSeconds (5), MissedProbesLimit (3): Orleans membership probing — how soon a killed silo is declared dead
//   ModelCards: a JSON file of extra model cards (ModelCatalog.RegisterFile), loaded at start so every silo knows them
//   ParentPid: stop this silo when that process is gone (a supervisor, or the test host that started it)
// Clients connect with `fairmedfm run --gateway 127.0.0.1:<GatewayPort>` or `--redis <connection string>`.
// Exit codes: 0 stopped, 2 bad configuration (one line naming the setting), 3 Redis unreachable or refusing the credentials.
var builder = WebApplication.CreateBuilder(args);
builder.Configuration.AddEnvironmentVariables("FAIRMEDFM_");
var cfg = builder.Configuration;
// Read with the setting's name in the error, never the runtime's "Failed to convert configuration value … to type System.Int32".
int Int(string key, int fallback, int min = int.MinValue, int max = int.MaxValue)
{
    if (cfg[key] is not { Length: > 0 } text) return fallback;
    if (!int.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var v))
        throw new ArgumentException($"{key} must be a whole number (got '{text}')");
    if (v < min || v > max) throw new ArgumentException($"{key} must be between {min} and {max} (got {v})");
    return v;
}
double Number(string key, double fallback)
{
    if (cfg[key] is not { Length: > 0 } text) return fallback;
    if (!double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
        throw new ArgumentException($"{key} must be a number (got '{text}')");
    return v;
}
int siloPort, gatewayPort, healthPort, slots, missedProbes;
double probeTimeout;
int? parentPid;
IPEndPoint? primary;
StackExchange.Redis.ConfigurationOptions? redisOptions = null;
var device = cfg["Devices"] ?? "cpu";
FairMedFM.Grains.SweepOptions sweeps;
try
{
    // A misspelt setting (--Devcies, --TrainingSlot) would otherwise be ignored and the silo start with the default.
    string[] settings = ["AnnounceSeconds", "BackoffSeconds", "Cache", "ClusterId", "Clustering", "DataRoots", "Devices", "GatewayPort",
        "HealthPort", "LeaseSeconds", "MaxAttempts", "MaxBackoffSeconds", "MissedProbesLimit", "ModelCards", "ParentPid", "PrimarySilo",
        "ProbeTimeoutSeconds", "Redis", "RedisWaitSeconds", "ReminderMinutes", "SiloPort", "SweepTickMs", "TrainingSlots", "Weights"];
    string[] hostSettings = ["urls", "environment", "contentRoot", "applicationName"]; // ASP.NET Core's own; "A:B" keys are sections
    foreach (var token in args.Where(a => a.StartsWith("--", StringComparison.Ordinal) && a.Length > 2))
    {
        var key = token[2..].Split('=')[0];
        if (key.Contains(':') || settings.Concat(hostSettings).Contains(key, StringComparer.OrdinalIgnoreCase)) continue;
        var near = FairMedFM.Engine.Config.NameSuggestions.Nearest(key, settings);
        throw new ArgumentException($"unknown setting --{key}" + (near is null ? "" : $" (did you mean --{near}?)") + $"; settings: {string.Join(", ", settings)}");
    }
    siloPort = Int("SiloPort", 11111, 1, 65535);
    gatewayPort = Int("GatewayPort", 30000, 1, 65535);
    healthPort = Int("HealthPort", 8080, 1, 65535);
    slots = Int("TrainingSlots", 1);
    probeTimeout = Number("ProbeTimeoutSeconds", 5.0);
    missedProbes = Int("MissedProbesLimit", 3);
    parentPid = cfg["ParentPid"] is { Length: > 0 } ? Int("ParentPid", 0) : (int?)null;
    primary = cfg["PrimarySilo"] is { Length: > 0 } p
        ? IPEndPoint.TryParse(p, out var pe) ? pe : throw new ArgumentException($"PrimarySilo must be ip:port (got '{p}')")
        : null;
    // Parsed here (a malformed string is bad configuration, reported without echoing it: it may hold the password).
    if (cfg["Redis"] is { Length: > 0 } redisText)
    {
        try { redisOptions = FairMedFMHosting.ParseRedis(redisText); }
        catch (ArgumentException e) { throw new ArgumentException("Redis (FAIRMEDFM_REDIS / --Redis): " + e.Message); }
        if (redisOptions.EndPoints.Count == 0) throw new ArgumentException("Redis (FAIRMEDFM_REDIS / --Redis): the connection string names no host:port");
    }
    // Checked here so a typo stops the silo with one clear line instead of a scheduler that never finds the device.
    FairMedFM.Engine.Scheduling.DeviceNames.ParseDeclaration(device, Math.Max(1, slots));
    if (slots < 1) throw new ArgumentException($"TrainingSlots must be ≥ 1 (got {slots})");
    var defaults = new FairMedFM.Grains.SweepOptions();
    sweeps = new FairMedFM.Grains.SweepOptions
    {
        Tick = TimeSpan.FromMilliseconds(Number("SweepTickMs", defaults.Tick.TotalMilliseconds)),
        Announce = TimeSpan.FromSeconds(Number("AnnounceSeconds", defaults.Announce.TotalSeconds)),
        Reminder = TimeSpan.FromMinutes(Number("ReminderMinutes", defaults.Reminder.TotalMinutes)),
        Retry = defaults.Retry with
        {
            Lease = TimeSpan.FromSeconds(Number("LeaseSeconds", defaults.Retry.Lease.TotalSeconds)),
            MaxAttempts = Int("MaxAttempts", defaults.Retry.MaxAttempts),
            InitialBackoff = TimeSpan.FromSeconds(Number("BackoffSeconds", defaults.Retry.InitialBackoff.TotalSeconds)),
            MaxBackoff = TimeSpan.FromSeconds(Number("MaxBackoffSeconds", defaults.Retry.MaxBackoff.TotalSeconds)),
        },
    };
    sweeps.Retry.Validate();
    // A grid or card submitted by any client must not make this silo read outside its data folders (symlinks included).
    FairMedFM.Data.PathGuard.Current = FairMedFM.Data.PathGuard.Parse(cfg["DataRoots"] ?? Environment.GetEnvironmentVariable(FairMedFM.Data.PathGuard.EnvironmentVariable));
    if (sweeps.Tick <= TimeSpan.Zero || sweeps.Announce <= TimeSpan.Zero) throw new ArgumentException("SweepTickMs and AnnounceSeconds must be positive");
    if (probeTimeout <= 0 || missedProbes < 1)
        throw new ArgumentException("ProbeTimeoutSeconds must be positive and MissedProbesLimit ≥ 1");
    if (cfg["ModelCards"] is { Length: > 0 } modelCards)
        Console.WriteLine($"model cards from {modelCards}: {string.Join(", ", ModelCatalog.RegisterFile(modelCards))}");
    if (parentPid is { } ppid && !ParentWatch.Alive(ppid)) throw new ArgumentException($"ParentPid {ppid} is not a running process");
}
catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or InvalidDataException or FileNotFoundException or FairMedFM.Data.DataException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
if (redisOptions is not null)
{
    // Redis that does not answer (yet: it may be starting beside this silo) is waited for up to RedisWaitSeconds; a refused
    // password is final. Either is one line and exit 3, not Orleans' stack traces.
    var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(Math.Max(0, cfg["RedisWaitSeconds"] is { Length: > 0 } w && double.TryParse(w, System.Globalization.CultureInfo.InvariantCulture, out var ws) ? ws : 30));
    while (true)
    {
        try { await RedisProbe.CheckAsync(redisOptions, "FAIRMEDFM_REDIS / --Redis", "(check FAIRMEDFM_REDIS / --Redis)"); break; }
        catch (RedisProbeException e) when (!e.Authentication && DateTime.UtcNow < deadline) { await Task.Delay(TimeSpan.FromSeconds(1)); }
        catch (RedisProbeException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 3;
        }
    }
}
var workspace = Workspace.FromEnvironment(cfg["Cache"], cfg["Weights"]);

builder.WebHost.UseUrls($"http://0.0.0.0:{healthPort}");
builder.Logging.ClearProviders();
builder.Logging.AddFairMedFMLogging();
builder.Services.AddFairMedFMTelemetry("fairmedfm-silo");
builder.UseOrleans(silo => silo
    .UseFairMedFMClustering(cfg, siloPort, gatewayPort, primary)
    .AddFairMedFM(workspace, slots, memoryStorage: string.IsNullOrEmpty(cfg["Redis"]), device: device, sweeps: sweeps)
    .Configure<Orleans.Configuration.ClusterMembershipOptions>(o =>
    {
        o.ProbeTimeout = TimeSpan.FromSeconds(probeTimeout);
        o.NumMissedProbesLimit = missedProbes;
    }));

var app = builder.Build();
app.MapGet("/healthz", () => Results.Ok("alive"));
app.MapGet("/ready", (ISiloStatusOracle oracle) =>
    oracle.CurrentStatus == SiloStatus.Active ? Results.Ok("ready") : Results.StatusCode(503));

if (FairMedFM.Data.PathGuard.Current.IsConfined)
    app.Logger.LogInformation("Dataset cards and images are confined to {Roots}", string.Join(Path.PathSeparator, FairMedFM.Data.PathGuard.Current.Roots));
else
    app.Logger.LogWarning("{Var} is not set: dataset cards submitted to this silo can name any file it can read", FairMedFM.Data.PathGuard.EnvironmentVariable);
app.Logger.LogInformation("FairMedFM silo: silo port {Silo}, gateway {Gateway}, health :{Health}, {Slots} training slot(s) on {Device}, cache {Cache}, clustering {Clustering}",
    siloPort, gatewayPort, healthPort, slots, device, workspace.CacheDir,
    redisOptions is null ? "localhost" : "redis " + FairMedFMHosting.Describe(redisOptions));
if (parentPid is { } parent) ParentWatch.Start(parent, app.Lifetime, app.Logger);
try { await app.StartAsync(); }
catch (Exception e)
{
    // Start-up failures (a port in use, Redis refusing after the probe …) are one line and an exit code, not a stack trace.
    var redisFailure = FindRedis(e);
    var message = Redact((redisFailure ?? e).Message, cfg["Redis"]);
    Console.Error.WriteLine(redisFailure is not null
        ? $"error: Redis at {FairMedFMHosting.Describe(redisOptions!)} could not be used: {message}"
        : $"error: the silo could not start: {message}");
    return redisFailure is not null ? 3 : 2;
}
await app.WaitForShutdownAsync();
return 0;

static Exception? FindRedis(Exception? e)
{
    for (; e is not null; e = e.InnerException)
    {
        if (e is StackExchange.Redis.RedisException || e.GetType().Name.StartsWith("Redis", StringComparison.Ordinal)) return e;
        if (e is AggregateException a) return a.InnerExceptions.Select(FindRedis).FirstOrDefault(x => x is not null);
    }
    return null;
}

// Messages must never carry the connection string's secrets.
static string Redact(string message, string? connection)
{
    if (connection is null) return message;
    foreach (var part in connection.Split(','))
        if (part.Split('=', 2) is [var k, var v] && v.Length > 0 && k.Trim() is "password" or "user")
            message = message.Replace(v, "***", StringComparison.Ordinal);
    return message.Replace(connection, "***", StringComparison.Ordinal);
}

/// <summary>Stops the silo when the process that started it is gone, so a crashed supervisor (or test host) leaves no orphan.</summary>
internal static class ParentWatch
{
    public static bool Alive(int pid)
    {
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException) { return false; }
    }

    public static void Start(int pid, IHostApplicationLifetime life, ILogger log) => _ = Task.Run(async () =>
    {
        while (!life.ApplicationStopping.IsCancellationRequested)
        {
            if (!Alive(pid))
            {
                log.LogWarning("parent process {Pid} is gone: stopping this silo", pid);
                life.StopApplication();
                // A graceful stop can hang when Redis went away with the parent: give it a while, then leave.
                await Task.Delay(TimeSpan.FromSeconds(15));
                log.LogWarning("graceful stop did not finish in 15 s: exiting");
                Environment.Exit(3);
            }
            try { await Task.Delay(TimeSpan.FromSeconds(1), life.ApplicationStopping); } catch (OperationCanceledException) { }
        }
    });
}
