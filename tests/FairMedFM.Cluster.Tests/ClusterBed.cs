using System.Globalization;
using FairMedFM.Client;
using FairMedFM.Engine;
using FairMedFM.Engine.Cells;
using FairMedFM.Grains;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace FairMedFM.Cluster.Tests;

/// <summary>
/// One test's cluster of real processes on loopback: its own redis-server, silo processes started from the built
/// FairMedFM.Silo.dll (distinct ports, one shared cache folder — embeddings, results, the computations audit — and fast
/// pacing), a small dataset card over the real NIH sample and a tiny model card (the golden timm ViT fixture: 32 px,
/// width 64, depth 2) that every silo loads at start, and an Orleans client in the test process that finds the silos through
/// Redis. Logs of every process go to files; <see cref="RunAsync"/> prints their tails when the test fails. Dispose stops the
/// silos (SIGTERM, then SIGKILL), then Redis, and removes the folder; silos also watch the test host's PID and Redis a shell
/// watchdog, so nothing outlives a crashed test host.
/// </summary>
internal sealed class ClusterBed : IAsyncDisposable
{
    public const string Model = "cluster-test-vit";
    public const int LeaseSeconds = 10;

    private readonly ITestOutputHelper _out;
    private readonly List<SiloProcess> _silos = new();
    private readonly List<ChildProcess> _others = new();
    private ClusterConnection? _conn;
    private int _siloCount;

    public string Root { get; }
    public string Cache => Path.Combine(Root, "cache");
    public string Weights => Path.Combine(Root, "weights");
    public string Logs => Path.Combine(Root, "logs");
    public string Card { get; }
    public string ModelCards { get; }
    public RedisServer Redis { get; }
    public IReadOnlyList<SiloProcess> Silos => _silos;

