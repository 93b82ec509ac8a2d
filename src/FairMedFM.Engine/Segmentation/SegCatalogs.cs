using System.Collections.Concurrent;
using System.Globalization;
using FairMedFM.Data;
using FairMedFM.Data.Segmentation;
using FairMedFM.Engine.Config;
using FairMedFM.Models;
using FairMedFM.Models.Sam;

namespace FairMedFM.Engine.Segmentation;

/// <summary>
/// Process-wide memo of loaded segmentation datasets (the <see cref="DatasetCatalog"/> of <c>task: segmentation</c>
/// cards), keyed by card path and the card/CSV modification times. Loading goes through the data layer, so the card,
/// its CSV, images and label maps are confined by <see cref="PathGuard.Current"/>.
/// </summary>
public static class SegDatasetCatalog
{
    private static readonly ConcurrentDictionary<string, Lazy<SegmentationDataset>> Cache = new();

    public static SegmentationDataset Get(string cardPath)
    {
        cardPath = Path.GetFullPath(cardPath);
        var card = SegmentationCard.Load(cardPath);
        var key = Key(cardPath, card);
        var lazy = Cache.GetOrAdd(key, _ => new Lazy<SegmentationDataset>(() => SegmentationDataset.Load(card), LazyThreadSafetyMode.ExecutionAndPublication));
        try { return lazy.Value; }
        catch { Cache.TryRemove(key, out _); throw; } // a bad row or missing file is retried once the user fixes it
    }

    /// <summary>What <see cref="Get"/> is keyed by, without loading the data; never throws.</summary>
    public static string Stamp(string cardPath)
    {
        cardPath = Path.GetFullPath(cardPath);
        try { return Key(cardPath, SegmentationCard.Load(cardPath)); }
        catch (Exception e) when (e is DataException or IOException or UnauthorizedAccessException)
        {
            return $"{cardPath}|unreadable|{(File.Exists(cardPath) ? File.GetLastWriteTimeUtc(cardPath).Ticks : 0)}";
        }
    }

    private static string Key(string cardPath, SegmentationCard card)
    {
        var csvStamp = File.Exists(card.MetadataCsv) ? File.GetLastWriteTimeUtc(card.MetadataCsv).Ticks : 0;
        return $"{cardPath}|{File.GetLastWriteTimeUtc(cardPath).Ticks}|{csvStamp}";
    }
}

/// <summary>What grains need to know of a dataset of either task (name, size, hash, attributes).</summary>
public sealed record DatasetSummary(string Task, string Name, int Samples, int Patients, string DataHash, IReadOnlyList<string> AttributeNames);

/// <summary>Task-aware front of the two dataset memos, for grains that handle both kinds of card.</summary>
public static class AnyDataset
{
    public static DatasetSummary Describe(string cardPath)
    {
        if (DatasetTask.IsSegmentation(cardPath))
        {
            var s = SegDatasetCatalog.Get(cardPath);
            return new DatasetSummary(DatasetTask.Segmentation, s.Card.Name, s.Count, s.Samples.Select(x => x.PatientId).Distinct().Count(), s.DataHash, s.AttributeNames);
        }
        var d = DatasetCatalog.Get(cardPath);
        return new DatasetSummary(DatasetTask.Classification, d.Card.Name, d.Samples.Count, d.Samples.Select(x => x.PatientId).Distinct().Count(), d.DataHash, d.AttributeNames);
    }

    /// <summary>The memo stamp of either kind of card; never throws.</summary>
    public static string Stamp(string cardPath)
    {
        try { if (DatasetTask.IsSegmentation(cardPath)) return SegDatasetCatalog.Stamp(cardPath); }
        catch (Exception e) when (e is DataException or IOException or UnauthorizedAccessException) { /* the classification stamp reports it */ }
        return DatasetCatalog.Stamp(cardPath);
    }
}

/// <summary>A model usable by segmentation cells: a SAM-family card, or a baseline that needs no weights.</summary>
public sealed record SegModelEntry(string Id, SegModelCard? Card, bool IsBaseline, string Description);

/// <summary>
/// Resolves a segmentation model id: the cards of <see cref="SegModelZoo"/> (weights from the workspace's weights folder),
/// cards registered in code (<see cref="Register"/>: a small configuration for tests, a local variant) and the
/// weight-free baselines (<see cref="OtsuBaseline"/>). Loaded models are pooled per process (<see cref="Rent"/>), so the
/// cells of a sweep share a few loaded copies instead of reading a 375 MB checkpoint per cell.
/// </summary>
public static class SegModelCatalog
{
    private static readonly ConcurrentDictionary<string, (SegModelCard Card, Func<Workspace, LoadedSegModel> Factory)> Registered = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, string> WeightsHashes = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, ConcurrentBag<LoadedSegModel>> Idle = new(StringComparer.Ordinal);
    private static long _loads;

