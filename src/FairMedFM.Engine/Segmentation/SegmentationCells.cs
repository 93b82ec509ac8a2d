using System.Globalization;
using System.Text;
using FairMedFM.Data;
using FairMedFM.Data.Segmentation;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Segmentation;
using FairMedFM.Engine.Usages;
using FairMedFM.Metrics;
using FairMedFM.Models.Sam;
using TorchSharp;

namespace FairMedFM.Engine.Cells;

/// <summary>What the embedding stage of a cell produced, for either task: the cache key, the images it covers, and
/// whether the backbone had nothing to compute.</summary>
public sealed record PreparedEmbeddings(string Key, int Count, bool CacheHit);

/// <summary>
/// Segmentation cells (spec §5.5, §6.4): zero-shot prompted segmentation of every sample of a <c>task: segmentation</c>
/// card by a SAM-family model (or the Otsu baseline), scored per sample (Dice, FairMedFM's Dice, IoU, HD95) and summarised
/// per group with bootstrap intervals clustered by patient, ES-Dice/ES-IoU and skewness; per volume as well when the
/// samples are slices. Image embeddings are computed once per image per (model, weights, input size, normalisation)
/// through <see cref="SegEmbeddingStore"/>; a cell then runs only the prompt encoder and mask decoder. The entry points
/// below are task-aware, so grains call them for both kinds of cell.
/// </summary>
public sealed partial class CellRunner
{
    private SegEmbeddingStore? _segEmbeddings;

    /// <summary>Per-image segmentation embeddings, under <c>&lt;cache&gt;/seg-embeddings</c>.</summary>
    public SegEmbeddingStore SegEmbeddings => _segEmbeddings ??= new SegEmbeddingStore(Path.Combine(Workspace.CacheDir, "seg-embeddings"));

    /// <summary>A segmentation cell: its usage is a segmentation usage or its card says <c>task: segmentation</c> (a mismatch then fails the cell, naming both).</summary>
    public static bool IsSegmentationCell(CellSpec spec) => SegUsages.IsSegmentation(spec.Usage) || DatasetTask.IsSegmentation(spec.Dataset);

    /// <summary>The checks of <see cref="ValidateSpec"/> for either task (grains call this before any work).</summary>
    public void ValidateCell(CellSpec spec)
    {
        if (IsSegmentationCell(spec)) ValidateSegmentation(spec);
        else ValidateSpec(spec, DatasetCatalog.Get(spec.Dataset));
    }

    /// <summary>Whether the cell reads cached embeddings (every usage but lora and the weight-free segmentation baseline).</summary>
    public bool NeedsEmbeddings(CellSpec spec) =>
        IsSegmentationCell(spec) ? SegModelCatalog.TryGet(spec.Model) is not { IsBaseline: true } : UsageRunner.NeedsEmbeddings(spec.Usage);

    /// <summary>The weights hash recorded with (and checked before reusing) a cell's result.</summary>
    public string WeightsHashFor(CellSpec spec) =>
        SegModelCatalog.IsSegmentationModel(spec.Model) ? SegModelCatalog.WeightsHash(spec.Model, Workspace) : ModelCatalog.WeightsHash(spec.Model, Workspace);

    /// <summary>The embedding stage of either task: a classification embedding matrix, or a segmentation card's per-image embeddings.</summary>
    public PreparedEmbeddings PrepareEmbeddings(string datasetCard, string modelId, string normalization,
        IProgress<(int done, int total)>? progress = null, CancellationToken ct = default)
    {
        if (DatasetTask.IsSegmentation(datasetCard))
        {
            var (set, forwards) = PrepareSegEmbeddings(datasetCard, modelId, normalization, progress, ct);
            return new PreparedEmbeddings(set.Key, set.SampleKeys.Count, forwards == 0);
        }
        var emb = GetEmbeddings(datasetCard, modelId, normalization, progress, ct);
        return new PreparedEmbeddings(emb.Key, emb.Count, emb.CacheHit);
    }