    private ClusterBed(ITestOutputHelper output, bool appendOnly)
    {
        _out = output;
        Root = Path.Combine(Path.GetTempPath(), "fmfm-cluster-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(Cache);
        Directory.CreateDirectory(Weights);
        Card = TinyNih.WriteCard(Path.Combine(Root, "data"));
        File.Copy(Path.Combine(TestPaths.TinyVitDir, "weights.safetensors"), Path.Combine(Weights, "tiny-vit.safetensors"));
        ModelCards = Path.Combine(Root, "model-cards.json");
        File.WriteAllText(ModelCards, TinyModelCardJson);
        Redis = new RedisServer(Path.Combine(Root, "redis"), Path.Combine(Logs, "redis.log"), appendOnly);
    }

    /// <summary>The golden timm ViT fixture (timm 1.0.3 VisionTransformer, img 32, patch 8, width 64, depth 2, class token) as a user card.</summary>
    public const string TinyModelCardJson = $$"""
        [{"id": "{{Model}}", "family": "timm-vit",
          "vit": {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4, "num_classes": 0, "global_pool": "token"},
          "feature_dim": 64, "image_size": 32, "weights_file": "tiny-vit.safetensors", "normalization_kind": "dataset",
          "source": "golden timm_vit_cls fixture (random weights), for the cluster failure tests"}]
        """;

    public static async Task<ClusterBed> StartAsync(ITestOutputHelper output, bool appendOnly = false)
    {
        var bed = new ClusterBed(output, appendOnly);
        try { await bed.Redis.StartAsync(); }
        catch { await bed.DisposeAsync(); throw; }
        return bed;
    }

    /// <summary>Runs a test body; on failure prints the tails of every process log (and the folder, kept when FAIRMEDFM_KEEP_TEST_DIRS=1).</summary>
    public async Task RunAsync(Func<Task> body)
    {
        try { await body(); }
        catch
        {
            _out.WriteLine($"--- cluster folder: {Root}");
            foreach (var s in _silos) _out.WriteLine($"--- silo {s.Name} (ports {s.SiloPort}/{s.GatewayPort}/{s.HealthPort}, exited: {s.Process.HasExited}):\n{s.Process.Tail(60)}");
            foreach (var p in _others) _out.WriteLine($"--- {p.Name}:\n{p.Tail(30)}");
            _out.WriteLine($"--- redis:\n{Redis.Tail()}");
            throw;
        }
    }

    // ---- silos ----

    public Task<SiloProcess[]> StartSilosAsync(params string[] devices) =>
        StartSilosAsync(devices.Select(d => (d, Environment.ProcessId)).ToArray());

    /// <summary>Silos with their devices and the PID each watches (it stops when that process is gone).</summary>
    public async Task<SiloProcess[]> StartSilosAsync((string Devices, int ParentPid)[] silos)
    {
        var started = silos.Select(s => StartSilo(s.Devices, s.ParentPid)).ToArray();
        await Task.WhenAll(started.Select(s => s.WaitReadyAsync(TimeSpan.FromSeconds(120))));
        return started;
    }

    private SiloProcess StartSilo(string devices, int parentPid)
    {
        var n = Interlocked.Increment(ref _siloCount);
        int silo = Ports.Free(), gateway = Ports.Free(), health = Ports.Free();
        var env = new Dictionary<string, string>
        {
            ["FAIRMEDFM_REDIS"] = Redis.Connection,
            ["FAIRMEDFM_SiloPort"] = silo.ToString(CultureInfo.InvariantCulture),
            ["FAIRMEDFM_GatewayPort"] = gateway.ToString(CultureInfo.InvariantCulture),
            ["FAIRMEDFM_HealthPort"] = health.ToString(CultureInfo.InvariantCulture),
            ["FAIRMEDFM_Cache"] = Cache,
            ["FAIRMEDFM_Weights"] = Weights,
            ["FAIRMEDFM_Devices"] = devices,
            ["FAIRMEDFM_TrainingSlots"] = "1",
            ["FAIRMEDFM_ModelCards"] = ModelCards,
            ["FAIRMEDFM_ParentPid"] = parentPid.ToString(CultureInfo.InvariantCulture),
            // Grid files and cards may only make the silos read the test folder and the NIH sample.
            ["FAIRMEDFM_DATA_ROOTS"] = string.Join(':', Root, TestPaths.NihDir),
            // Fast pacing: ticks of 250 ms, leases of 10 s, quick retries with a budget that outlasts a Redis restart.
            ["FAIRMEDFM_SweepTickMs"] = "250",
            ["FAIRMEDFM_LeaseSeconds"] = LeaseSeconds.ToString(CultureInfo.InvariantCulture),
            ["FAIRMEDFM_MaxAttempts"] = "8",
            ["FAIRMEDFM_BackoffSeconds"] = "1",
            ["FAIRMEDFM_MaxBackoffSeconds"] = "3",
            ["FAIRMEDFM_AnnounceSeconds"] = "1",
            // A SIGKILLed silo is declared dead after three missed 2 s probes instead of Orleans' 3 × 5 s — not shorter: on two
            // busy cores (CI runs other test assemblies alongside) a live silo must not be voted dead.
            ["FAIRMEDFM_ProbeTimeoutSeconds"] = "2",
            ["FAIRMEDFM_MissedProbesLimit"] = "3",
            ["Logging__LogLevel__Default"] = "Information",
            ["Logging__LogLevel__Orleans"] = "Warning",
            ["Logging__LogLevel__Microsoft"] = "Warning",
            ["Logging__LogLevel__Polly"] = "Warning",
        };
        var name = $"silo{n}";
        var p = ChildProcess.Start(name, "dotnet", [TestPaths.SiloDll], env, Path.Combine(Logs, name + ".log"), Root);
        var s = new SiloProcess { Name = name, SiloPort = silo, GatewayPort = gateway, HealthPort = health, Devices = devices, Process = p };
        _silos.Add(s);
        return s;
    }

    /// <summary>SIGTERM every running silo at once and wait for them to exit (graceful Orleans shutdown).</summary>
    public async Task StopSilosAsync()
    {
        var running = _silos.Where(s => !s.Process.HasExited).ToList();
        var graceful = await Task.WhenAll(running.Select(s => Task.Run(() => s.Process.Terminate(TimeSpan.FromSeconds(60)))));
        Assert.True(graceful.All(g => g), "a silo did not stop within 60 s of SIGTERM");
    }

    // ---- client ----

    public async Task<IClusterClient> ClientAsync()
    {
        if (_conn is not null) return _conn.Client;
        Exception? last = null;
        for (int i = 0; i < 5; i++)
        {
            try
            {
                _conn = await ClusterConnection.ConnectAsync(null, new Workspace(Cache, Weights), 1, redis: Redis.Connection);
                return _conn.Client;
            }
            catch (InvalidOperationException e) { last = e; await Task.Delay(1000); }
        }
        throw new InvalidOperationException("the test client could not connect", last);
    }

    /// <summary>Drops the client (before every silo goes away: a client with no gateway left waits for minutes).</summary>
    public async Task DisconnectAsync()
    {
        if (_conn is null) return;
        await _conn.DisposeAsync();
        _conn = null;
    }

    public async Task<SweepSubmitResult> SubmitAsync(string gridPath, string sweepId, string device = "cpu", int? parallelism = null)
    {
        var submission = SweepCommands.BuildSubmission(gridPath, sweepId, parallelism, device);
        var c = await ClientAsync();
        return await Retry(() => c.GetGrain<ISweepGrain>(sweepId).Submit(submission), TimeSpan.FromSeconds(60), $"submit {sweepId}");
    }

    /// <summary>Runs the real CLI (<c>fairmedfm.dll</c>) as a process against the cluster's Redis.</summary>
    public ChildProcess StartCli(string name, params string[] args)
    {
        var p = ChildProcess.Start(name, "dotnet", [TestPaths.CliDll, .. args, "--redis", Redis.Connection],
            new Dictionary<string, string>(), Path.Combine(Logs, name + ".log"), Root);
        _others.Add(p);
        return p;
    }

    /// <summary>Any other process of the test (killed on dispose), logging beside the others.</summary>
    public ChildProcess StartOther(string name, string file, params string[] args)
    {
        var p = ChildProcess.Start(name, file, args, new Dictionary<string, string>(), Path.Combine(Logs, name + ".log"), Root);
        _others.Add(p);
        return p;
    }

    public async Task<SweepStatus> StatusAsync(string sweep)
    {
        var c = await ClientAsync();
        return await c.GetGrain<ISweepGrain>(sweep).GetStatus();
    }

    public async Task<IReadOnlyList<SweepCellView>> CellsAsync(string sweep)
    {
        var c = await ClientAsync();
        return await Retry(() => c.GetGrain<ISweepGrain>(sweep).GetCells(), TimeSpan.FromSeconds(60), $"cells of {sweep}");
    }

    /// <summary>Waits until the sweep has no pending or running cell. Calls that fail while silos come and go are retried.</summary>
    public async Task<SweepStatus> SettledAsync(string sweep, TimeSpan? timeout = null)
    {
        SweepStatus? s = null;
        await Until(async () => (s = await StatusAsync(sweep)).IsSettled, timeout ?? TimeSpan.FromMinutes(4), $"sweep {sweep} settles",
            () => s is null ? "no status yet" : $"last status: {Describe(s)}");
        _out.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} sweep {sweep} settled: {Describe(s!)}");
        return s!;
    }