    /// <summary>Checkpoints loaded by this process (all ids): tests use it to see the pool at work.</summary>
    public static long ModelLoads => Interlocked.Read(ref _loads);

    /// <summary>
    /// Makes <paramref name="card"/> usable by id in segmentation cells, in this process; <paramref name="factory"/>
    /// loads it (frozen, eval mode) and reports the weights' hash. A zoo or baseline id cannot be registered;
    /// registering an id again replaces it.
    /// </summary>
    public static void Register(SegModelCard card, Func<Workspace, LoadedSegModel> factory)
    {
        ArgumentNullException.ThrowIfNull(card);
        ArgumentNullException.ThrowIfNull(factory);
        if (string.IsNullOrWhiteSpace(card.Id)) throw new ArgumentException("a registered segmentation card needs an id");
        if (SegModelZoo.Cards.Any(c => string.Equals(c.Id, card.Id, StringComparison.OrdinalIgnoreCase)) || OtsuBaseline.Id == card.Id)
            throw new ArgumentException($"'{card.Id}' is a built-in segmentation model; register the card under another id");
        Registered[card.Id] = (card, factory);
        Forget(card.Id);
    }

    public static bool Unregister(string id)
    {
        Forget(id);
        return Registered.TryRemove(id, out _);
    }

    private static void Forget(string id)
    {
        foreach (var k in WeightsHashes.Keys.Where(k => k.StartsWith(id + "|", StringComparison.Ordinal))) WeightsHashes.TryRemove(k, out _);
        foreach (var k in Idle.Keys.Where(k => k.StartsWith(id + "|", StringComparison.Ordinal)))
            if (Idle.TryRemove(k, out var bag)) foreach (var m in bag) m.Dispose();
    }

    public static SegModelEntry? TryGet(string id)
    {
        if (id == OtsuBaseline.Id) return new SegModelEntry(id, null, true, OtsuBaseline.Description);
        if (Registered.TryGetValue(id, out var r)) return new SegModelEntry(id, r.Card, false, r.Card.Architecture);
        var card = SegModelZoo.Cards.FirstOrDefault(c => c.Id == id);
        return card is null ? null : new SegModelEntry(id, card, false, card.Architecture);
    }

    public static bool IsSegmentationModel(string id) => TryGet(id) is not null;

    /// <summary>Every id a segmentation cell accepts.</summary>
    public static IReadOnlyList<string> KnownIds =>
        SegModelZoo.Cards.Select(c => c.Id).Concat(Registered.Keys.Order(StringComparer.Ordinal)).Append(OtsuBaseline.Id).ToList();

    public static SegModelEntry Get(string id) => TryGet(id) ?? throw new ConfigException(
        ModelCatalog.TryCard(id) is not null
            ? $"model '{id}' is a classification model; segmentation usages need a segmentation model ({string.Join(", ", KnownIds)})"
            : SegModelZoo.NotYetAvailable.FirstOrDefault(n => n.Id == id) is { Id: not null } n
                ? $"segmentation model '{id}' is not available yet: {n.Reason}"
                : FairMedFM.Models.ModelStatus.NotYetAvailable.FirstOrDefault(n => n.Id == id) is { Id: not null } cn
                    ? $"'{id}' is not available yet: {cn.Reason} (and it is a classification model; segmentation usages need a segmentation model)"
                    : $"unknown segmentation model '{id}' ({(Config.NameSuggestions.Nearest(id, KnownIds) is { } near ? $"did you mean '{near}'? " : "")}known: {string.Join(", ", KnownIds)})");

    /// <summary>sha256 of the weights a cell would load (memoised per process; the checkpoint is hashed, not loaded). Baselines: a fixed id of the algorithm.</summary>
    public static string WeightsHash(string id, Workspace ws)
    {
        var e = Get(id);
        if (e.IsBaseline) return OtsuBaseline.WeightsId;
        return WeightsHashes.GetOrAdd($"{id}|{ws.WeightsDir}", _ =>
        {
            if (Registered.TryGetValue(id, out var r))
            {
                using var m = r.Factory(ws);
                return m.WeightsSha256;
            }
            return WeightLoader.FileSha256(SegModelZoo.ResolveWeightsFile(e.Card!, ws.WeightsDir));
        });
    }

