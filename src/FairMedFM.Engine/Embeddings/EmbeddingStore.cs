using System.Collections.Concurrent;
using System.Text.Json;
using FairMedFM.Data;
using FairMedFM.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Embeddings;

/// <summary>Frozen-backbone features of every sample of one dataset, row i = sample i.</summary>
public sealed record EmbeddingMatrix(string Key, int Count, int Dim, float[] Values, bool CacheHit)
{
    public ReadOnlySpan<float> Row(int i) => Values.AsSpan(i * Dim, Dim);
}

/// <summary>What went into an embedding cache entry; stored beside it and recorded with results.</summary>
public sealed record EmbeddingManifest(string Key, string DataHash, string ModelId, string WeightsHash, string PreprocessingId,
    string NormalizationId, int Count, int Dim, DateTimeOffset CreatedUtc);

/// <summary>
/// Content-addressed cache of frozen-backbone embeddings: the key is the hash of (data hash, weights hash, pre-processing,
/// normalisation), so the backbone runs once per image per (dataset, model, pre-processing) for the whole sweep, whatever
/// the number of cells, seeds and epochs, and the cache survives restarts. Entries are written atomically.
/// </summary>
public sealed class EmbeddingStore(string directory)
{
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> Locks = new();
    private static long _forwardImages;

    /// <summary>Images pushed through a backbone by this process (all stores). Tests use it to prove cache reuse.</summary>
    public static long BackboneForwardImages => Interlocked.Read(ref _forwardImages);

    public string Directory { get; } = directory;

    public static string KeyFor(string dataHash, string weightsHash, string preprocessingId, string normalizationId) =>
        Hashing.Combine("embeddings-v1", dataHash, weightsHash, preprocessingId, normalizationId)[..24];

    private string BinPath(string key) => Path.Combine(Directory, key + ".f32");
    private string ManifestPath(string key) => Path.Combine(Directory, key + ".json");

    public bool Contains(string key) => File.Exists(BinPath(key)) && File.Exists(ManifestPath(key));

    public EmbeddingManifest? TryGetManifest(string key) =>
        File.Exists(ManifestPath(key)) ? JsonSerializer.Deserialize<EmbeddingManifest>(File.ReadAllText(ManifestPath(key)), JsonDefaults.Pretty) : null;

    public EmbeddingMatrix? TryLoad(string key)
    {
        var manifest = TryGetManifest(key);
        if (manifest is null || !File.Exists(BinPath(key))) return null;
        var bytes = File.ReadAllBytes(BinPath(key));
        if (bytes.Length != (long)manifest.Count * manifest.Dim * sizeof(float))
            return null; // truncated or foreign file: recompute rather than trust it
        var values = new float[manifest.Count * manifest.Dim];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return new EmbeddingMatrix(key, manifest.Count, manifest.Dim, values, CacheHit: true);
    }

    /// <summary>Returns the cached embeddings or computes them (once, even when several callers ask at the same time).</summary>
    public EmbeddingMatrix GetOrCompute(LoadedDataset data, Func<IImageEncoder> encoderFactory, string modelId, string weightsHash,
        PreprocessingSpec preprocessing, INormalization normalization, int batchSize = 32, IProgress<(int done, int total)>? progress = null,
        CancellationToken ct = default)
    {
        var key = KeyFor(data.DataHash, weightsHash, preprocessing.Id, normalization.Id);
        using var activity = Telemetry.Source.StartActivity("embedding.compute");
        activity?.SetTag("fairmedfm.dataset", data.Card.Name);
        activity?.SetTag("fairmedfm.model", modelId);
        activity?.SetTag("fairmedfm.embedding_key", key);
        var gate = Locks.GetOrAdd(key, _ => new SemaphoreSlim(1, 1));
        gate.Wait(ct);
        try
        {
            var cached = TryLoad(key);
            activity?.SetTag("fairmedfm.cache_hit", cached is not null);
            Telemetry.CacheLookups.Add(1, new KeyValuePair<string, object?>("hit", cached is not null));
            if (cached is not null) { progress?.Report((cached.Count, cached.Count)); return cached; }
            var started = System.Diagnostics.Stopwatch.StartNew();

            using var encoder = encoderFactory();
            var n = data.Samples.Count;
            var dim = encoder.FeatureDim;
            var values = new float[n * dim];
            for (int start = 0; start < n; start += batchSize)
            {
                ct.ThrowIfCancellationRequested();
                int count = Math.Min(batchSize, n - start);
                // Decoding and pre-processing are independent per image: use the cores while the batch is assembled.
                var chw = new float[count][];
                Parallel.For(0, count, new ParallelOptions { CancellationToken = ct }, j =>
                    chw[j] = ImagePipeline.Run(data.Samples[start + j].ImagePath, preprocessing, normalization));
                using var scope = torch.NewDisposeScope();
                var flat = new float[count * chw[0].Length];
                for (int j = 0; j < count; j++) chw[j].CopyTo(flat, j * chw[j].Length);
                // clone(): torch-owned, aligned memory, so the same images give the same embeddings bit for bit on every run.
                var batch = torch.tensor(flat, new long[] { count, 3, preprocessing.Crop, preprocessing.Crop }).clone();
                var feats = encoder.Encode(batch).to(torch.float32).contiguous();
                if (feats.shape[0] != count || feats.shape[1] != dim)
                    throw new InvalidOperationException($"encoder {modelId} returned shape [{string.Join(",", feats.shape)}], expected [{count},{dim}]");
                feats.data<float>().CopyTo(values.AsSpan(start * dim, count * dim));
                Interlocked.Add(ref _forwardImages, count);
                Telemetry.EmbeddedImages.Add(count, new KeyValuePair<string, object?>("model", modelId));
                progress?.Report((start + count, n));
            }

            Telemetry.EmbeddingRate.Record(n / Math.Max(1e-9, started.Elapsed.TotalSeconds), new KeyValuePair<string, object?>("model", modelId));
            activity?.SetTag("fairmedfm.images", n);
            var manifest = new EmbeddingManifest(key, data.DataHash, modelId, weightsHash, preprocessing.Id, normalization.Id, n, dim, DateTimeOffset.UtcNow);
            var bytes = new byte[values.Length * sizeof(float)];
            Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
            Workspace.WriteAtomic(BinPath(key), s => s.Write(bytes));
            Workspace.WriteAllTextAtomic(ManifestPath(key), JsonSerializer.Serialize(manifest, JsonDefaults.Pretty));
            return new EmbeddingMatrix(key, n, dim, values, CacheHit: false);
        }
        finally { gate.Release(); }
    }
}