    public static string Describe(SweepStatus s) =>
        $"total {s.Total}, done {s.Done}, failed {s.Failed}, undefined {s.Undefined}, cancelled {s.Cancelled}, running {s.Running}, pending {s.Pending}, lost leases {s.LostLeases}" +
        (s.Warnings.Count > 0 ? $"; warnings: {string.Join("; ", s.Warnings)}" : "");

    public void Log(string line) => _out.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {line}");

    /// <summary>Polls <paramref name="condition"/> (every 200 ms) until true; exceptions count as "not yet" (reported on timeout).</summary>
    public static async Task Until(Func<Task<bool>> condition, TimeSpan timeout, string what, Func<string>? state = null)
    {
        var end = DateTime.UtcNow + timeout;
        Exception? last = null;
        while (true)
        {
            try
            {
                if (await condition()) return;
                last = null;
            }
            catch (Exception e) when (e is not OutOfMemoryException) { last = e; }
            if (DateTime.UtcNow > end)
                throw new TimeoutException($"timed out after {timeout.TotalSeconds:0} s waiting until {what}" +
                                           (state is null ? "" : $" ({state()})") + (last is null ? "" : $"; last error: {last.GetType().Name}: {last.Message}"));
            await Task.Delay(200);
        }
    }

    public static async Task<T> Retry<T>(Func<Task<T>> call, TimeSpan timeout, string what)
    {
        T result = default!;
        await Until(async () => { result = await call(); return true; }, timeout, what);
        return result;
    }