    /// <summary>A loaded model for exclusive use until the lease is disposed (then it waits, loaded, for the next cell).</summary>
    public static Lease Rent(string id, Workspace ws)
    {
        var e = Get(id);
        if (e.IsBaseline) throw new InvalidOperationException($"{id} is a baseline and has no network to load");
        var key = $"{id}|{ws.WeightsDir}";
        var bag = Idle.GetOrAdd(key, _ => new ConcurrentBag<LoadedSegModel>());
        if (!bag.TryTake(out var model))
        {
            model = Registered.TryGetValue(id, out var r) ? r.Factory(ws) : SegModelZoo.Create(e.Card!, ws.WeightsDir);
            Interlocked.Increment(ref _loads);
            WeightsHashes.TryAdd(key, model.WeightsSha256);
        }
        return new Lease(key, model);
    }

    /// <summary>Drops every pooled model (frees their memory).</summary>
    public static void Clear()
    {
        foreach (var k in Idle.Keys)
            if (Idle.TryRemove(k, out var bag)) foreach (var m in bag) m.Dispose();
    }

    public sealed class Lease(string key, LoadedSegModel model) : IDisposable
    {
        private int _returned;
        public LoadedSegModel Model { get; } = model;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _returned, 1) != 0) return;
            var bag = Idle.GetOrAdd(key, _ => new ConcurrentBag<LoadedSegModel>());
            // One idle copy per model is kept; more (after concurrent cells) are released.
            if (bag.IsEmpty) bag.Add(Model); else Model.Dispose();
        }
    }

    /// <summary>
    /// The image normalisation of a segmentation cell. "dataset": FairMedFM's segmentation data path whatever the model
    /// (albumentations <c>Normalize()</c> with ImageNet statistics on cv2's BGR channels, spec §2.6; <c>Sam.preprocess</c>
    /// is not called, spec §3.3). "model": the model card's own (<see cref="SegModelCard.NormalizationKind"/>: SAM's
    /// pixel mean/std on RGB 0–255, or MedSAM's per-image min–max to [0, 1]).
    /// </summary>
    public static INormalization Normalization(SegModelCard card, string choice) => choice switch
    {
        "dataset" => AlbumentationsNormalization.FairMedFMSegmentation,
        "model" => card.NormalizationKind switch
        {
            "sam-pixel" => new PixelMeanStdNormalization(card.Sam.PixelMean.ToArray(), card.Sam.PixelStd.ToArray()),
            "minmax01" => MinMaxNormalization.Instance,
            var k => throw new ConfigException($"segmentation model card {card.Id}: unknown normalization kind '{k}'"),
        },
        _ => throw new ConfigException($"normalization '{choice}' is not one of: model, dataset"),
    };
}

/// <summary>
/// segment-anything's <c>Sam.preprocess</c> arithmetic without the padding: RGB 0–255, <c>(x − pixel_mean) / pixel_std</c>
/// per channel in float32 (the image is already square at the model size on this path).
/// </summary>
public sealed class PixelMeanStdNormalization : INormalization
{
    private readonly float[] _mean, _std;
    public string Id { get; }

    public PixelMeanStdNormalization(float[] mean, float[] std)
    {
        if (mean.Length != 3 || std.Length != 3 || std.Any(s => !(s > 0))) throw new ArgumentException("pixel mean/std need 3 values, std positive");
        _mean = (float[])mean.Clone(); _std = (float[])std.Clone();
        static string F(float v) => v.ToString("R", CultureInfo.InvariantCulture);
        Id = $"sam-pixel:rgb:{string.Join(",", _mean.Select(F))}/{string.Join(",", _std.Select(F))}";
    }

    public float[] ToChw(RgbImage img)
    {
        int n = img.Width * img.Height;
        var outp = new float[3 * n];
        var px = img.Pixels;
        for (int c = 0; c < 3; c++)
        {
            float m = _mean[c], s = _std[c];
            int o = c * n;
            for (int i = 0; i < n; i++) outp[o + i] = (px[i * 3 + c] - m) / s;
        }
        return outp;
    }
}

/// <summary>MedSAM's per-image min–max to [0, 1] over all channels, RGB order: <c>(x − min) / max(max − min, 1e-8)</c>.</summary>
public sealed class MinMaxNormalization : INormalization
{
    public static MinMaxNormalization Instance { get; } = new();
    public string Id => "minmax01:rgb";

    public float[] ToChw(RgbImage img)
    {
        int n = img.Width * img.Height;
        var px = img.Pixels;
        byte lo = 255, hi = 0;
        foreach (var v in px) { if (v < lo) lo = v; if (v > hi) hi = v; }
        float range = Math.Max(hi - lo, 1e-8f);
        var outp = new float[3 * n];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < n; i++) outp[c * n + i] = (px[i * 3 + c] - lo) / range;
        return outp;
    }
}
