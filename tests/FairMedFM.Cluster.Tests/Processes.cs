using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace FairMedFM.Cluster.Tests;

/// <summary>Where the built silo and CLI are, and the shared fixtures, from a fresh clone after <c>dotnet test FairMedFM.sln</c>.</summary>
internal static class TestPaths
{
    public static string RepoRoot => FairMedFM.Tests.Shared.RepoPaths.RepoRoot;
    public static string Shared => FairMedFM.Tests.Shared.RepoPaths.Shared;
    public static string NihDir => Path.Combine(Shared, "data", "nih_chestxray14_64px");
    public static string TinyVitDir => Path.Combine(Shared, "golden", "timm_vit_cls");

    // The test binaries live in tests/FairMedFM.Cluster.Tests/bin/<Configuration>/<tfm>/: the silo and the CLI were built
    // (project references) into src/<project>/bin/<Configuration>/<tfm>/.
    private static readonly string Tfm = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Name;
    private static readonly string Configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;

    public static string SiloDll => Built("Silo", "FairMedFM.Silo.dll");
    public static string CliDll => Built("Client", "fairmedfm.dll");

    private static string Built(string project, string dll)
    {
        var p = Path.Combine(RepoRoot, "src", project, "bin", Configuration, Tfm, dll);
        if (!File.Exists(p))
            throw new FileNotFoundException($"{p} is missing: build the solution (dotnet build FairMedFM.sln -c {Configuration}) before running the cluster tests", p);
        return p;
    }

    public static string RedisServer =>
        File.Exists("/usr/bin/redis-server") ? "/usr/bin/redis-server"
        : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "redis-server")).FirstOrDefault(File.Exists)
          ?? throw new FileNotFoundException("redis-server is not installed (Debian: apt-get install -y redis-server); the cluster failure tests start their own");
}

internal static class Native
{
    public const int SIGKILL = 9, SIGTERM = 15, SIGCONT = 18, SIGSTOP = 19; // Linux x64/arm64 numbers
    [DllImport("libc", SetLastError = true)] private static extern int kill(int pid, int sig);
    public static void Signal(int pid, int sig)
    {
        if (kill(pid, sig) != 0 && Marshal.GetLastWin32Error() != 3 /* ESRCH: already gone */)
            throw new InvalidOperationException($"kill({pid}, {sig}) failed: errno {Marshal.GetLastWin32Error()}");
    }
}

internal static class Ports
{
    private static readonly HashSet<int> Given = new();

    /// <summary>A port that was free a moment ago and was not handed out before by this process.</summary>
    public static int Free()
    {
        lock (Given)
        {
            while (true)
            {
                var l = new TcpListener(IPAddress.Loopback, 0);
                l.Start();
                var port = ((IPEndPoint)l.LocalEndpoint).Port;
                l.Stop();
                if (Given.Add(port)) return port;
            }
        }
    }
}

/// <summary>A child process whose stdout and stderr go to a log file; killed with its process tree on dispose.</summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _p;
    private readonly StreamWriter _log;
    private readonly object _gate = new();

    public string Name { get; }
    public string LogPath { get; }
    public int Pid => _p.Id;

    private ChildProcess(string name, Process p, string logPath, StreamWriter log) { Name = name; _p = p; LogPath = logPath; _log = log; }

    public static ChildProcess Start(string name, string file, IEnumerable<string> args, IReadOnlyDictionary<string, string> env, string logPath, string workDir)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = false,
            UseShellExecute = false, WorkingDirectory = workDir,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // Nothing of the test host's own FairMedFM/OTel settings leaks into the children.
        foreach (var k in psi.Environment.Keys.Where(k => k.StartsWith("FAIRMEDFM_", StringComparison.Ordinal) && k != "FAIRMEDFM_SHARED" || k.StartsWith("OTEL_", StringComparison.Ordinal)).ToList())
            psi.Environment.Remove(k);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (k, v) in env) psi.Environment[k] = v;
        Directory.CreateDirectory(Path.GetDirectoryName(logPath)!);
        var log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite), Encoding.UTF8) { AutoFlush = true };
        log.WriteLine($"# {DateTime.UtcNow:HH:mm:ss.fff} start: {file} {string.Join(' ', psi.ArgumentList)}");
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var child = new ChildProcess(name, p, logPath, log);
        p.OutputDataReceived += (_, e) => child.Write(e.Data);
        p.ErrorDataReceived += (_, e) => child.Write(e.Data);
        if (!p.Start()) throw new InvalidOperationException($"{name}: could not start {file}");
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return child;
    }

    private void Write(string? line)
    {
        if (line is null) return;
        lock (_gate) { try { _log.WriteLine(line); } catch (ObjectDisposedException) { } }
    }

    public bool HasExited { get { try { return _p.HasExited; } catch (InvalidOperationException) { return true; } } }
    public int? ExitCode => HasExited ? _p.ExitCode : null;

    /// <summary>SIGKILL (the whole tree), then wait for the exit.</summary>
    public void Kill()
    {
        if (HasExited) return;
        Write($"# {DateTime.UtcNow:HH:mm:ss.fff} SIGKILL from the test");
        try { _p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        _p.WaitForExit(10_000);
    }

    /// <summary>SIGTERM and wait up to <paramref name="timeout"/> for a graceful exit; true when it exited by itself, else it is killed.</summary>
    public bool Terminate(TimeSpan timeout)
    {
        if (HasExited) return true;
        Write($"# {DateTime.UtcNow:HH:mm:ss.fff} SIGTERM from the test");
        Native.Signal(_p.Id, Native.SIGTERM);
        if (_p.WaitForExit((int)timeout.TotalMilliseconds)) { _p.WaitForExit(); return true; }
        Kill();
        return false;
    }

    public Task WaitForExitAsync(CancellationToken ct) => _p.WaitForExitAsync(ct);

    public string Tail(int lines = 80)
    {
        lock (_gate)
        {
            try
            {
                using var f = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                var all = new StreamReader(f).ReadToEnd().Split('\n');
                return string.Join('\n', all.TakeLast(lines));
            }
            catch (IOException e) { return $"(log unreadable: {e.Message})"; }
        }
    }

    public void Dispose()
    {
        Kill();
        _p.Dispose();
        lock (_gate) _log.Dispose();
    }
}