    /// <summary>The rest of a cell once its embedding stage is done (<paramref name="embeddingKey"/> null when it has none).</summary>
    public CellResult RunPrepared(CellSpec spec, string? embeddingKey, bool cacheHit, CancellationToken ct = default)
    {
        var started = DateTimeOffset.UtcNow;
        try
        {
            if (IsSegmentationCell(spec)) return RunSegmentation(spec, cacheHit, ct);
            if (embeddingKey is null) return RunWithEmbeddings(spec, null, ct);
            var emb = Embeddings.TryLoad(embeddingKey)
                      ?? throw new InvalidOperationException($"embedding entry {embeddingKey} vanished from {Embeddings.Directory}");
            return RunWithEmbeddings(spec, emb with { CacheHit = cacheHit }, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Results.PutFailure(CellResult.Failed(spec, Describe(e), started) with { Retryable = IsRetryable(e) });
        }
    }

    /// <summary>Checks a segmentation cell before any work: card/usage pairing, model, method, attribute, settings.</summary>
    public (SegmentationDataset Data, SegModelEntry Model) ValidateSegmentation(CellSpec spec)
    {
        var task = DatasetTask.Of(spec.Dataset);
        DatasetTask.CheckPairing(spec.Usage, spec.Dataset, task);
        if (!GridSpec.KnownMethods.Contains(spec.Method))
            throw new ConfigException($"method '{spec.Method}' is not implemented yet (available: {string.Join(", ", GridSpec.KnownMethods)})");
        if (spec.Method != "erm")
            throw new ConfigException($"method '{spec.Method}': segmentation cells are zero-shot prompted inference and support method erm only");
        var model = SegModelCatalog.Get(spec.Model);
        if (spec.Normalization is not ("model" or "dataset"))
            throw new ConfigException($"normalization '{spec.Normalization}' is not one of: model, dataset");
        spec.Metrics.Validate();
        var data = SegDatasetCatalog.Get(spec.Dataset);
        if (!data.AttributeNames.Contains(spec.Attribute))
            throw new ConfigException($"attribute '{spec.Attribute}' is not defined by dataset card {data.Card.SourceFile} (defined: {string.Join(", ", data.AttributeNames)})");
        return (data, model);
    }

    /// <summary>
    /// Every sample's image embedding in the per-image cache (computed for the ones missing, in small batches), and the set
    /// recorded. Returns the set and how many images the encoder ran on (0 = a cache hit).
    /// </summary>
    public (SegEmbeddingSet Set, long Forwards) PrepareSegEmbeddings(string datasetCard, string modelId, string normalization,
        IProgress<(int done, int total)>? progress = null, CancellationToken ct = default)
    {
        var data = SegDatasetCatalog.Get(datasetCard);
        var entry = SegModelCatalog.Get(modelId);
        if (entry.IsBaseline) throw new InvalidOperationException($"{modelId} is a baseline without image embeddings");
        var card = entry.Card!;
        var norm = SegModelCatalog.Normalization(card, normalization);
        var weightsHash = SegModelCatalog.WeightsHash(modelId, Workspace);
        int size = card.ImageSize, channels = card.Sam.PromptEmbedDim, grid = card.Sam.ImageEmbeddingSize, n = data.Count;
        var setKey = SegEmbeddingStore.SetKeyFor(data.DataHash, modelId, weightsHash, size, norm.Id);
        using var activity = Telemetry.Source.StartActivity("embedding.compute");
        activity?.SetTag("fairmedfm.dataset", data.Card.Name);
        activity?.SetTag("fairmedfm.model", modelId);
        activity?.SetTag("fairmedfm.embedding_key", setKey);
        var gate = SegEmbeddingStore.LockFor(setKey);
        gate.Wait(ct);
        try
        {
            var existing = SegEmbeddings.TryGetCompleteSet(setKey);
            if (existing is not null)
            {
                activity?.SetTag("fairmedfm.cache_hit", true);
                Telemetry.CacheLookups.Add(1, new KeyValuePair<string, object?>("hit", true));
                progress?.Report((n, n));
                return (existing, 0);
            }
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var keys = new string[n];
            var pending = new List<(string Key, float[] Chw)>();
            var queued = new HashSet<string>(StringComparer.Ordinal);
            int batch = size >= 512 ? 1 : 8;
            long forwards = 0;
            SegModelCatalog.Lease? lease = null;
            try
            {
                void Flush()
                {
                    if (pending.Count == 0) return;
                    lease ??= SegModelCatalog.Rent(modelId, Workspace);
                    var model = lease.Model.Model;
                    using (torch.inference_mode())
                    using (var scope = torch.NewDisposeScope())
                    {
                        var flat = new float[pending.Count * 3 * size * size];
                        for (int j = 0; j < pending.Count; j++) pending[j].Chw.CopyTo(flat, j * 3 * size * size);
                        var x = torch.tensor(flat, new long[] { pending.Count, 3, size, size });
                        var emb = model.EmbedImage(x).to(torch.float32).contiguous();
                        var values = emb.data<float>().ToArray();
                        int per = channels * grid * grid;
                        for (int j = 0; j < pending.Count; j++) SegEmbeddings.Put(pending[j].Key, values.AsSpan(j * per, per), channels, grid);
                    }
                    SegEmbeddingStore.CountForwards(pending.Count);
                    forwards += pending.Count;
                    Telemetry.EmbeddedImages.Add(pending.Count, new KeyValuePair<string, object?>("model", modelId));
                    pending.Clear();
                }

                for (int i = 0; i < n; i++)
                {
                    ct.ThrowIfCancellationRequested();
                    var item = data.LoadItem(i, new SegmentationTransform(size));
                    var key = SegEmbeddingStore.KeyFor(SegEmbeddingStore.ImageHash(item.Image), modelId, weightsHash, size, norm.Id);
                    keys[i] = key;
                    if (!SegEmbeddings.IsComplete(key, channels, grid) && queued.Add(key)) pending.Add((key, item.ImageChw(norm)));
                    if (pending.Count >= batch) Flush();
                    progress?.Report((i + 1, n));
                }
                Flush();
            }
            finally { lease?.Dispose(); }
            activity?.SetTag("fairmedfm.cache_hit", forwards == 0);
            activity?.SetTag("fairmedfm.images", forwards);
            Telemetry.CacheLookups.Add(1, new KeyValuePair<string, object?>("hit", forwards == 0));
            if (forwards > 0)
                Telemetry.EmbeddingRate.Record(forwards / Math.Max(1e-9, clock.Elapsed.TotalSeconds), new KeyValuePair<string, object?>("model", modelId));
            var set = new SegEmbeddingSet(setKey, data.DataHash, modelId, weightsHash, size, norm.Id, channels, grid, keys, DateTimeOffset.UtcNow);
            SegEmbeddings.PutSet(set);
            return (set, forwards);
        }
        finally { gate.Release(); }
    }

    private CellResult RunSegmentationCell(CellSpec spec, CancellationToken ct)
    {
        var (data, _) = ValidateSegmentation(spec); // pairing first: a classification card never reaches the segmentation loader
        if (TryReuse(spec, data.DataHash) is { } stored) return stored;
        return RunSegmentation(spec, null, ct);
    }

    /// <summary>One sample's outcome (a row of the records file).</summary>
    private sealed record SegRecord(SegSample Sample, string Group, string Prompt, string? SkipReason, MetricValue Dice, MetricValue DiceRef,
        MetricValue IoU, MetricValue Hd95, int? BestMask, float? PredictedIoU, long PredictedArea, long TargetArea, long Intersection, int Height, int Width)
    {
        public bool Scored => SkipReason is null;
    }

    /// <summary>
    /// A segmentation cell end to end: embeddings (from the cache, computing any that are missing), prompts, decoder, the
    /// best of the multimask outputs by predicted IoU, masks at the label's size, per-sample metrics, group summaries with
    /// intervals, per-volume aggregation for slices, the records file. <paramref name="cacheHit"/>: what the embedding
    /// stage found (grains); null when this call does the embedding stage itself.
    /// </summary>
    public CellResult RunSegmentation(CellSpec spec, bool? cacheHit = null, CancellationToken ct = default)
    {
        var started = DateTimeOffset.UtcNow;
        try
        {
            var (data, entry) = ValidateSegmentation(spec);
            var prompt = SegUsages.Prompt(spec.Usage);
            SegEmbeddingSet? set = null;
            long forwards = 0;
            if (!entry.IsBaseline)
            {
                using var span = Telemetry.Source.StartActivity("embedding");
                (set, forwards) = PrepareSegEmbeddings(spec.Dataset, spec.Model, spec.Normalization, ct: ct);
                span?.SetTag("fairmedfm.cache_hit", cacheHit ?? forwards == 0);
            }

            using var evaluation = Telemetry.Source.StartActivity("evaluation");
            var records = entry.IsBaseline ? SegmentBaseline(data, prompt, spec, ct) : SegmentWithSam(data, entry, set!, prompt, spec, ct);
            var scored = records.Where(r => r.Scored).ToList();
            if (scored.Count == 0)
            {
                // Every mask empty usually means a target value that no label file holds: say so, with the values there are.
                if (records.Count > 0 && records.All(r => r.SkipReason!.StartsWith("skipped: empty mask", StringComparison.Ordinal)))
                {
                    var (present, files) = data.LabelValuesPresent(ct);
                    if (present.Count == 0 || !present.Contains(data.Card.Target.LabelValue))
                        throw new DataException(
                            $"label value {data.Card.Target.LabelValue} occurs in none of the {files} label {(data.Samples.Any(s => s.FromVolume) ? "files" : "maps")}; " +
                            (present.Count == 0 ? "they hold only background (0)" : $"values present: {string.Join(", ", present)}"),
                            data.Card.SourceFile, field: "target.label_value");
                }
                throw new DataException($"no sample could be scored: {string.Join("; ", records.Take(3).Select(r => r.SkipReason))}" +
                                        (records.Count > 3 ? $" (and {records.Count - 3} more)" : ""), data.Card.MetadataCsv);
            }

            var (summary, groupValues, intervalUnits) = Summaries(scored.Select(r => r.Dice).ToList(), scored.Select(r => r.DiceRef).ToList(),
                scored.Select(r => r.IoU).ToList(), scored.Select(r => r.Hd95).ToList(), scored.Select(r => r.Group).ToList(),
                scored.Select(r => r.Sample.PatientId).ToList(), "", spec);

            bool volumetric = data.Samples.Any(s => s.FromVolume) || data.Card.VolumeIdColumn is not null;
            if (volumetric)
            {
                var vols = new List<(string Group, string Patient, MetricValue Dice, MetricValue IoU)>();
                foreach (var v in scored.GroupBy(r => r.Sample.VolumeId, StringComparer.Ordinal))
                {
                    var groupsOfVolume = v.Select(r => r.Group).Distinct().ToList();
                    if (groupsOfVolume.Count > 1)
                        throw new DataException($"volume '{v.Key}' has slices in groups {string.Join(", ", groupsOfVolume)} of attribute '{spec.Attribute}'; a volume needs one group",
                            data.Card.MetadataCsv, v.First().Sample.Row);
                    long inter = v.Sum(r => r.Intersection), p = v.Sum(r => r.PredictedArea), t = v.Sum(r => r.TargetArea);
                    vols.Add((groupsOfVolume[0], v.First().Sample.PatientId, MetricValue.Of(2.0 * inter / (p + t)), MetricValue.Of((double)inter / (p + t - inter))));
                }
                var (vSummary, vGroups, _) = Summaries(vols.Select(v => v.Dice).ToList(), null, vols.Select(v => v.IoU).ToList(), null,
                    vols.Select(v => v.Group).ToList(), vols.Select(v => v.Patient).ToList(), "vol_", spec);
                foreach (var (k, e) in vSummary) summary[k] = e;
                foreach (var (g, vals) in vGroups)
                    foreach (var (k, e) in vals) (groupValues.TryGetValue(g, out var d) ? d : groupValues[g] = new()).Add(k, e);
            }
            evaluation?.SetTag("fairmedfm.scored", scored.Count);
            evaluation?.Stop();

            var labels = data.Card.GroupLabels(spec.Attribute);
            var byGroup = records.GroupBy(r => r.Group).OrderBy(g => IndexOrEnd(labels, g.Key)).ThenBy(g => g.Key, StringComparer.Ordinal).ToList();
            var groupKeys = groupValues.Values.SelectMany(d => d.Keys).Distinct().ToList();
            var groups = byGroup.Select(g =>
            {
                int n = g.Count(), ok = g.Count(r => r.Scored);
                IReadOnlyDictionary<string, MetricEntry> values = groupValues.TryGetValue(g.Key, out var vals) ? vals
                    : groupKeys.ToDictionary(k => k, _ => ToEntry(MetricValue.Undefined(UndefinedReason.EmptyGroup, "no sample of this group could be scored (every one was skipped)")));
                return new GroupResult(g.Key, n, ok, n - ok, values);
            }).ToList();
            var overallValues = new Dictionary<string, MetricEntry>(StringComparer.Ordinal);
            foreach (var m in new[] { "dice", "dice-ref", "iou", "hd95", "vol_dice", "vol_iou" })
            {
                var key = m.StartsWith("vol_", StringComparison.Ordinal) ? "vol_mean_" + m[4..] : "mean_" + m;
                if (summary.TryGetValue(key, out var e)) overallValues[m] = e;
            }

            var recordsFile = Results.PredictionsPathFor(spec.CellId);
            WriteSegRecords(recordsFile, records, SegUsages.ReferenceName(spec.Usage));
            var skipped = records.Where(r => !r.Scored).Select(r => new SkippedSegSample(r.Sample.Index, r.Sample.Id, r.Sample.Row, r.Group, r.SkipReason!)).ToList();
            var result = new CellResult
            {
                CellId = spec.CellId, Spec = spec, Status = "done", DatasetName = data.Card.Name, DataHash = data.DataHash,
                WeightsHash = SegModelCatalog.WeightsHash(spec.Model, Workspace), ConfigHash = Hashing.Of(spec),
                EmbeddingKey = set?.Key, EmbeddingCacheHit = set is not null && (cacheHit ?? forwards == 0),
                Sizes = new SplitSizes(0, 0, scored.Count),
                Threshold = entry.IsBaseline ? null : entry.Card!.Sam.MaskThreshold,
                ThresholdChosenOn = entry.IsBaseline ? "none (baseline predicts a binary mask)" : "fixed: SAM mask logit > threshold",
                Summary = summary,
                Overall = new GroupResult("all", records.Count, scored.Count, records.Count - scored.Count, overallValues),
                Groups = groups,
                Intervals = spec.Metrics.Bootstrap > 0
                    ? new IntervalInfo(spec.Metrics.Bootstrap, spec.Metrics.Ci, spec.Metrics.CiLevel, spec.Seed, ClusteredByPatient: true, intervalUnits) : null,
                PredictionsFile = recordsFile,
                Segmentation = new SegmentationInfo
                {
                    Prompt = SegUsages.ReferenceName(spec.Usage),
                    Segmenter = entry.IsBaseline ? OtsuBaseline.Id : "sam",
                    InputSize = entry.IsBaseline ? null : entry.Card!.ImageSize,
                    NormalizationId = entry.IsBaseline ? null : SegModelCatalog.Normalization(entry.Card!, spec.Normalization).Id,
                    MaskSelection = entry.IsBaseline ? null : "argmax predicted IoU of the 3 multimask outputs (FairMedFM)",
                    Samples = records.Count, Evaluated = scored.Count, Skipped = skipped.Count, SkippedSamples = skipped,
                    SkippedVolumes = data.SkippedVolumes, Volumes = records.Select(r => r.Sample.VolumeId).Distinct(StringComparer.Ordinal).Count(),
                    VolumeAggregation = volumetric,
                    GroupCounts = byGroup.Select(g => new SegGroupCount(g.Key, g.Count(), g.Count(r => r.Scored), g.Count(r => !r.Scored),
                        g.Select(r => r.Sample.VolumeId).Distinct(StringComparer.Ordinal).Count())).ToList(),
                    EncoderForwards = forwards,
                    RecordsFile = recordsFile,
                },
                StartedUtc = started, FinishedUtc = DateTimeOffset.UtcNow,
            };
            Results.Put(result);
            return result;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Results.PutFailure(CellResult.Failed(spec, Describe(e), started) with { Retryable = IsRetryable(e) });
        }
    }

    private static int IndexOrEnd(IReadOnlyList<string> labels, string g)
    {
        for (int i = 0; i < labels.Count; i++) if (labels[i] == g) return i;
        return int.MaxValue;
    }

    private List<SegRecord> SegmentWithSam(SegmentationDataset data, SegModelEntry entry, SegEmbeddingSet set, PromptKind prompt, CellSpec spec, CancellationToken ct)
    {
        var card = entry.Card!;
        int size = card.ImageSize, channels = card.Sam.PromptEmbedDim, grid = card.Sam.ImageEmbeddingSize;
        if (set.SampleKeys.Count != data.Count)
            throw new InvalidOperationException($"embedding set {set.Key} lists {set.SampleKeys.Count} images but the dataset has {data.Count} samples");
        var records = new List<SegRecord>(data.Count);
        using var lease = SegModelCatalog.Rent(spec.Model, Workspace);
        var model = lease.Model.Model;
        using var _ = torch.inference_mode();
        for (int i = 0; i < data.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var item = data.LoadItem(i, null, spec.Seed);
            var group = item.Sample.Groups[spec.Attribute];
            if (item.EmptyMask) { records.Add(Skip(item, group, item.Prompts.SkipMessage!)); continue; }
            // FairMedFM's frame: the label map resized (nearest) to the model input, prompts drawn there and passed unchanged.
            var maskS = SegImaging.ResizeNearest(item.Labels, size, size).MaskOf(item.TargetValue);
            var prompts = PromptGenerator.FromMask(maskS, size, size, spec.Seed, item.Sample.Id);
            if (prompts.Skipped)
            {
                records.Add(Skip(item, group, $"skipped: the target ({item.Prompts.ForegroundPixels} pixel(s) at {item.Width}×{item.Height}) has no pixel after the nearest-neighbour resize to the model input {size}×{size}"));
                continue;
            }
            // Damaged since the embedding stage (another process, a full disk): an I/O failure, so the sweep retries the
            // cell, and the retry's embedding stage finds the entry incomplete and recomputes it.
            var values = SegEmbeddings.TryLoad(set.SampleKeys[i], channels, grid)
                         ?? throw new IOException($"embedding {set.SampleKeys[i]} of sample '{item.Sample.Id}' is missing or damaged in {SegEmbeddings.Directory}; run the cell again to recompute it");
            using var scope = torch.NewDisposeScope();
            var emb = torch.tensor(values, new long[] { 1, channels, grid, grid });
            SamPrompt sp;
            if (prompt == PromptKind.Box)
            {
                var b = prompts.Box;
                sp = new SamPrompt(Boxes: torch.tensor(new float[] { b.X0, b.Y0, b.X1, b.Y1 }, new long[] { 1, 4 }));
            }
            else
            {
                var pts = prompts.Points(prompt);
                var coords = new float[pts.Count * 2];
                for (int k = 0; k < pts.Count; k++) { coords[2 * k] = pts[k].X; coords[2 * k + 1] = pts[k].Y; }
                sp = SamPrompt.PositivePoints(torch.tensor(coords, new long[] { 1, pts.Count, 2 }));
            }
            using var o = model.Predict(emb, sp, multimaskOutput: true, (size, size), (item.Height, item.Width));
            int best = (int)o.BestMaskIndex[0].item<long>();
            float iouPred = o.IouPredictions[0, best].item<float>();
            var logits = o.BestMaskLogits().contiguous().data<float>().ToArray();
            var pred = new bool[logits.Length];
            float threshold = (float)card.Sam.MaskThreshold;
            for (int k = 0; k < logits.Length; k++)
            {
                if (float.IsNaN(logits[k])) throw new InvalidOperationException($"mask logit NaN at pixel {k} of sample '{item.Sample.Id}'");
                pred[k] = logits[k] > threshold;
            }
            records.Add(Score(item, group, Describe(prompt, prompts), pred, logits, best, iouPred));
        }
        return records;
    }

    private static List<SegRecord> SegmentBaseline(SegmentationDataset data, PromptKind prompt, CellSpec spec, CancellationToken ct)
    {
        var records = new List<SegRecord>(data.Count);
        for (int i = 0; i < data.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var item = data.LoadItem(i, null, spec.Seed);
            var group = item.Sample.Groups[spec.Attribute];
            if (item.EmptyMask) { records.Add(Skip(item, group, item.Prompts.SkipMessage!)); continue; }
            var pred = OtsuBaseline.Segment(item.Image, prompt, item.Prompts);
            // A binary prediction as ±1 "logits", so FairMedFM's Dice (threshold ≥ 0.5 on logits) reads it as the same mask.
            var logits = pred.Select(p => p ? 1f : -1f).ToArray();
            records.Add(Score(item, group, Describe(prompt, item.Prompts), pred, logits, null, null));
        }
        return records;
    }

    private static SegRecord Skip(SegmentationItem item, string group, string reason)
    {
        var u = MetricValue.Undefined(UndefinedReason.EmptyMask, reason);
        return new SegRecord(item.Sample, group, "", reason, u, u, u, u, null, null, 0, item.Mask.Count(b => b != 0), 0, item.Height, item.Width);
    }

    private static SegRecord Score(SegmentationItem item, string group, string promptText, bool[] pred, float[] logits, int? best, float? iouPred)
    {
        int h = item.Height, w = item.Width;
        var target = new bool[h * w];
        long inter = 0, p = 0, t = 0;
        for (int k = 0; k < target.Length; k++)
        {
            target[k] = item.Mask[k] != 0;
            if (pred[k]) p++;
            if (target[k]) t++;
            if (pred[k] && target[k]) inter++;
        }
        var pm = new BinaryMask(h, w, pred);
        var tm = new BinaryMask(h, w, target);
        var grid = new float[h, w];
        for (int r = 0; r < h; r++) for (int c = 0; c < w; c++) grid[r, c] = logits[r * w + c];
        return new SegRecord(item.Sample, group, promptText, null, SegmentationMetrics.Dice(pm, tm), SegmentationMetrics.DiceReference(grid, tm),
            SegmentationMetrics.IoU(pm, tm), SegmentationMetrics.Hausdorff95(pm, tm), best, iouPred, p, t, inter, h, w);
    }

    private static string Describe(PromptKind kind, MaskPrompts p) => kind switch
    {
        PromptKind.Box => $"box {p.Box.X0} {p.Box.Y0} {p.Box.X1} {p.Box.Y1}",
        _ => "points " + string.Join(" ", p.Points(kind).Select(q => $"{q.X}:{q.Y}")),
    };

    /// <summary>
    /// Summary and per-group entries of the given per-sample (or per-volume) metrics, keys as the metrics library names
    /// them (<c>mean_dice</c>, <c>delta_dice</c>, <c>skewness_dice</c>, <c>es_dice</c>, …) with <paramref name="prefix"/>;
    /// bootstrap intervals stratified by group and clustered by patient when <c>metrics.bootstrap</c> &gt; 0.
    /// </summary>
    private static (Dictionary<string, MetricEntry> Summary, Dictionary<string, Dictionary<string, MetricEntry>> Groups, int Units) Summaries(
        List<MetricValue> dice, List<MetricValue>? diceRef, List<MetricValue> iou, List<MetricValue>? hd95, List<string> groups, List<string> patients,
        string prefix, CellSpec spec)
    {
        var summary = new Dictionary<string, MetricEntry>(StringComparer.Ordinal);
        var byGroup = new Dictionary<string, Dictionary<string, MetricEntry>>(StringComparer.Ordinal);
        var cfg = spec.Metrics;
        var options = cfg.Bootstrap > 0
            ? new BootstrapOptions(cfg.Bootstrap, spec.Seed, cfg.Ci == "bca" ? CiMethod.Bca : CiMethod.Percentile, cfg.CiLevel) : null;
        foreach (var (metric, values) in new[] { ("dice", dice), ("dice-ref", diceRef), ("iou", iou), ("hd95", hd95) })
        {
            if (values is null) continue;
            SegmentationReport report;
            IReadOnlyDictionary<string, ConfidenceInterval>? cis = null, groupCis = null;
            if (options is not null)
            {
                var b = SegmentationMetrics.SummarizeWithIntervals(values, groups, metric, options, patients);
                (report, cis, groupCis) = (b.Estimate, b.Summary, b.GroupMeans);
            }
            else report = SegmentationMetrics.Summarize(values, groups, metric);
            foreach (var (k, v) in report.Summary) summary[prefix + k] = ToEntry(v, cis?.GetValueOrDefault(k));
            foreach (var g in report.Groups)
            {
                if (!byGroup.TryGetValue(g.Group, out var d)) byGroup[g.Group] = d = new Dictionary<string, MetricEntry>(StringComparer.Ordinal);
                d[prefix + metric] = ToEntry(g.Mean, groupCis?.GetValueOrDefault(g.Group));
            }
        }
        return (summary, byGroup, patients.Distinct(StringComparer.Ordinal).Count());
    }

    private static void WriteSegRecords(string path, List<SegRecord> records, string prompt)
    {
        static string F(MetricValue v) => v.IsDefined ? v.Value.ToString("R", CultureInfo.InvariantCulture) : "";
        static string U(MetricValue v) => v.IsDefined ? "" : v.Reason!.Value.ToString();
        var sb = new StringBuilder("index,sample_id,row,patient_id,volume_id,slice,group,prompt_type,prompt,status,skip_reason,dice,dice_ref,iou,hd95,hd95_undefined," +
                                   "best_mask,predicted_iou,predicted_area,target_area,intersection,height,width\n");
        foreach (var r in records)
        {
            var s = r.Sample;
            sb.Append(CultureInfo.InvariantCulture,
                $"{s.Index},{Csv(s.Id)},{s.Row},{Csv(s.PatientId)},{Csv(s.VolumeId)},{s.SliceIndex?.ToString(CultureInfo.InvariantCulture) ?? ""},{Csv(r.Group)},{prompt},{Csv(r.Prompt)}," +
                $"{(r.Scored ? "scored" : "skipped")},{Csv(r.SkipReason ?? "")},{F(r.Dice)},{F(r.DiceRef)},{F(r.IoU)},{F(r.Hd95)},{(r.Scored ? U(r.Hd95) : "")}," +
                $"{r.BestMask?.ToString(CultureInfo.InvariantCulture) ?? ""},{r.PredictedIoU?.ToString("R", CultureInfo.InvariantCulture) ?? ""}," +
                $"{r.PredictedArea},{r.TargetArea},{r.Intersection},{r.Height},{r.Width}\n");
        }
        Workspace.WriteAllTextAtomic(path, sb.ToString());
    }
}
