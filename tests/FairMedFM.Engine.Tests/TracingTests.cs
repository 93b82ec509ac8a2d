using System.Diagnostics;
using FairMedFM.Engine.Config;
using FairMedFM.Grains;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Orleans.TestingHost;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// A tiny sweep on an in-process cluster yields one connected trace: sweep → cell → dataset / embedding (with the
/// backbone's compute span) → training → evaluation → aggregation, across the client/grain boundary.
/// </summary>
[Collection(BackboneCollection.Name)]
public sealed class TracingTests : IAsyncLifetime
{
    private static Workspace? _workspace;

    public sealed class SiloConfig : ISiloConfigurator
    {
        public void Configure(ISiloBuilder silo) => silo.AddFairMedFM(_workspace!, trainingSlots: 1);
    }

    public sealed class ClientConfig : IClientBuilderConfigurator
    {
        public void Configure(Microsoft.Extensions.Configuration.IConfiguration configuration, IClientBuilder client) => client.AddActivityPropagation();
    }

    private readonly TempDir _tmp = new();
    private TestCluster _cluster = null!;

    public async Task InitializeAsync()
    {
        _workspace = _tmp.Workspace();
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<SiloConfig>();
        builder.AddClientBuilderConfigurator<ClientConfig>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
        _tmp.Dispose();
    }

    [Fact]
    public async Task A_tiny_sweep_is_one_connected_trace_with_the_cell_spans()
    {
        var spans = new List<Activity>();
        // Metrics of the same sweep, read with a plain MeterListener.
        var measured = new System.Collections.Concurrent.ConcurrentDictionary<string, long>();
        using var meters = new System.Diagnostics.Metrics.MeterListener();
        meters.InstrumentPublished = (i, l) => { if (i.Meter.Name == Telemetry.Name) l.EnableMeasurementEvents(i); };
        meters.SetMeasurementEventCallback<long>((i, v, tags, _) =>
        {
            var key = i.Name;
            foreach (var t in tags) if (t.Key is "state" or "hit") key += $"[{t.Key}={t.Value}]";
            measured.AddOrUpdate(key, v, (_, old) => old + v);
        });
        meters.Start();
        using var tracer = Sdk.CreateTracerProviderBuilder()
            .AddSource(Telemetry.Name, "Microsoft.Orleans.Application", "Microsoft.Orleans.Runtime")
            .AddInMemoryExporter(spans)
            .Build();

        var card = TinyData.WriteCard(_tmp.Sub("card"), "traced_tiny");
        var gridPath = _tmp.File("traced.yaml");
        File.WriteAllText(gridPath, TinyData.GridYaml("traced-grid", card, attributes: "[sex]", seeds: "[0, 1]"));
        var outcome = await SweepDriver.RunAsync(_cluster.GrainFactory, GridSpec.Load(gridPath), pollInterval: TimeSpan.FromMilliseconds(100))
            .WaitAsync(TimeSpan.FromMinutes(2));
        Assert.All(outcome.Results, r => Assert.Equal("done", r.Status));
        tracer!.ForceFlush();

        List<Activity> Snapshot() { lock (spans) return spans.ToList(); }
        var sweep = Assert.Single(Snapshot(), a => a.DisplayName == "sweep" && (string?)a.GetTagItem("fairmedfm.grid") == "traced-grid");
        Assert.Null(sweep.ParentId); // the root
        // The aggregation span ends after the cell span; wait briefly for the last export.
        for (int i = 0; i < 50 && Snapshot().Count(a => a.TraceId == sweep.TraceId && a.DisplayName == "aggregation") < 2; i++)
            await Task.Delay(100);
        var trace = Snapshot().Where(a => a.TraceId == sweep.TraceId).ToList();
        var names = trace.Select(a => a.DisplayName).ToList();

        var cells = trace.Where(a => a.DisplayName == "cell").ToList();
        Assert.Equal(2, cells.Count);
        foreach (var name in new[] { "dataset", "embedding", "training", "evaluation", "aggregation" })
            Assert.True(names.Count(n => n == name) >= 2, $"expected a '{name}' span per cell in the sweep's trace, got: {string.Join(", ", names.Distinct())}");
        // The backbone ran once, inside the trace (the first cell's request), and that cell saw a miss.
        var compute = Assert.Single(trace, a => a.DisplayName == "embedding.compute");
        Assert.Equal(false, compute.GetTagItem("fairmedfm.cache_hit"));
        // Grain calls are traced too (activity propagation on both sides).
        Assert.Contains(trace, a => a.Source.Name.StartsWith("Microsoft.Orleans", StringComparison.Ordinal));

        foreach (var c in cells)
        {
            foreach (var tag in new[] { "fairmedfm.dataset", "fairmedfm.model", "fairmedfm.usage", "fairmedfm.method", "fairmedfm.attribute",
                         "fairmedfm.seed", "fairmedfm.device", "fairmedfm.silo" })
                Assert.NotNull(c.GetTagItem(tag));
            Assert.Equal("done", c.GetTagItem("fairmedfm.status"));
        }
        // Cells by state and work counters moved with the sweep (other test classes may add to them too: lower bounds).
        Assert.True(measured.GetValueOrDefault("fairmedfm.cells.finished[state=done]") >= 2);
        Assert.True(measured.GetValueOrDefault("fairmedfm.embeddings.images") >= TinyData.Rows);
        Assert.True(measured.GetValueOrDefault("fairmedfm.training.steps") > 0);
        Assert.True(measured.GetValueOrDefault("fairmedfm.cache.lookups[hit=False]") >= 1);

        var training = trace.First(a => a.DisplayName == "training");
        Assert.Contains(training.Events, e => e.Name == "epoch");

        // Connected: every span's parent chain reaches the sweep root without leaving the trace.
        var byId = trace.ToDictionary(a => a.SpanId);
        foreach (var a in trace)
        {
            var cur = a;
            int guard = 0;
            while (cur.ParentSpanId != default && guard++ < 100)
            {
                Assert.True(byId.TryGetValue(cur.ParentSpanId, out var parent), $"span '{cur.DisplayName}' has a parent outside the exported trace");
                cur = parent!;
            }
            Assert.Same(sweep, cur);
        }
    }
}
