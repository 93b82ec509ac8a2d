using System.Net;
using System.Net.Sockets;
using FairMedFM.Engine;
using FairMedFM.Grains;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;

namespace FairMedFM.Client;

/// <summary>
/// How the CLI reaches grains: by default it hosts one silo in this process (no Redis, nothing to install);
/// with --gateway it connects as a client to a running silo (src/Silo).
/// </summary>
public sealed class ClusterConnection : IAsyncDisposable
{
    private readonly IHost _host;
    public IClusterClient Client { get; }
    public string Description { get; }

    /// <summary>True when the grains run in a silo inside this process (no --redis/--gateway): then, and only then, this
    /// process's cache folder is the one the cells use.</summary>
    public bool IsEmbedded { get; }

    /// <summary>For the CLI's "grains on …" line: the cluster, and for the embedded silo also the cache folder it uses
    /// (remote silos use their own cache, not this process's).</summary>
    public string Where(Workspace workspace) => IsEmbedded ? $"{Description}; cache {workspace.CacheDir}" : $"{Description} (cells use the silos' own cache folders)";

    private ClusterConnection(IHost host, IClusterClient client, string description, bool embedded)
    {
        _host = host; Client = client; Description = description; IsEmbedded = embedded;
    }

    /// <summary>Cluster id of the standalone silo (src/Silo) unless it was started with another --ClusterId.</summary>
    public const string DefaultClusterId = FairMedFMHosting.DefaultClusterId;

