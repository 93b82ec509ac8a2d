using FairMedFM.Data;
using FairMedFM.Engine.Embeddings;
using FairMedFM.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// Every test class that pushes images through a backbone (real or fake) or reads
/// <see cref="EmbeddingStore.BackboneForwardImages"/> lives in this collection: it runs alone, after the parallel classes,
/// so the process-wide forward counter only moves for the test that reads it.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class BackboneCollection
{
    public const string Name = "backbone";
}

/// <summary>A deterministic stand-in for a backbone: per-image channel means and the overall max, counting its calls.</summary>
internal sealed class FakeEncoder(int dim = 4) : IImageEncoder
{
    private static int _calls, _images, _created;
    public static int Calls => Volatile.Read(ref _calls);
    public static int Images => Volatile.Read(ref _images);
    public static int Created => Volatile.Read(ref _created);

    public static FakeEncoder Create(int dim = 4) { Interlocked.Increment(ref _created); return new FakeEncoder(dim); }

    public string ModelId => "fake";
    public int FeatureDim => dim;
    public string WeightsHash => "fake-weights";

    public Tensor Encode(Tensor images)
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _images, (int)images.shape[0]);
        if (dim != 4) return torch.zeros(images.shape[0], 4); // a lying encoder: FeatureDim says dim, the output has 4 columns
        using var scope = NewDisposeScope();
        var means = images.mean(new long[] { 2, 3 });              // [B,3]
        var max = images.amax(new long[] { 1, 2, 3 }).unsqueeze(1); // [B,1]
        return torch.cat(new[] { means, max }, 1).MoveToOuterDisposeScope();
    }

    public void Dispose() { }
}

[Collection(BackboneCollection.Name)]
public sealed class EmbeddingStoreTests : IDisposable
{
    private readonly TempDir _tmp = new();
    private readonly LoadedDataset _data;
    private static readonly PreprocessingSpec Small = new(32, 32);

    public EmbeddingStoreTests()
    {
        // 20 rows keep the fake backbone's decode + resize cheap.
        _data = DatasetCatalog.Get(TinyData.WriteCard(_tmp.Sub("card"), "emb_tiny", TinyData.CsvLines.Take(21)));
    }

    public void Dispose() => _tmp.Dispose();

    private EmbeddingMatrix Compute(EmbeddingStore store, INormalization? norm = null, string weights = "fake-weights", LoadedDataset? data = null) =>
        store.GetOrCompute(data ?? _data, () => FakeEncoder.Create(), "fake", weights, Small, norm ?? MeanStdNormalization.ChestXray, batchSize: 8);

    [Fact]
    public void Second_request_is_served_from_the_cache_without_forwards()
    {
        var store = new EmbeddingStore(_tmp.Sub("emb"));
        long forwards0 = EmbeddingStore.BackboneForwardImages;
        int images0 = FakeEncoder.Images;

        var first = Compute(store);
        Assert.False(first.CacheHit);
        Assert.Equal(20, first.Count);
        Assert.Equal(4, first.Dim);
        Assert.Equal(20, FakeEncoder.Images - images0);
        Assert.Equal(20, EmbeddingStore.BackboneForwardImages - forwards0);
        Assert.True(store.Contains(first.Key));
        // Real image statistics, not zeros: channel means differ between images.
        Assert.True(Enumerable.Range(0, 20).Select(i => first.Row(i)[0]).Distinct().Count() > 10);

        var second = Compute(store);
        Assert.True(second.CacheHit);
        Assert.Equal(first.Key, second.Key);
        Assert.Equal(first.Values, second.Values);
        Assert.Equal(20, FakeEncoder.Images - images0);
        Assert.Equal(20, EmbeddingStore.BackboneForwardImages - forwards0);
    }

    [Fact]
    public void A_new_store_over_the_same_folder_hits_without_creating_an_encoder()
    {
        var dir = _tmp.Sub("emb");
        var first = Compute(new EmbeddingStore(dir));
        long forwards0 = EmbeddingStore.BackboneForwardImages;

        var restarted = new EmbeddingStore(dir);
        var again = restarted.GetOrCompute(_data, () => throw new InvalidOperationException("the encoder must not be created on a cache hit"),
            "fake", "fake-weights", Small, MeanStdNormalization.ChestXray);
        Assert.True(again.CacheHit);
        Assert.Equal(first.Values, again.Values);
        Assert.Equal(forwards0, EmbeddingStore.BackboneForwardImages);

        var manifest = restarted.TryGetManifest(first.Key)!;
        Assert.Equal(_data.DataHash, manifest.DataHash);
        Assert.Equal("fake-weights", manifest.WeightsHash);
        Assert.Equal(Small.Id, manifest.PreprocessingId);
        Assert.Equal(MeanStdNormalization.ChestXray.Id, manifest.NormalizationId);
        Assert.Equal((20, 4), (manifest.Count, manifest.Dim));
    }

