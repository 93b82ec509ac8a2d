using System.Net;
using System.Net.Sockets;
using System.Text;
using StackExchange.Redis;

namespace FairMedFM.Grains;

/// <summary>Why Redis cannot be used as configured: nothing answers there (<see cref="Authentication"/> false) or it refuses the
/// credentials (true). The message names the endpoint, never the password or user.</summary>
public sealed class RedisProbeException(string message, bool authentication) : Exception(message)
{
    public bool Authentication { get; } = authentication;
}

/// <summary>
/// A few seconds' check of a Redis connection string before Orleans starts (CLI and silo): a TCP connect to each endpoint,
/// then — on the first that answers — AUTH (when the string has a password) and PING. StackExchange.Redis would otherwise
/// retry for 10–30 s before saying the host is down or the password wrong, and then advise code changes. With TLS the
/// exchange is a short StackExchange.Redis connect instead. Anything other than a refused AUTH / NOAUTH is left to the real
/// connection (a server that is not Redis, an ACL without PING …).
/// </summary>
public static class RedisProbe
{
    /// <param name="setting">Where the user set the string, for the messages ("--redis or $FAIRMEDFM_REDIS").</param>
    /// <param name="unreachableHint">Appended to the unreachable message (what to check).</param>
    public static async Task CheckAsync(ConfigurationOptions parsed, string setting, string unreachableHint, CancellationToken ct = default)
    {
        var options = parsed.Clone();
        options.SetDefaultPorts();
        var timeout = TimeSpan.FromMilliseconds(Math.Clamp(options.ConnectTimeout, 100, 3000));
        var failures = new List<string>();
        foreach (var ep in options.EndPoints)
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(timeout);
            try
            {
                await socket.ConnectAsync(ep, cts.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                failures.Add($"{Show(ep)}: no answer within {timeout.TotalSeconds:0.#} s");
                continue;
            }
            catch (SocketException e)
            {
                failures.Add($"{Show(ep)}: " + e.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => "connection refused",
                    SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData => "host name cannot be resolved",
                    SocketError.TimedOut => $"no answer within {timeout.TotalSeconds:0.#} s",
                    SocketError.NetworkUnreachable or SocketError.HostUnreachable => "network unreachable",
                    _ => e.SocketErrorCode.ToString(),
                });
                continue;
            }
            // One reachable endpoint is enough (StackExchange.Redis finds the rest): check that it takes the credentials.
            if (options.Ssl) await CheckTlsAsync(options, ep, setting, timeout);
            else await CheckPlainAsync(socket, options, ep, setting, timeout, ct);
            return;
        }
        throw new RedisProbeException($"cannot reach Redis at {string.Join("; ", failures)}; is redis-server running there? {unreachableHint}", authentication: false);
    }

    /// <summary>AUTH [user] password, then PING, in RESP over the open socket.</summary>
    private static async Task CheckPlainAsync(Socket socket, ConfigurationOptions o, EndPoint ep, string setting, TimeSpan timeout, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            if (!string.IsNullOrEmpty(o.Password))
            {
                var auth = string.IsNullOrEmpty(o.User) ? new[] { "AUTH", o.Password } : new[] { "AUTH", o.User, o.Password };
                var reply = await CommandAsync(stream, auth, cts.Token);
                if (IsAuthRefusal(reply))
                    throw new RedisProbeException($"Redis at {Show(ep)} refused the credentials: authentication failed (check the password/user in {setting})", authentication: true);
            }
            var pong = await CommandAsync(stream, ["PING"], cts.Token);
            if (pong.StartsWith("-NOAUTH", StringComparison.Ordinal))
                throw new RedisProbeException($"Redis at {Show(ep)} requires a password and none was given: authentication failed (add password=… to {setting})", authentication: true);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            // A server that does not answer RESP promptly: the real connection reports what it finds.
        }
    }

    private static bool IsAuthRefusal(string reply) =>
        reply.StartsWith("-WRONGPASS", StringComparison.Ordinal) || reply.StartsWith("-NOAUTH", StringComparison.Ordinal) ||
        reply.StartsWith("-ERR invalid password", StringComparison.OrdinalIgnoreCase) || reply.StartsWith("-ERR invalid username-password", StringComparison.OrdinalIgnoreCase);

    /// <summary>Sends one command as a RESP array of bulk strings and reads the first line of the reply.</summary>
    private static async Task<string> CommandAsync(NetworkStream stream, string[] parts, CancellationToken ct)
    {
        var sb = new StringBuilder().Append('*').Append(parts.Length).Append("\r\n");
        foreach (var p in parts) sb.Append('$').Append(Encoding.UTF8.GetByteCount(p)).Append("\r\n").Append(p).Append("\r\n");
        await stream.WriteAsync(Encoding.UTF8.GetBytes(sb.ToString()), ct);
        var line = new List<byte>();
        var one = new byte[1];
        while (line.Count < 4096)
        {
            if (await stream.ReadAsync(one, ct) == 0) break;
            if (one[0] == '\n') break;
            if (one[0] != '\r') line.Add(one[0]);
        }
        return Encoding.UTF8.GetString(line.ToArray());
    }

    /// <summary>With TLS: one short StackExchange.Redis connect; only an authentication failure is reported here.</summary>
    private static async Task CheckTlsAsync(ConfigurationOptions o, EndPoint ep, string setting, TimeSpan timeout)
    {
        var probe = o.Clone();
        probe.AbortOnConnectFail = true;
        probe.ConnectRetry = 1;
        probe.ConnectTimeout = (int)timeout.TotalMilliseconds;
        try
        {
            await using var mux = await ConnectionMultiplexer.ConnectAsync(probe, TextWriter.Null);
        }
        catch (RedisConnectionException e) when (e.FailureType == ConnectionFailureType.AuthenticationFailure)
        {
            throw new RedisProbeException($"Redis at {Show(ep)} refused the credentials: authentication failed (check the password/user in {setting})", authentication: true);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // Other failures (TLS settings, a slow server) are left to the real connection, which names them.
        }
    }

    public static string Show(EndPoint ep) => ep switch
    {
        DnsEndPoint d => $"{d.Host}:{d.Port}",
        _ => ep.ToString() ?? "",
    };
}
