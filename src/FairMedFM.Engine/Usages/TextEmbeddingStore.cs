using System.Collections.Concurrent;
using System.Text.Json;
using FairMedFM.Models;
using TorchSharp;

namespace FairMedFM.Engine.Usages;

/// <summary>Text embeddings of a model's prompts (row i = prompt i) with the similarity constants of its weights.</summary>
public sealed record TextEmbeddings(string Key, IReadOnlyList<string> Prompts, int Dim, float[] Values, double? LogitScaleExp, double? LogitBias,
    bool CacheHit)
{
    public int Count => Prompts.Count;
}

/// <summary>What went into a text-embedding cache entry; stored beside it.</summary>
public sealed record TextEmbeddingManifest(string Key, string ModelId, string WeightsHash, IReadOnlyList<string> Prompts, int Count, int Dim,
    double? LogitScaleExp, double? LogitBias, DateTimeOffset CreatedUtc);

/// <summary>
/// Content-addressed cache of text embeddings: the key is the hash of (weights hash, prompts), so a text tower runs
/// once per (weights, prompt list) whatever the number of cells, and the entry survives restarts. The weights'
/// exp(logit_scale) and logit_bias are stored with it, so a cached entry never needs the model again.
/// </summary>
public sealed class TextEmbeddingStore(string directory)
{
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> Locks = new();
    private static long _encoded;

    /// <summary>Prompts pushed through a text tower by this process (all stores). Tests use it to prove cache reuse.</summary>
    public static long PromptsEncoded => Interlocked.Read(ref _encoded);

    public string Directory { get; } = directory;

    public static string KeyFor(string weightsHash, IReadOnlyList<string> prompts) =>
        Hashing.Combine(new[] { "text-embeddings-v1", weightsHash, prompts.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) }
            .Concat(prompts).ToArray())[..24];

    private string BinPath(string key) => Path.Combine(Directory, key + ".f32");
    private string ManifestPath(string key) => Path.Combine(Directory, key + ".json");

    public TextEmbeddings? TryLoad(string key)
    {
        if (!File.Exists(ManifestPath(key)) || !File.Exists(BinPath(key))) return null;
        TextEmbeddingManifest? m;
        try { m = JsonSerializer.Deserialize<TextEmbeddingManifest>(File.ReadAllText(ManifestPath(key)), JsonDefaults.Pretty); }
        catch (JsonException) { return null; }
        if (m is null || m.Prompts.Count != m.Count) return null;
        var bytes = File.ReadAllBytes(BinPath(key));
        if (bytes.Length != (long)m.Count * m.Dim * sizeof(float)) return null; // truncated or foreign: recompute
        var values = new float[m.Count * m.Dim];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return new TextEmbeddings(key, m.Prompts, m.Dim, values, m.LogitScaleExp, m.LogitBias, CacheHit: true);
    }

    /// <summary>
    /// The cached embeddings of <paramref name="prompts"/> for these weights, or computed with the model's text tower
    /// (once, even when several cells ask at the same time). A model without one fails naming it.
    /// </summary>
    public TextEmbeddings GetOrCompute(string modelId, string weightsHash, IReadOnlyList<string> prompts, Func<IImageEncoder> encoderFactory,
        CancellationToken ct = default)
    {
        var key = KeyFor(weightsHash, prompts);
        var gate = Locks.GetOrAdd(key, _ => new SemaphoreSlim(1, 1));
        gate.Wait(ct);
        try
        {
            if (TryLoad(key) is { } cached) return cached;
            using var encoder = encoderFactory();
            if (encoder is not ITextEncoder text)
                throw new InvalidOperationException($"model '{modelId}' has no text tower (not a CLIP-style model)");
            var scales = encoder as IContrastiveLogits;
            float[] values;
            int dim;
            using (var scope = torch.NewDisposeScope())
            {
                var t = text.EncodeText(prompts.ToArray()).to(torch.float32).cpu().contiguous();
                if (t.dim() != 2 || t.shape[0] != prompts.Count)
                    throw new InvalidOperationException($"text encoder of {modelId} returned shape [{string.Join(",", t.shape)}] for {prompts.Count} prompts");
                dim = (int)t.shape[1];
                values = t.data<float>().ToArray();
            }
            Interlocked.Add(ref _encoded, prompts.Count);
            var manifest = new TextEmbeddingManifest(key, modelId, weightsHash, prompts.ToList(), prompts.Count, dim,
                scales?.LogitScaleExp, scales?.LogitBias, DateTimeOffset.UtcNow);
            var bytes = new byte[values.Length * sizeof(float)];
            Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
            Workspace.WriteAtomic(BinPath(key), s => s.Write(bytes));
            Workspace.WriteAllTextAtomic(ManifestPath(key), JsonSerializer.Serialize(manifest, JsonDefaults.Pretty));
            return new TextEmbeddings(key, manifest.Prompts, dim, values, manifest.LogitScaleExp, manifest.LogitBias, CacheHit: false);
        }
        finally { gate.Release(); }
    }
}
