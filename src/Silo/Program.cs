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
var builder = WebApplication.CreateBuilder(args);
builder.Configuration.AddEnvironmentVariables("FAIRMEDFM_");
var cfg = builder.Configuration;
int siloPort = cfg.GetValue("SiloPort", 11111);
int gatewayPort = cfg.GetValue("GatewayPort", 30000);
int healthPort = cfg.GetValue("HealthPort", 8080);
int slots = cfg.GetValue("TrainingSlots", 1);
var device = cfg["Devices"] ?? "cpu";
FairMedFM.Grains.SweepOptions sweeps;
try
{
    // Checked here so a typo stops the silo with one clear line instead of a scheduler that never finds the device.
    FairMedFM.Engine.Scheduling.DeviceNames.ParseDeclaration(device, Math.Max(1, slots));
    if (slots < 1) throw new ArgumentException($"TrainingSlots must be ≥ 1 (got {slots})");
    var defaults = new FairMedFM.Grains.SweepOptions();
    sweeps = new FairMedFM.Grains.SweepOptions
    {
        Tick = TimeSpan.FromMilliseconds(cfg.GetValue("SweepTickMs", defaults.Tick.TotalMilliseconds)),
        Announce = TimeSpan.FromSeconds(cfg.GetValue("AnnounceSeconds", defaults.Announce.TotalSeconds)),
        Reminder = TimeSpan.FromMinutes(cfg.GetValue("ReminderMinutes", defaults.Reminder.TotalMinutes)),
        Retry = defaults.Retry with
        {
            Lease = TimeSpan.FromSeconds(cfg.GetValue("LeaseSeconds", defaults.Retry.Lease.TotalSeconds)),
            MaxAttempts = cfg.GetValue("MaxAttempts", defaults.Retry.MaxAttempts),
            InitialBackoff = TimeSpan.FromSeconds(cfg.GetValue("BackoffSeconds", defaults.Retry.InitialBackoff.TotalSeconds)),
            MaxBackoff = TimeSpan.FromSeconds(cfg.GetValue("MaxBackoffSeconds", defaults.Retry.MaxBackoff.TotalSeconds)),
        },
    };
    sweeps.Retry.Validate();
    // A grid or card submitted by any client must not make this silo read outside its data folders (symlinks included).
    FairMedFM.Data.PathGuard.Current = FairMedFM.Data.PathGuard.Parse(cfg["DataRoots"] ?? Environment.GetEnvironmentVariable(FairMedFM.Data.PathGuard.EnvironmentVariable));
    if (sweeps.Tick <= TimeSpan.Zero || sweeps.Announce <= TimeSpan.Zero) throw new ArgumentException("SweepTickMs and AnnounceSeconds must be positive");
    if (cfg.GetValue("ProbeTimeoutSeconds", 5.0) <= 0 || cfg.GetValue("MissedProbesLimit", 3) < 1)
        throw new ArgumentException("ProbeTimeoutSeconds must be positive and MissedProbesLimit ≥ 1");
    if (cfg["ModelCards"] is { Length: > 0 } modelCards)
        Console.WriteLine($"model cards from {modelCards}: {string.Join(", ", ModelCatalog.RegisterFile(modelCards))}");
    if (cfg.GetValue<int?>("ParentPid") is { } ppid && !ParentWatch.Alive(ppid)) throw new ArgumentException($"ParentPid {ppid} is not a running process");
}
catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or InvalidDataException or FileNotFoundException or FairMedFM.Data.DataException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
IPEndPoint? primary = cfg["PrimarySilo"] is { } p ? IPEndPoint.Parse(p) : null;
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
        o.ProbeTimeout = TimeSpan.FromSeconds(cfg.GetValue("ProbeTimeoutSeconds", o.ProbeTimeout.TotalSeconds));
        o.NumMissedProbesLimit = cfg.GetValue("MissedProbesLimit", o.NumMissedProbesLimit);
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
    string.IsNullOrEmpty(cfg["Redis"]) ? "localhost" : "redis " + FairMedFMHosting.Describe(FairMedFMHosting.ParseRedis(cfg["Redis"]!)));
if (cfg.GetValue<int?>("ParentPid") is { } parent) ParentWatch.Start(parent, app.Lifetime, app.Logger);
await app.RunAsync();
return 0;

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