/// <summary>
/// Debian's redis-server on 127.0.0.1 and a free port, in a folder of its own, persistence off unless asked (append-only file
/// for the restart test). A shell watchdog SIGKILLs it if the test host dies, so no server outlives a crashed test run.
/// </summary>
internal sealed class RedisServer : IDisposable
{
    private ChildProcess? _server;
    private ChildProcess? _watchdog;
    private int _starts;

    public int Port { get; } = Ports.Free();
    public string Dir { get; }
    public bool AppendOnly { get; }
    public string LogPath { get; }
    /// <summary>The server's password (--requirepass), or null for none.</summary>
    public string? Password { get; }
    public string Connection => $"127.0.0.1:{Port}" + (Password is null ? "" : $",password={Password}");

    public RedisServer(string dir, string logPath, bool appendOnly, string? password = null)
    {
        Dir = dir;
        LogPath = logPath;
        AppendOnly = appendOnly;
        Password = password;
        Directory.CreateDirectory(dir);
    }

    public bool Running => _server is { HasExited: false };

    public async Task StartAsync()
    {
        if (Running) return;
        _server?.Dispose();
        var args = new List<string> { "--port", Port.ToString(), "--bind", "127.0.0.1", "--dir", Dir, "--save", "", "--protected-mode", "no",
                                      "--daemonize", "no", "--appendonly", AppendOnly ? "yes" : "no" };
        if (AppendOnly) args.AddRange(["--appendfsync", "always"]);
        if (Password is not null) args.AddRange(["--requirepass", Password]);
        _server = ChildProcess.Start("redis", TestPaths.RedisServer, args, new Dictionary<string, string>(), LogPath, Dir);
        _watchdog?.Dispose();
        _watchdog = ChildProcess.Start("redis-watchdog", "/bin/sh",
            ["-c", $"while kill -0 {Environment.ProcessId} 2>/dev/null && kill -0 {_server.Pid} 2>/dev/null; do sleep 1; done; kill -9 {_server.Pid} 2>/dev/null"],
            new Dictionary<string, string>(), LogPath + ".watchdog", Dir);
        _starts++;
        var end = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!await PingAsync())
        {
            if (_server.HasExited) throw new InvalidOperationException($"redis-server exited with {_server.ExitCode}:\n{_server.Tail()}");
            if (DateTime.UtcNow > end) throw new TimeoutException($"redis-server did not answer PING on {Port} within 30 s:\n{_server.Tail()}");
            await Task.Delay(100);
        }
    }

    /// <summary>SIGTERM (redis flushes its append-only file and exits), waiting for the exit.</summary>
    public void Stop()
    {
        _server?.Terminate(TimeSpan.FromSeconds(20));
        _watchdog?.Dispose();
        _watchdog = null;
    }

    public async Task<bool> PingAsync()
    {
        try
        {
            using var c = new TcpClient();
            await c.ConnectAsync(IPAddress.Loopback, Port).WaitAsync(TimeSpan.FromSeconds(2));
            var s = c.GetStream();
            await s.WriteAsync("PING\r\n"u8.ToArray());
            var buf = new byte[64];
            var n = await s.ReadAsync(buf).AsTask().WaitAsync(TimeSpan.FromSeconds(2));
            var reply = Encoding.ASCII.GetString(buf, 0, n);
            // With --requirepass a live server answers PING with NOAUTH: it is up all the same.
            return reply.StartsWith("+PONG", StringComparison.Ordinal) || reply.StartsWith("-NOAUTH", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is SocketException or IOException or TimeoutException) { return false; }
    }

    public string Tail() => _server?.Tail(30) ?? "(redis not started)";

    public void Dispose()
    {
        _server?.Dispose();
        _watchdog?.Dispose();
    }
}

/// <summary>One FairMedFM.Silo process (<c>dotnet FairMedFM.Silo.dll</c>) with its own ports, configured by FAIRMEDFM_* variables.</summary>
internal sealed class SiloProcess : IDisposable
{
    public required string Name { get; init; }
    public required int SiloPort { get; init; }
    public required int GatewayPort { get; init; }
    public required int HealthPort { get; init; }
    public required string Devices { get; init; }
    public required ChildProcess Process { get; init; }

    /// <summary>Records and ledger entries name silos by address (ip:port@generation): this silo's are those with its port.</summary>
    public bool Owns(string? siloAddress) => siloAddress is not null && siloAddress.Contains($":{SiloPort}@", StringComparison.Ordinal);

    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        var end = DateTime.UtcNow + timeout;
        while (true)
        {
            if (Process.HasExited) throw new InvalidOperationException($"silo {Name} exited with {Process.ExitCode} before it was ready:\n{Process.Tail()}");
            try
            {
                if ((await http.GetAsync($"http://127.0.0.1:{HealthPort}/ready")).IsSuccessStatusCode) return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
            if (DateTime.UtcNow > end) throw new TimeoutException($"silo {Name} not ready within {timeout}:\n{Process.Tail()}");
            await Task.Delay(250);
        }
    }

    public void Dispose() => Process.Dispose();
}