    public static async Task<ClusterConnection> ConnectAsync(string? gateway, Workspace workspace, int trainingSlots, CancellationToken ct = default,
        string? clusterId = null, string? redis = null)
    {
        // Same precedence as the silo: FAIRMEDFM_ClusterId, then ORLEANS_CLUSTER_ID (set by the Kubernetes manifests).
        clusterId ??= NonEmpty(Environment.GetEnvironmentVariable("FAIRMEDFM_ClusterId"))
                      ?? NonEmpty(Environment.GetEnvironmentVariable("ORLEANS_CLUSTER_ID")) ?? DefaultClusterId;
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        // The CLI reports failures itself, in one line; Orleans' own error logs would repeat them as stack traces.
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Critical);
        string description;
        builder.Services.AddFairMedFMTelemetry("fairmedfm-cli");
        if (redis is not null)
        {
            StackExchange.Redis.ConfigurationOptions options;
            // A connection string that does not parse is bad input (exit 2), not an unreachable cluster; the message never echoes it.
            try { options = FairMedFMHosting.ParseRedis(redis); }
            catch (ArgumentException e) { throw new ConnectionSettingsException("--redis: " + e.Message); }
            if (options.EndPoints.Count == 0)
                throw new ConnectionSettingsException("--redis: the connection string names no host:port (expected host:port[,password=…][,ssl=true])");
            // A few seconds' check: nothing listening, or a refused password / a password missing, is said at once (exit 3)
            // instead of after StackExchange.Redis's 15–30 s of retries.
            try { await RedisProbe.CheckAsync(options, "--redis or $FAIRMEDFM_REDIS", "(check --redis or $FAIRMEDFM_REDIS, or use --gateway HOST:PORT)", ct); }
            catch (RedisProbeException e) { throw new InvalidOperationException(e.Message, e); }
            var attempts = 0;
            builder.UseOrleansClient(c => c
                .UseFairMedFMRedisClustering(redis, clusterId)
                .AddActivityPropagation()
                .UseConnectionRetryFilter(async (_, ct) => { await Task.Delay(TimeSpan.FromSeconds(1), ct); return ++attempts < 5; }));
            description = "cluster via Redis " + FairMedFMHosting.Describe(FairMedFMHosting.ParseRedis(redis));
        }
        else if (gateway is null)
        {
            int siloPort = FreePort(), gatewayPort = FreePort();
            builder.UseOrleans(silo => silo
                .UseLocalhostClustering(siloPort, gatewayPort, serviceId: "fairmedfm", clusterId: "embedded-" + Environment.ProcessId)
                .AddFairMedFM(workspace, trainingSlots));
            description = $"embedded silo (in-process, 127.0.0.1:{siloPort})";
        }
        else
        {
            var ep = ParseGateway(gateway);
            var attempts = 0;
            builder.UseOrleansClient(c => c
                .UseStaticClustering(ep)
                .AddActivityPropagation()
                .Configure<ClusterOptions>(o => { o.ServiceId = "fairmedfm"; o.ClusterId = clusterId; })
                // Fail in seconds with a clear message rather than retrying for minutes.
                .UseConnectionRetryFilter(async (_, ct) => { await Task.Delay(TimeSpan.FromSeconds(1), ct); return ++attempts < 5; }));
            description = $"cluster via gateway {ep}";
        }
        var host = builder.Build();
        try
        {
            await host.StartAsync(ct);
        }
        catch (Exception e)
        {
            host.Dispose();
            // StackExchange.Redis's own text advises code changes ("use abortConnect=false … in your code"): say what failed instead.
            if (Find<StackExchange.Redis.RedisConnectionException>(e) is { } r)
                throw new InvalidOperationException($"could not reach the {description}: {RedisFailure(r.FailureType)}", e);
            // Orleans' "Could not find any gateway in 'Orleans.Clustering.Redis.RedisGatewayListProvider'": Redis answered, no silo runs.
            for (Exception? x = e; x is not null; x = x.InnerException)
                if (x.Message.Contains("Could not find any gateway", StringComparison.Ordinal))
                    throw new InvalidOperationException($"could not reach the {description}: no silo of this cluster is running (Redis lists no gateway); " +
                                                        "start one (README: Durable sweeps on a cluster)", e);
            throw new InvalidOperationException($"could not reach the {description}: {e.Message}", e);
        }
        return new ClusterConnection(host, host.Services.GetRequiredService<IClusterClient>(), description, embedded: redis is null && gateway is null);
    }

    /// <summary>host:port with an IP address or a host name (resolved here, IPv4 first).</summary>
    public static IPEndPoint ParseGateway(string gateway)
    {
        if (IPEndPoint.TryParse(gateway, out var ep) && ep.Port > 0) return ep;
        var i = gateway.LastIndexOf(':');
        if (i <= 0 || !int.TryParse(gateway[(i + 1)..], out var port) || port is < 1 or > 65535)
            throw new ConnectionSettingsException($"--gateway '{gateway}' is not host:port (e.g. 127.0.0.1:30000)");
        IPAddress[] addresses;
        try { addresses = Dns.GetHostAddresses(gateway[..i]); }
        catch (System.Net.Sockets.SocketException e) { throw new ArgumentException($"--gateway host '{gateway[..i]}' cannot be resolved: {e.Message}"); }
        var a = addresses.OrderBy(x => x.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 0 : 1).FirstOrDefault()
                ?? throw new ArgumentException($"--gateway host '{gateway[..i]}' has no address");
        return new IPEndPoint(a, port);
    }

    private static string RedisFailure(StackExchange.Redis.ConnectionFailureType t) => t switch
    {
        StackExchange.Redis.ConnectionFailureType.AuthenticationFailure => "authentication failed (check the password/user in --redis or $FAIRMEDFM_REDIS)",
        StackExchange.Redis.ConnectionFailureType.UnableToConnect or StackExchange.Redis.ConnectionFailureType.UnableToResolvePhysicalConnection =>
            "Redis did not complete the connection (a TLS setting that does not match the server, or the server is not Redis?)",
        _ => "Redis connection failed (" + t + ")",
    };

    private static T? Find<T>(Exception? e) where T : Exception
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is T t) return t;
            if (e is AggregateException a && a.InnerExceptions.Select(Find<T>).FirstOrDefault(x => x is not null) is { } inner) return inner;
        }
        return null;
    }

    private static string? NonEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        try { await _host.StopAsync(TimeSpan.FromSeconds(10)); } catch (OperationCanceledException) { }
        _host.Dispose();
    }
}

/// <summary>A --redis or --gateway value that cannot be used as written: bad input (exit 2), not an unreachable cluster.</summary>
public sealed class ConnectionSettingsException(string message) : Exception(message);
