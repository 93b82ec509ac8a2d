using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using FairMedFM.Data;

namespace FairMedFM.Engine.Segmentation;

/// <summary>
/// Which per-image embeddings a (dataset, model, weights, input size, normalisation) needs: one key per sample, in
/// sample order, recorded once every entry exists. Its <see cref="Key"/> is what cells and grains call the dataset's
/// embedding key; finding it (with every listed file present) is a cache hit that reads no image.
/// </summary>
public sealed record SegEmbeddingSet(string Key, string DataHash, string ModelId, string WeightsHash, int InputSize, string NormalizationId,
    int Channels, int GridSize, IReadOnlyList<string> SampleKeys, DateTimeOffset CreatedUtc);

/// <summary>
/// Content-addressed cache of SAM image embeddings, one file per image (a ViT-B embedding is 256×64×64 float32 = 4 MiB,
/// so never one matrix per dataset): the key hashes the pixels fed to the encoder (the image after the resize to the
/// model's input size), the model id, the weights' sha256, the input size and the normalisation. The same image used
/// by another dataset, card or cell is therefore encoded once; each entry is written atomically (temp + rename) with a
/// header (magic, channels, grid) so a truncated or foreign file is recomputed, never trusted. Files are sharded by the
/// first two hex digits of the key.
/// </summary>
public sealed class SegEmbeddingStore(string directory)
{
    private const uint Magic = 0x45534D46; // "FMSE" little-endian
    private const int HeaderBytes = 16;
    private static long _encoderForwardImages;
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> SetLocks = new(StringComparer.Ordinal);

    /// <summary>Images pushed through a segmentation image encoder by this process (all stores): proves cache reuse in tests.</summary>
    public static long EncoderForwardImages => Interlocked.Read(ref _encoderForwardImages);

    internal static void CountForwards(int images) => Interlocked.Add(ref _encoderForwardImages, images);

    /// <summary>Serialises the computation of one set across the callers of this process.</summary>
    internal static SemaphoreSlim LockFor(string setKey) => SetLocks.GetOrAdd(setKey, _ => new SemaphoreSlim(1, 1));

    public string Directory { get; } = directory;

    /// <summary>sha256 of the encoder's input image: size and the 8-bit RGB pixels after the resize.</summary>
    public static string ImageHash(RgbImage resized)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> dims = stackalloc byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(dims, resized.Width);
        BinaryPrimitives.WriteInt32LittleEndian(dims[4..], resized.Height);
        h.AppendData(dims);
        h.AppendData(resized.Pixels);
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }

    public static string KeyFor(string imageHash, string modelId, string weightsHash, int inputSize, string normalizationId) =>
        Hashing.Combine("seg-embedding-v1", imageHash, modelId, weightsHash, inputSize.ToString(System.Globalization.CultureInfo.InvariantCulture), normalizationId)[..32];

    public static string SetKeyFor(string dataHash, string modelId, string weightsHash, int inputSize, string normalizationId) =>
        Hashing.Combine("seg-embedding-set-v1", dataHash, modelId, weightsHash, inputSize.ToString(System.Globalization.CultureInfo.InvariantCulture), normalizationId)[..24];

    public string PathFor(string key) => Path.Combine(Directory, key[..2], key + ".f32");
    private string SetPath(string setKey) => Path.Combine(Directory, "sets", setKey + ".json");

    public bool Contains(string key) => File.Exists(PathFor(key));

    /// <summary>Present with the size of a [channels × grid × grid] entry (a truncated file is not).</summary>
    public bool IsComplete(string key, int channels, int grid)
    {
        var f = new FileInfo(PathFor(key));
        return f.Exists && f.Length == HeaderBytes + (long)channels * grid * grid * sizeof(float);
    }

    /// <summary>The embedding [channels × grid × grid] or null when absent, truncated or of another shape.</summary>
    public float[]? TryLoad(string key, int channels, int grid)
    {
        var path = PathFor(key);
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return null; }
        long n = (long)channels * grid * grid;
        if (bytes.Length != HeaderBytes + n * sizeof(float)) return null;
        if (BinaryPrimitives.ReadUInt32LittleEndian(bytes) != Magic || BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(4)) != channels
            || BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8)) != grid || BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(12)) != grid)
            return null;
        var values = new float[n];
        Buffer.BlockCopy(bytes, HeaderBytes, values, 0, (int)(n * sizeof(float)));
        return values;
    }

    public void Put(string key, ReadOnlySpan<float> values, int channels, int grid)
    {
        if (values.Length != (long)channels * grid * grid)
            throw new ArgumentException($"embedding has {values.Length} values, expected {channels}×{grid}×{grid}");
        var bytes = new byte[HeaderBytes + values.Length * sizeof(float)];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), channels);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), grid);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(12), grid);
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).CopyTo(bytes.AsSpan(HeaderBytes));
        Workspace.WriteAtomic(PathFor(key), s => s.Write(bytes));
    }

    /// <summary>The set when recorded and every one of its files is still there; null otherwise.</summary>
    public SegEmbeddingSet? TryGetCompleteSet(string setKey)
    {
        var p = SetPath(setKey);
        if (!File.Exists(p)) return null;
        SegEmbeddingSet? set;
        try { set = JsonSerializer.Deserialize<SegEmbeddingSet>(File.ReadAllText(p), JsonDefaults.Pretty); }
        catch (JsonException) { return null; }
        if (set is null || set.Key != setKey) return null;
        return set.SampleKeys.All(k => IsComplete(k, set.Channels, set.GridSize)) ? set : null;
    }

    public void PutSet(SegEmbeddingSet set) =>
        Workspace.WriteAllTextAtomic(SetPath(set.Key), JsonSerializer.Serialize(set, JsonDefaults.Pretty));
}