    // ---- grids and records ----

    /// <summary>A grid over the tiny card and model: attributes × seeds cells of lp · erm, each a second or two on these cores.</summary>
    public string WriteGrid(string name, string seeds, string attributes = "[sex, age60, age_bins, sex_x_age60]", int epochs = 20)
    {
        var path = Path.Combine(Root, name + ".yaml");
        File.WriteAllText(path, $"""
            name: {name}
            datasets: ["{Card}"]
            models: [{Model}]
            usages: [lp]
            methods: [erm]
            attributes: {attributes}
            seeds: {seeds}
            normalization: model
            training:
              epochs: {epochs}
              warmup_epochs: 2
              blr: 0.001
              min_lr: 0.00001
              weight_decay: 0.05
              batch_size: 16
              optimizer: adamw
            metrics:
              bootstrap: 200
            split: {"{"}train: 0.6, validation: 0.2, test: 0.2{"}"}
            """);
        return path;
    }

    public IReadOnlyList<ComputationRecord> Records() => ComputationLog.ReadAll(Path.Combine(Cache, ComputationLog.FolderName));

    /// <summary>Completed trainings (status done) of the given cells, from every silo's computations log.</summary>
    public IReadOnlyList<ComputationRecord> DoneTrainings(IEnumerable<string> cellIds)
    {
        var ids = cellIds.ToHashSet(StringComparer.Ordinal);
        return Records().Where(r => r.Kind == ComputationRecord.Training && r.Status == "done" && r.CellId is not null && ids.Contains(r.CellId)).ToList();
    }

    /// <summary>Every cell has exactly one completed training in the records (none recomputed, none missing).</summary>
    public void AssertTrainedOnce(IEnumerable<string> cellIds)
    {
        var ids = cellIds.ToList();
        var done = DoneTrainings(ids).GroupBy(r => r.CellId!).ToDictionary(g => g.Key, g => g.ToList());
        foreach (var id in ids)
        {
            var n = done.GetValueOrDefault(id)?.Count ?? 0;
            Assert.True(n == 1, $"cell {id} was trained {n} time(s): " +
                string.Join("; ", done.GetValueOrDefault(id) ?? []).Replace(Environment.NewLine, " "));
        }
    }

    public IReadOnlyList<ComputationRecord> Embeddings() => Records().Where(r => r.Kind == ComputationRecord.Embedding).ToList();

    public CellResult Stored(string cellId) => new ResultStore(Path.Combine(Cache, "results")).TryGet(cellId)
                                              ?? throw new InvalidOperationException($"no stored result for cell {cellId}");

    /// <summary>
    /// Per (silo, device) — the silo's generation included, since a restarted silo has fresh slots — never more trainings at
    /// once than the device has slots (<paramref name="slots"/>; 1 unless given), from the records' start and end times.
    /// Returns the largest number of trainings that ran at once across the whole cluster.
    /// </summary>
    public static int AssertSlotLimits(IReadOnlyList<ComputationRecord> records, Func<string, string, int>? slots = null)
    {
        var trainings = records.Where(r => r.Kind == ComputationRecord.Training && r.Ended && r.FinishedUtc is not null).ToList();
        Assert.NotEmpty(trainings);
        static IEnumerable<(DateTimeOffset T, int D, ComputationRecord R)> Events(IEnumerable<ComputationRecord> rs) =>
            rs.SelectMany(r => new[] { (r.StartedUtc, 1, r), (r.FinishedUtc!.Value, -1, r) })
              .OrderBy(e => e.Item1).ThenBy(e => e.Item2); // an end at the same instant as a start frees the slot first
        foreach (var g in trainings.GroupBy(r => (r.Origin, r.Device)))
        {
            var limit = slots?.Invoke(g.Key.Origin, g.Key.Device!) ?? 1;
            int now = 0;
            var open = new List<ComputationRecord>();
            foreach (var (t, d, r) in Events(g))
            {
                now += d;
                if (d > 0) open.Add(r); else open.Remove(r);
                Assert.True(now <= limit, $"{now} trainings at once on {g.Key.Origin} {g.Key.Device} ({limit} slot(s)) at {t:HH:mm:ss.fff}: " +
                    string.Join(", ", open.Select(o => $"{o.CellId} {o.StartedUtc:HH:mm:ss.fff}–{o.FinishedUtc:HH:mm:ss.fff}")));
            }
        }
        int all = 0, peak = 0;
        foreach (var (_, d, _) in Events(trainings)) peak = Math.Max(peak, all += d);
        return peak;
    }

