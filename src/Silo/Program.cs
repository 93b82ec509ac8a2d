using System.Net;
using FairMedFM.Engine;
using FairMedFM.Grains;
using Orleans.Runtime;

// A standalone silo hosting the FairMedFM grains. Settings come from the command line (--Name value) or FAIRMEDFM_*
// environment variables (the deployment manifests use these):
//   Redis          StackExchange.Redis connection string → Redis clustering + grain storage (else localhost clustering)
//   Clustering     "kubernetes" → Orleans Kubernetes hosting (pod name/namespace/IP from the downward API)
//   SiloPort, GatewayPort (11111, 30000), PrimarySilo (host:port, localhost clustering only), ClusterId
//   Cache, Weights (folders; default ./.fairmedfm, ./weights), TrainingSlots (1), Devices ("cpu")
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
IPEndPoint? primary = cfg["PrimarySilo"] is { } p ? IPEndPoint.Parse(p) : null;
var workspace = Workspace.FromEnvironment(cfg["Cache"], cfg["Weights"]);

builder.WebHost.UseUrls($"http://0.0.0.0:{healthPort}");
builder.Services.AddFairMedFMTelemetry("fairmedfm-silo");
builder.UseOrleans(silo => silo
    .UseFairMedFMClustering(cfg, siloPort, gatewayPort, primary)
    .AddFairMedFM(workspace, slots, memoryStorage: string.IsNullOrEmpty(cfg["Redis"]), device: device));

var app = builder.Build();
app.MapGet("/healthz", () => Results.Ok("alive"));
app.MapGet("/ready", (ISiloStatusOracle oracle) =>
    oracle.CurrentStatus == SiloStatus.Active ? Results.Ok("ready") : Results.StatusCode(503));

if (device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) && !TorchSharp.torch.cuda.is_available())
    app.Logger.LogWarning("Devices={Device} was asked for but CUDA is not available in this process (CPU libtorch build?)", device);
app.Logger.LogInformation("FairMedFM silo: silo port {Silo}, gateway {Gateway}, health :{Health}, {Slots} training slot(s) on {Device}, cache {Cache}, clustering {Clustering}",
    siloPort, gatewayPort, healthPort, slots, device, workspace.CacheDir,
    string.IsNullOrEmpty(cfg["Redis"]) ? "localhost" : "redis " + FairMedFMHosting.Describe(FairMedFMHosting.ParseRedis(cfg["Redis"]!)));
await app.RunAsync();
