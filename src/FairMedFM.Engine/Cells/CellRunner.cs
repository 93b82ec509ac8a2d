using System.Globalization;
using System.Text;
using FairMedFM.Data;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Embeddings;
using FairMedFM.Engine.Training;
using FairMedFM.Engine.Usages;
using FairMedFM.Metrics;

namespace FairMedFM.Engine.Cells;

/// <summary>
/// Runs one cell: split → (cached) embeddings → train the head → choose the threshold on validation → evaluate on test
/// per group. The science of a cell lives here; grains only schedule and record it.
/// </summary>
public sealed partial class CellRunner(Workspace workspace)
{
    public Workspace Workspace { get; } = workspace;
    public EmbeddingStore Embeddings { get; } = new(workspace.EmbeddingsDir);
    public ResultStore Results { get; } = new(workspace.ResultsDir);

    /// <summary>Computes (or finds) the frozen-backbone embeddings of a dataset for a model and normalisation choice.</summary>
    public EmbeddingMatrix GetEmbeddings(string datasetCard, string modelId, string normalization,
        IProgress<(int done, int total)>? progress = null, CancellationToken ct = default)
    {
        var data = DatasetCatalog.Get(datasetCard);
        var card = ModelCatalog.Card(modelId, Workspace);
        var norm = ModelCatalog.Normalization(card, data.Card, normalization);
        var pre = ModelCatalog.Preprocessing(card);
        var weightsHash = ModelCatalog.WeightsHash(modelId, Workspace);
        return Embeddings.GetOrCompute(data, () => ModelCatalog.CreateEncoder(modelId, Workspace), modelId, weightsHash, pre, norm,
            progress: progress, ct: ct);
    }

