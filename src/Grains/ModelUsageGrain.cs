using FairMedFM.Engine.Cells;

namespace FairMedFM.Grains;

public sealed class ModelUsageGrain(CellRunner runner, ComputationLog computations, Microsoft.Extensions.Logging.ILogger<ModelUsageGrain> log)
    : Grain, IModelUsageGrain
{
    private Task? _work;
    private volatile int _done, _total;
    private EmbeddingStatus? _final;
    private DateTime _failedAt;
    private string? _stamp;

    public Task<EmbeddingStatus> EnsureEmbeddings()
    {
        var (card, model, norm) = GrainKeys.ParseModelUsage(this.GetPrimaryKeyString());
        // Finished embeddings hold while the dataset is unchanged; edited data gets its own (content-addressed) entry.
        if (_final is { Phase: JobPhase.Done } && _stamp == Engine.Segmentation.AnyDataset.Stamp(card)) return Task.FromResult(_final);
        // Every caller sees a failure for a while; a request after that retries (weights may have been added meanwhile).
        if (_final is { Phase: JobPhase.Failed } && DateTime.UtcNow - _failedAt < DatasetGrain.FailureHold) return Task.FromResult(_final);
        if (_work is null || _work.IsCompleted)
        {
            _final = null;
            _stamp = Engine.Segmentation.AnyDataset.Stamp(card);
            var progress = new Progress(this);
            _work = ComputeAsync(card, model, norm, progress);
        }
        return Task.FromResult(_final ?? new EmbeddingStatus(JobPhase.Running, _done, _total, null, false, null));
    }

    private async Task ComputeAsync(string card, string model, string norm, Progress progress)
    {
        try
        {
            // Heavy backbone work runs on the thread pool, never on the grain's scheduler.
            var started = DateTimeOffset.UtcNow;
            // Classification: the dataset's embedding matrix; segmentation: every image's embedding in the per-image cache.
            var emb = await Task.Run(() => runner.PrepareEmbeddings(card, model, norm, progress));
            if (!emb.CacheHit) Record(card, model, emb, started);
            _final = new EmbeddingStatus(JobPhase.Done, emb.Count, emb.Count, emb.Key, emb.CacheHit, null);
        }
        catch (Exception e)
        {
            _failedAt = DateTime.UtcNow;
            _final = new EmbeddingStatus(JobPhase.Failed, _done, _total, null, false, CellRunner.Describe(e));
        }
    }

    /// <summary>The backbone ran here: one audit record (a failed computation leaves none; its error reaches the cells).</summary>
    private void Record(string card, string model, PreparedEmbeddings emb, DateTimeOffset started)
    {
        try
        {
            computations.Append(new ComputationRecord
            {
                Kind = ComputationRecord.Embedding, Key = emb.Key, Dataset = card, Model = model, Origin = computations.Origin,
                Status = "done", Images = emb.Count, StartedUtc = started, FinishedUtc = DateTimeOffset.UtcNow,
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Microsoft.Extensions.Logging.LoggerExtensions.LogWarning(log, "embedding {Key}: the computation record could not be written to {Log}: {Error}", emb.Key, computations.FilePath, e.Message);
        }
    }

    private sealed class Progress(ModelUsageGrain g) : IProgress<(int done, int total)>
    {
        public void Report((int done, int total) v) { g._total = v.total; g._done = v.done; }
    }
}
