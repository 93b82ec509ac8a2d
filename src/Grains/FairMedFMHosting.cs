using System.Net;
using FairMedFM.Engine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using StackExchange.Redis;

namespace FairMedFM.Grains;

/// <summary>
/// How a silo or a client joins a cluster, in one place for the Silo host, the CLI and the deployment manifests:
/// FAIRMEDFM_REDIS (a StackExchange.Redis connection string: password= and ssl= included) selects Redis clustering and
/// grain storage; FAIRMEDFM_CLUSTERING=kubernetes adds Orleans' Kubernetes hosting (pod name/namespace/IP from the
/// downward API); neither means one silo on localhost. The connection string is never logged.
/// </summary>
public static class FairMedFMHosting
{
    public const string ServiceId = "fairmedfm";
    public const string DefaultClusterId = "fairmedfm-local";

    public static ConfigurationOptions ParseRedis(string connection)
    {
        try { return ConfigurationOptions.Parse(connection); }
        catch (Exception e) when (e is ArgumentException or RedisConnectionException)
        {
            // The message of a parse error can contain the string itself (and with it the password): do not pass it on.
            throw new ArgumentException("the Redis connection string is malformed (expected host:port[,password=…][,ssl=true])", e);
        }
    }

    /// <summary>Redacted form for logs and messages: endpoints only.</summary>
    public static string Describe(ConfigurationOptions o) => string.Join(",", o.EndPoints.Select(e => e.ToString())) + (o.Ssl ? " (TLS)" : "");

    public static ISiloBuilder UseFairMedFMClustering(this ISiloBuilder silo, IConfiguration cfg, int siloPort, int gatewayPort, IPEndPoint? primary)
    {
        var clusterId = cfg["ClusterId"] ?? Environment.GetEnvironmentVariable("ORLEANS_CLUSTER_ID") ?? DefaultClusterId;
        if (cfg["Redis"] is { Length: > 0 } redis)
        {
            var options = ParseRedis(redis);
            silo.Configure<Orleans.Configuration.ClusterOptions>(o => { o.ServiceId = ServiceId; o.ClusterId = clusterId; });
            silo.ConfigureEndpoints(siloPort, gatewayPort, listenOnAnyHostAddress: true);
            silo.UseRedisClustering(o => o.ConfigurationOptions = options.Clone());
            silo.AddRedisGrainStorage(FairMedFMSilo.StorageName, o => o.ConfigurationOptions = options.Clone());
            // Sweeps register a reminder while unfinished, so they resume even when every silo restarted.
            silo.UseRedisReminderService(o => o.ConfigurationOptions = options.Clone());
            if (string.Equals(cfg["Clustering"], "kubernetes", StringComparison.OrdinalIgnoreCase)) silo.UseKubernetesHosting();
        }
        else
        {
            if (string.Equals(cfg["Clustering"], "kubernetes", StringComparison.OrdinalIgnoreCase))
                throw new InvalidOperationException("FAIRMEDFM_CLUSTERING=kubernetes needs FAIRMEDFM_REDIS for membership");
            silo.UseLocalhostClustering(siloPort, gatewayPort, primary, serviceId: ServiceId, clusterId: clusterId);
        }
        return silo;
    }

    public static IClientBuilder UseFairMedFMRedisClustering(this IClientBuilder client, string redis, string? clusterId = null)
    {
        var options = ParseRedis(redis);
        client.Configure<Orleans.Configuration.ClusterOptions>(o => { o.ServiceId = ServiceId; o.ClusterId = clusterId ?? DefaultClusterId; });
        client.UseRedisClustering(o => o.ConfigurationOptions = options.Clone());
        return client;
    }

    /// <summary>
    /// Logs carry the trace and span id of the activity they were written in (console scopes), so a log line can be
    /// found from its trace and back; with OTEL_EXPORTER_OTLP_ENDPOINT set they are exported over OTLP as well.
    /// </summary>
    public static ILoggingBuilder AddFairMedFMLogging(this ILoggingBuilder logging)
    {
        logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId | ActivityTrackingOptions.ParentId);
        logging.AddSimpleConsole(o => { o.IncludeScopes = true; o.SingleLine = true; });
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT")))
            logging.AddOpenTelemetry(o => { o.IncludeScopes = true; o.AddOtlpExporter(); });
        return logging;
    }

    /// <summary>
    /// Traces and metrics of FairMedFM and Orleans, configured by the standard variables: OTEL_TRACES_EXPORTER /
    /// OTEL_METRICS_EXPORTER (otlp, console, none; comma-separated), OTEL_EXPORTER_OTLP_ENDPOINT (implies otlp when the
    /// exporter variables are unset) and the other OTEL_* settings the exporters read; FAIRMEDFM_OTEL=console is a local
    /// shortcut. Nothing is exported unless asked for (tests run with nothing set).
    /// </summary>
    public static IServiceCollection AddFairMedFMTelemetry(this IServiceCollection services, string serviceName)
    {
        var endpoint = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"));
        var shortcut = string.Equals(Environment.GetEnvironmentVariable("FAIRMEDFM_OTEL"), "console", StringComparison.OrdinalIgnoreCase);
        HashSet<string> Exporters(string variable)
        {
            var set = (Environment.GetEnvironmentVariable(variable) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(x => x.ToLowerInvariant()).ToHashSet();
            if (set.Count == 0 && endpoint) set.Add("otlp");
            if (shortcut) set.Add("console");
            set.Remove("none");
            return set;
        }
        var traces = Exporters("OTEL_TRACES_EXPORTER");
        var metrics = Exporters("OTEL_METRICS_EXPORTER");
        if (traces.Count == 0 && metrics.Count == 0) return services;
        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME") ?? serviceName))
            .WithTracing(t =>
            {
                t.AddSource(Telemetry.Name, "Microsoft.Orleans.Application", "Microsoft.Orleans.Runtime");
                if (traces.Contains("otlp")) t.AddOtlpExporter();
                if (traces.Contains("console")) t.AddConsoleExporter();
            })
            .WithMetrics(m =>
            {
                m.AddMeter(Telemetry.Name, "Microsoft.Orleans");
                if (metrics.Contains("otlp")) m.AddOtlpExporter();
                if (metrics.Contains("console")) m.AddConsoleExporter();
            });
        return services;
    }
}