    /// <summary>Runs a cell end to end in this process (no grains), reusing a stored result when the data is unchanged.</summary>
    public CellResult Run(CellSpec spec, CancellationToken ct = default)
    {
        var started = DateTimeOffset.UtcNow;
        try
        {
            if (IsSegmentationCell(spec)) return RunSegmentationCell(spec, ct);
            var data = DatasetCatalog.Get(spec.Dataset);
            if (TryReuse(spec, data.DataHash) is { } stored) return stored;
            ValidateSpec(spec, data);
            var emb = UsageRunner.NeedsEmbeddings(spec.Usage) ? GetEmbeddings(spec.Dataset, spec.Model, spec.Normalization, ct: ct) : null;
            return RunWithEmbeddings(spec, emb, ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Results.PutFailure(CellResult.Failed(spec, Describe(e), started) with { Retryable = IsRetryable(e) });
        }
    }

    /// <summary>A stored result is reused only if it finished on the same data and the same weights.</summary>
    public CellResult? TryReuse(CellSpec spec, string dataHash)
    {
        var stored = Results.TryGet(spec.CellId);
        if (stored is not { Status: "done" } || stored.DataHash != dataHash) return null;
        return stored.WeightsHash == WeightsHashFor(spec) ? stored : null;
    }

    public static void ValidateSpec(CellSpec spec, LoadedDataset data)
    {
        // A segmentation usage on a classification card: say so, naming both (classification usages on segmentation
        // cards are caught by IsSegmentationCell/ValidateSegmentation, since their card cannot load as classification).
        Segmentation.DatasetTask.CheckPairing(spec.Usage, data.Card.SourceFile ?? spec.Dataset, Segmentation.DatasetTask.Classification);
        if (!GridSpec.KnownUsages.Contains(spec.Usage))
            throw new ConfigException($"usage '{spec.Usage}' is not available (available: {string.Join(", ", GridSpec.KnownUsages)})");
        if (!GridSpec.KnownMethods.Contains(spec.Method))
            throw new ConfigException($"method '{spec.Method}' is not implemented yet (available: {string.Join(", ", GridSpec.KnownMethods)})");
        if (!data.AttributeNames.Contains(spec.Attribute))
            throw new ConfigException($"attribute '{spec.Attribute}' is not defined by dataset card {data.Card.SourceFile} (defined: {string.Join(", ", data.AttributeNames)})");
        spec.Training.Validate(); spec.Metrics.Validate(); spec.Split.Validate();
        UsageRunner.Validate(spec, data);
    }

    /// <summary>The part of a cell after the embeddings exist: cheap (seconds), deterministic for a seed.
    /// <paramref name="emb"/> is null for usages that need no embeddings (<see cref="UsageRunner.NeedsEmbeddings"/>).</summary>
    public CellResult RunWithEmbeddings(CellSpec spec, EmbeddingMatrix? emb, CancellationToken ct = default)
    {
        var started = DateTimeOffset.UtcNow;
        try
        {
            var data = DatasetCatalog.Get(spec.Dataset);
            ValidateSpec(spec, data);
            if (emb is not null && emb.Count != data.Samples.Count)
                throw new InvalidOperationException($"embedding entry {emb.Key} has {emb.Count} rows but the dataset has {data.Samples.Count} samples");

            var split = PatientSplitter.Split(data, spec.Seed,
                new SplitFractions(spec.Split.Train, spec.Split.Validation, spec.Split.Test), stratifyAttribute: spec.Attribute);
            var labels = data.Samples.Select(s => s.Label).ToArray();
            SplitData Rows(int[] idx) => emb is null ? SplitData.LabelsOnly(idx, labels) : SplitData.From(emb, idx, labels);
            var train = Rows(split.Train);
            var val = Rows(split.Validation);
            var test = Rows(split.Test);

            var probe = UsageRunner.Train(Workspace, spec, data, emb, train, val, test, ct);

            using var evaluation = Telemetry.Source.StartActivity("evaluation");
            var testGroups = split.Test.Select(i => data.Samples[i].Groups[spec.Attribute]).ToArray();
            var testPatients = split.Test.Select(i => data.Samples[i].PatientId).ToArray();
            var rule = spec.Metrics.Rule;
            MetricsOptions options;
            double? frozen;
            string chosenOn;
            if (spec.Metrics.Mode == "reference")
            {
                options = new MetricsOptions(MetricsMode.Reference, ThresholdRule.BestF1, spec.Metrics.EceBins);
                frozen = null;
                chosenOn = "test";
            }
            else
            {
                if (val.Labels.Distinct().Count() < 2 && rule != ThresholdRule.Fixed)
                    throw new InvalidOperationException("the validation split has a single class, so no threshold can be chosen on it; use more data or metrics.threshold: fixed");
                options = new MetricsOptions(MetricsMode.Default, rule, spec.Metrics.EceBins, spec.Metrics.Specificity);
                frozen = ClassificationMetrics.ChooseThreshold(probe.ValProbs, val.Labels, options);
                chosenOn = "validation";
            }
            var (report, intervals) = EvaluateWithIntervals(probe.TestProbs, test.Labels, testGroups, testPatients, options, frozen, spec.Metrics, spec.Seed);

            evaluation?.SetTag("fairmedfm.threshold", report.Threshold);
            evaluation?.SetTag("fairmedfm.threshold_chosen_on", chosenOn);
            evaluation?.Stop();

            var predictionsFile = Results.PredictionsPathFor(spec.CellId);
            WritePredictions(predictionsFile, data, split, probe, spec.Attribute);

            var result = new CellResult
            {
                CellId = spec.CellId, Spec = spec, Status = "done", DatasetName = data.Card.Name,
                DataHash = data.DataHash, SplitHash = split.SplitHash, WeightsHash = ModelCatalog.WeightsHash(spec.Model, Workspace),
                ConfigHash = Hashing.Of(spec), EmbeddingKey = emb?.Key, EmbeddingCacheHit = emb?.CacheHit ?? false,
                Sizes = new SplitSizes(split.Train.Length, split.Validation.Length, split.Test.Length),
                Threshold = report.Threshold, ThresholdChosenOn = chosenOn,
                SelectedEpoch = probe.History.Count > 0 ? probe.SelectedEpoch : null, History = probe.History,
                Summary = report.Summary.ToDictionary(kv => kv.Key, kv => ToEntry(kv.Value, intervals?.Summary.GetValueOrDefault(kv.Key))),
                Overall = ToGroup(report.Overall, intervals?.Overall),
                Groups = report.Groups.Select(g => ToGroup(g, intervals?.Groups.GetValueOrDefault(g.Group))).ToList(),
                Intervals = intervals is null ? null : new IntervalInfo(intervals.Options.Resamples, spec.Metrics.Ci, intervals.Options.Level,
                    intervals.Options.Seed, intervals.Clustered, intervals.Units),
                PredictionsFile = predictionsFile,
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

    /// <summary>
    /// The test-set report and, when <c>metrics.bootstrap</c> &gt; 0, bootstrap intervals of every summary and per-group
    /// value: resampling stratified by group × label and clustered by patient, seeded by the cell's seed; a frozen
    /// (validation) threshold stays frozen, a threshold chosen on the test set (reference mode) is chosen again per resample.
    /// </summary>
    public static (ClassificationReport Report, ClassificationBootstrapReport? Intervals) EvaluateWithIntervals(float[] probs, int[] labels,
        string[] groups, string[] patients, MetricsOptions options, double? threshold, MetricsConfig config, int seed)
    {
        if (config.Bootstrap <= 0) return (ClassificationMetrics.Evaluate(probs, labels, groups, options, threshold), null);
        var b = Bootstrap.Classification(probs, labels, groups, options,
            new BootstrapOptions(config.Bootstrap, seed, config.Ci == "bca" ? CiMethod.Bca : CiMethod.Percentile, config.CiLevel),
            threshold, patients);
        return (b.Estimate, b);
    }

    public static MetricEntry ToEntry(MetricValue v) => ToEntry(v, null);

    public static MetricEntry ToEntry(MetricValue v, ConfidenceInterval? ci)
    {
        if (!v.IsDefined) return new MetricEntry(null, v.Reason.ToString(), v.Detail);
        return ci is { IsDefined: true }
            ? new MetricEntry(v.Value, Detail: v.Detail ?? (ci.Detail is null ? null : "interval: " + ci.Detail), Lower: ci.Lower, Upper: ci.Upper)
            // An interval the bootstrap could not give (e.g. one patient in a group: TooFewUnits) is said, not left blank.
            : new MetricEntry(v.Value, Detail: ci is null ? v.Detail
                : $"{MetricEntry.NoIntervalPrefix}{ci.Reason}): {ci.Detail}" + (v.Detail is null ? "" : "; " + v.Detail));
    }

    private static GroupResult ToGroup(GroupReport g, IReadOnlyDictionary<string, ConfidenceInterval>? cis) =>
        new(g.Group, g.Counts.N, g.Counts.Positives, g.Counts.Negatives,
            g.Values.ToDictionary(kv => kv.Key, kv => ToEntry(kv.Value, cis?.GetValueOrDefault(kv.Key))));

    /// <summary>Per-sample predictions with their group labels: what a user needs to recompute any metric or drill into a cell.</summary>
    private static void WritePredictions(string path, LoadedDataset data, DataSplit split, TrainedProbe probe, string attribute)
    {
        var sb = new StringBuilder("index,split,image,patient_id,label,prob,group\n");
        void Rows(string name, int[] idx, float[] probs)
        {
            for (int i = 0; i < idx.Length; i++)
            {
                var s = data.Samples[idx[i]];
                sb.Append(CultureInfo.InvariantCulture, $"{s.Index},{name},{Csv(s.RelativePath)},{Csv(s.PatientId)},{s.Label},{probs[i].ToString("R", CultureInfo.InvariantCulture)},{Csv(s.Groups[attribute])}\n");
            }
        }
        Rows("validation", split.Validation, probe.ValProbs);
        Rows("test", split.Test, probe.TestProbs);
        Workspace.WriteAllTextAtomic(path, sb.ToString());
    }

    private static string Csv(string s) => s.IndexOfAny(new[] { ',', '"', '\n' }) >= 0 ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    /// <summary>One line a researcher can act on: the exception's own message names the file, row, column or key.</summary>
    /// <summary>
    /// Could another attempt succeed? Bad input (configuration, data, weights, arguments, a missing file) fails the same way
    /// every time and is not retried; I/O trouble, out-of-memory and native (libtorch) errors may be transient.
    /// </summary>
    public static bool IsRetryable(Exception e)
    {
        var inner = e is AggregateException ae ? ae.Flatten().InnerExceptions.First() : e;
        return inner switch
        {
            ConfigException or DataException or FairMedFM.Models.WeightLoadException or ArgumentException or InvalidDataException
                or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or NotSupportedException => false,
            IOException or OutOfMemoryException or TimeoutException or System.Runtime.InteropServices.ExternalException => true,
            InvalidOperationException => false,
            _ => true,
        };
    }

    public static string Describe(Exception e)
    {
        var inner = e is AggregateException ae ? ae.Flatten().InnerExceptions.First() : e;
        // A libtorch error carries its native C++ stack ("Exception raised from …", "frame #N: …"): never part of a reason.
        var message = FairMedFM.Models.TorchErrors.Clean(inner.Message);
        return inner is ConfigException or DataException or FairMedFM.Models.WeightLoadException or ArgumentException or InvalidOperationException
                   or IOException or InvalidDataException or UnauthorizedAccessException
            ? message
            : $"{inner.GetType().Name}: {message}";
    }
}