    [Theory]
    [InlineData(0)]    // empty file
    [InlineData(100)]  // cut mid-row
    [InlineData(-1)]   // one float too many
    public void A_damaged_f32_file_is_recomputed_not_trusted(int keepBytes)
    {
        var dir = _tmp.Sub("emb");
        var store = new EmbeddingStore(dir);
        var first = Compute(store);
        var bin = Path.Combine(dir, first.Key + ".f32");
        var bytes = File.ReadAllBytes(bin);
        File.WriteAllBytes(bin, keepBytes >= 0 ? bytes[..keepBytes] : bytes.Concat(new byte[4]).ToArray());
        Assert.Null(store.TryLoad(first.Key));

        int images0 = FakeEncoder.Images;
        var again = Compute(new EmbeddingStore(dir));
        Assert.False(again.CacheHit);
        Assert.Equal(20, FakeEncoder.Images - images0);
        Assert.Equal(first.Values, again.Values);
        Assert.Equal(bytes.Length, new FileInfo(bin).Length);
        Assert.True(Compute(store).CacheHit);
    }

    [Fact]
    public void A_missing_manifest_means_recompute()
    {
        var dir = _tmp.Sub("emb");
        var store = new EmbeddingStore(dir);
        var first = Compute(store);
        File.Delete(Path.Combine(dir, first.Key + ".json"));
        Assert.False(store.Contains(first.Key));
        Assert.False(Compute(store).CacheHit);
    }

    [Fact]
    public void Key_changes_with_data_weights_preprocessing_and_normalization()
    {
        var k = EmbeddingStore.KeyFor("data", "weights", "pre", "norm");
        Assert.Equal(k, EmbeddingStore.KeyFor("data", "weights", "pre", "norm"));
        Assert.Equal(24, k.Length);
        var others = new[]
        {
            EmbeddingStore.KeyFor("data2", "weights", "pre", "norm"),
            EmbeddingStore.KeyFor("data", "weights2", "pre", "norm"),
            EmbeddingStore.KeyFor("data", "weights", "pre2", "norm"),
            EmbeddingStore.KeyFor("data", "weights", "pre", "norm2"),
        };
        Assert.DoesNotContain(k, others);
        Assert.Equal(4, others.Distinct().Count());
    }

    [Fact]
    public void Changed_inputs_get_their_own_entries()
    {
        var store = new EmbeddingStore(_tmp.Sub("emb"));
        var baseline = Compute(store);

        var otherNorm = Compute(store, norm: MeanStdNormalization.ImageNet);
        Assert.False(otherNorm.CacheHit);
        Assert.NotEqual(baseline.Key, otherNorm.Key);
        Assert.NotEqual(baseline.Values, otherNorm.Values);

        var otherWeights = Compute(store, weights: "other-weights");
        Assert.False(otherWeights.CacheHit);
        Assert.NotEqual(baseline.Key, otherWeights.Key);

        // Different data (one row fewer) → different data hash → different entry with its own row count.
        var fewer = DatasetCatalog.Get(TinyData.WriteCard(_tmp.Sub("card2"), "emb_tiny", TinyData.CsvLines.Take(20)));
        Assert.NotEqual(_data.DataHash, fewer.DataHash);
        var otherData = Compute(store, data: fewer);
        Assert.False(otherData.CacheHit);
        Assert.NotEqual(baseline.Key, otherData.Key);
        Assert.Equal(19, otherData.Count);
        Assert.Equal(baseline.Values[..(19 * 4)], otherData.Values);

        // The first entry is still there and still served.
        Assert.True(Compute(store).CacheHit);
    }

    [Fact]
    public void Concurrent_requests_compute_once()
    {
        var store = new EmbeddingStore(_tmp.Sub("emb"));
        int images0 = FakeEncoder.Images;
        var results = Enumerable.Range(0, 3).AsParallel().WithDegreeOfParallelism(3).Select(_ => Compute(store)).ToList();
        Assert.Equal(20, FakeEncoder.Images - images0);
        Assert.Single(results, r => !r.CacheHit);
        Assert.All(results, r => Assert.Equal(results[0].Values, r.Values));
    }

    [Fact]
    public void An_encoder_returning_the_wrong_width_is_an_error()
    {
        var store = new EmbeddingStore(_tmp.Sub("emb"));
        var e = Assert.Throws<InvalidOperationException>(() =>
            store.GetOrCompute(_data, () => new FakeEncoder(dim: 7), "fake", "w", Small, MeanStdNormalization.ChestXray));
        Assert.Contains("expected [20,7]", e.Message);
        Assert.Empty(Directory.GetFiles(store.Directory));
    }
}
