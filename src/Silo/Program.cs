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
//   Devices ("cpu"; e.g. "cpu=2,cuda:0=1,cuda:1=1": device=slots), TrainingSlots (1: slots of a device named without =N)
//   SweepTickMs (1000), LeaseSeconds (60), MaxAttempts (3), BackoffSeconds (5), MaxBackoffSeconds (300), AnnounceSeconds (10),
//   ReminderMinutes (1): how sweeps pace, retry and notice lost silos
//   HealthPort (8080): GET /healthz (alive) and /ready (the silo is an active cluster member)
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
    if (sweeps.Tick <= TimeSpan.Zero || sweeps.Announce <= TimeSpan.Zero) throw new ArgumentException("SweepTickMs and AnnounceSeconds must be positive");
}
catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException)
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
    .AddFairMedFM(workspace, slots, memoryStorage: string.IsNullOrEmpty(cfg["Redis"]), device: device, sweeps: sweeps));

var app = builder.Build();
app.MapGet("/healthz", () => Results.Ok("alive"));
app.MapGet("/ready", (ISiloStatusOracle oracle) =>
    oracle.CurrentStatus == SiloStatus.Active ? Results.Ok("ready") : Results.StatusCode(503));

app.Logger.LogInformation("FairMedFM silo: silo port {Silo}, gateway {Gateway}, health :{Health}, {Slots} training slot(s) on {Device}, cache {Cache}, clustering {Clustering}",
    siloPort, gatewayPort, healthPort, slots, device, workspace.CacheDir,
    string.IsNullOrEmpty(cfg["Redis"]) ? "localhost" : "redis " + FairMedFMHosting.Describe(FairMedFMHosting.ParseRedis(cfg["Redis"]!)));
await app.RunAsync();
return 0;
