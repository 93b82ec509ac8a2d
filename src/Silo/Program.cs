using System.Net;
using FairMedFM.Engine;
using FairMedFM.Grains;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

// A standalone silo hosting the FairMedFM grains. Settings come from the command line or FAIRMEDFM_* environment
// variables: --SiloPort, --GatewayPort, --PrimarySilo (host:port of the first silo, for a second one on the same
// network), --TrainingSlots, --Cache, --Weights. Clients connect with `fairmedfm run --gateway 127.0.0.1:<GatewayPort>`.
var builder = Host.CreateApplicationBuilder(args);
builder.Configuration.AddEnvironmentVariables("FAIRMEDFM_");
var cfg = builder.Configuration;
int siloPort = cfg.GetValue("SiloPort", 11111);
int gatewayPort = cfg.GetValue("GatewayPort", 30000);
int slots = cfg.GetValue("TrainingSlots", 1);
IPEndPoint? primary = cfg["PrimarySilo"] is { } p ? IPEndPoint.Parse(p) : null;
var workspace = Workspace.FromEnvironment(cfg["Cache"], cfg["Weights"]);

builder.UseOrleans(silo => silo
    .UseLocalhostClustering(siloPort, gatewayPort, primary, serviceId: "fairmedfm", clusterId: cfg["ClusterId"] ?? "fairmedfm-local" /* = ClusterConnection.DefaultClusterId */)
    .AddFairMedFM(workspace, slots));

Console.WriteLine($"FairMedFM silo: silo port {siloPort}, gateway {gatewayPort}, {slots} training slot(s), cache {workspace.CacheDir}");
await builder.Build().RunAsync();