    public async ValueTask DisposeAsync()
    {
        try { await DisconnectAsync(); } catch (Exception) { }
        // Silos before Redis: a silo whose Redis is gone hangs in shutdown for minutes.
        await Task.WhenAll(_silos.Select(s => Task.Run(() => s.Process.Terminate(TimeSpan.FromSeconds(20)))));
        foreach (var s in _silos) s.Dispose();
        foreach (var p in _others) p.Dispose();
        Redis.Stop();
        Redis.Dispose();
        if (Environment.GetEnvironmentVariable("FAIRMEDFM_KEEP_TEST_DIRS") != "1")
        {
            try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}

/// <summary>
/// A small dataset card over the real NIH sample: patients with at most two images, about <see cref="PerStratum"/> images per
/// sex × age≥60 × label stratum (so every split holds both labels and both sexes), rows verbatim from metadata.csv.
/// </summary>
internal static class TinyNih
{
    public const int PerStratum = 10;

    public static string WriteCard(string dir)
    {
        Directory.CreateDirectory(dir);
        var all = File.ReadAllLines(Path.Combine(TestPaths.NihDir, "metadata.csv"));
        var header = all[0].Split(',');
        int pid = Array.IndexOf(header, "patient_id"), age = Array.IndexOf(header, "age"), sex = Array.IndexOf(header, "sex"), y = Array.IndexOf(header, "label_abnormal");
        if (new[] { pid, age, sex, y }.Any(i => i < 0)) throw new InvalidOperationException("metadata.csv lacks an expected column");
        var rows = all.Skip(1).Where(l => l.Length > 0).Select(l => l.Split(',')).ToList();
        var strata = new Dictionary<string, int>();
        var chosen = new List<string[]>();
        foreach (var g in rows.GroupBy(r => r[pid]).Where(g => g.Count() <= 2).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var first = g.First();
            var key = $"{first[sex]}|{int.Parse(first[age], CultureInfo.InvariantCulture) >= 60}|{first[y]}";
            strata.TryGetValue(key, out var have);
            if (have >= PerStratum) continue;
            strata[key] = have + g.Count();
            chosen.AddRange(g);
        }
        var csv = Path.Combine(dir, "tiny_nih.csv");
        File.WriteAllLines(csv, new[] { all[0] }.Concat(chosen.Select(r => string.Join(',', r))));
        var card = Path.Combine(dir, "tiny_nih.yaml");
        File.WriteAllText(card, $$"""
            name: tiny_nih
            metadata_csv: "{{csv}}"
            image_root: "{{TestPaths.NihDir}}"
            path_column: path
            patient_id_column: patient_id
            label:
              column: label_abnormal
              positive: ["1"]
              negative: ["0"]
            attributes:
              - name: sex
                column: sex
                kind: categorical
                map: {M: "M", F: "F"}
              - name: age60
                column: age
                kind: threshold
                threshold: 60
                label_low: "<60"
                label_high: "60+"
              - name: age_bins
                column: age
                kind: bins
                edges: [50, 65]
                labels: ["<50", "50-64", "65+"]
            intersections:
              - name: sex_x_age60
                of: [sex, age60]
            normalization:
              mean: [0.5056, 0.5056, 0.5056]
              std: [0.252, 0.252, 0.252]
            """);
        return card;
    }
}
