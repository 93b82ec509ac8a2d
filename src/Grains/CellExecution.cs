using FairMedFM.Engine;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;

namespace FairMedFM.Grains;

/// <summary>
/// The stages of one cell as grains run it — dataset (grain), stored result reuse, validation, embeddings (model-usage grain,
/// once per image cluster-wide), then training in a slot of <paramref name="device"/> — shared by the experiment grain and
/// the device workers. Heavy work goes to the thread pool; the rest runs on the calling grain's scheduler.
/// </summary>
public sealed class CellExecution(IGrainFactory grains, CellRunner runner, TrainingSlots slots, string device)
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(200);

    public string Stage { get; private set; } = "pending";
    public int Done { get; private set; }
    public int Total { get; private set; }

    public async Task<CellResult> RunAsync(CellSpec spec)
    {
        var started = DateTimeOffset.UtcNow;
        Stage = "dataset";
        var dataset = grains.GetGrain<IDatasetGrain>(spec.Dataset);
        DatasetStatus ds;
        using (var span = Telemetry.Source.StartActivity("dataset"))
        {
            while (true)
            {
                ds = await dataset.Prepare();
                if (ds.Phase is JobPhase.Done or JobPhase.Failed) break;
                await Task.Delay(Poll);
            }
            span?.SetTag("fairmedfm.data_hash", ds.DataHash);
        }
        if (ds.Phase == JobPhase.Failed) return Fail(spec, ds.Error ?? "dataset failed to load", started);

        // Idempotent and resumable: a cell finished earlier on the same data is not recomputed.
        var stored = await Task.Run(() => runner.TryReuse(spec, ds.DataHash!));
        if (stored is not null) return stored;

        try { runner.ValidateCell(spec); }
        catch (Exception e) { return Fail(spec, CellRunner.Describe(e), started); }

        // Usages that train inside the backbone (lora) read images, not the embedding cache.
        EmbeddingStatus? es = null;
        bool cacheHit = false;
        if (runner.NeedsEmbeddings(spec))
        {
            Stage = "embeddings";
            var usage = grains.GetGrain<IModelUsageGrain>(GrainKeys.ModelUsage(spec.Dataset, spec.Model, spec.Normalization));
            using (var span = Telemetry.Source.StartActivity("embedding"))
            {
                bool waited = false;
                while (true)
                {
                    es = await usage.EnsureEmbeddings();
                    Done = es.Done; Total = es.Total;
                    if (es.Phase is JobPhase.Done or JobPhase.Failed) break;
                    waited = true;
                    await Task.Delay(Poll);
                }
                // A hit: the backbone did not run for this request (the entry was on disk, or computed for another cell).
                cacheHit = es.CacheHit || !waited;
                span?.SetTag("fairmedfm.cache_hit", cacheHit);
                span?.SetTag("fairmedfm.embedding_key", es.EmbeddingKey);
            }
            if (es.Phase == JobPhase.Failed) return Fail(spec, es.Error ?? "embedding failed", started);
        }

        Stage = "queued";
        var tag = new KeyValuePair<string, object?>("device", device);
        Telemetry.CellsQueued.Add(1);
        await slots.WaitAsync(device);
        Telemetry.CellsQueued.Add(-1);
        Telemetry.SlotsBusy.Add(1, tag);
        try
        {
            Stage = "training";
            return await Task.Run(() => runner.RunPrepared(spec, es?.EmbeddingKey, cacheHit));
        }
        finally { slots.Release(device); Telemetry.SlotsBusy.Add(-1, tag); }
    }

    private CellResult Fail(CellSpec spec, string error, DateTimeOffset started) => runner.Results.PutFailure(CellResult.Failed(spec, error, started));
}
