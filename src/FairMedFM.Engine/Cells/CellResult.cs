using FairMedFM.Engine.Config;

namespace FairMedFM.Engine.Cells;

/// <summary>A metric as written to results: a number, or null with the reason it is undefined (never 0, never a bare NaN);
/// <see cref="Lower"/>/<see cref="Upper"/> are its bootstrap confidence bounds when the cell computed them (absent in results
/// written before intervals existed, which still read).</summary>
public sealed record MetricEntry(double? Value, string? Undefined = null, string? Detail = null, double? Lower = null, double? Upper = null)
{
    /// <summary>How <see cref="Detail"/> begins when the bootstrap could not give an interval for a defined value.</summary>
    public const string NoIntervalPrefix = "no interval (";

    /// <summary>How <see cref="Detail"/> begins when a group has a single patient, so the bootstrap could not vary it.</summary>
    public const string NoIntervalOnePatientDetail = NoIntervalPrefix + nameof(FairMedFM.Metrics.UndefinedReason.TooFewUnits) + ")";

    /// <summary>Defined, but without an interval because a group has a single patient (the bootstrap cannot vary it).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool NoIntervalOnePatient => Detail?.StartsWith(NoIntervalOnePatientDetail, StringComparison.Ordinal) == true;

    public override string ToString()
    {
        var ci = System.Globalization.CultureInfo.InvariantCulture;
        if (Value is not { } v) return $"undefined ({Undefined})";
        var s = v.ToString("0.0000", ci);
        return Lower is { } lo && Upper is { } hi ? $"{s} [{lo.ToString("0.0000", ci)}, {hi.ToString("0.0000", ci)}]" : s;
    }
}

/// <summary>How a cell's confidence intervals were computed.</summary>
public sealed record IntervalInfo(int Resamples, string Method, double Level, long Seed, bool ClusteredByPatient, int Units);

public sealed record GroupResult(string Group, int N, int Positives, int Negatives, IReadOnlyDictionary<string, MetricEntry> Values);

public sealed record SplitSizes(int Train, int Validation, int Test);

/// <summary>Everything one cell produced, with the hashes that identify its data, split, weights and configuration.</summary>
public sealed record CellResult
{
    public required string CellId { get; init; }
    public required CellSpec Spec { get; init; }
    /// <summary>"done" or "failed".</summary>
    public required string Status { get; init; }
    public string? Error { get; init; }
    public string? DatasetName { get; init; }
    public string? DataHash { get; init; }
    public string? SplitHash { get; init; }
    public string? WeightsHash { get; init; }
    public string ConfigHash { get; init; } = "";
    public string? EmbeddingKey { get; init; }
    public bool EmbeddingCacheHit { get; init; }
    public SplitSizes? Sizes { get; init; }
    public double? Threshold { get; init; }
    /// <summary>Where the decision threshold came from: "validation" (frozen for test) or "test" (reference mode).</summary>
    public string? ThresholdChosenOn { get; init; }
    public int? SelectedEpoch { get; init; }
    public IReadOnlyList<Training.EpochLog>? History { get; init; }
    public IReadOnlyDictionary<string, MetricEntry>? Summary { get; init; }
    public GroupResult? Overall { get; init; }
    public IReadOnlyList<GroupResult>? Groups { get; init; }
    public string? PredictionsFile { get; init; }
    /// <summary>Bootstrap settings behind <see cref="MetricEntry.Lower"/>/<see cref="MetricEntry.Upper"/>; null when none were computed.</summary>
    public IntervalInfo? Intervals { get; init; }
    /// <summary>For a failed cell: could another attempt succeed (I/O, out of memory, native errors)? False for bad input,
    /// which fails the same way every time. Sweeps retry only retryable failures.</summary>
    public bool Retryable { get; init; }
    /// <summary>What a segmentation cell evaluated, skipped and aggregated (null for classification cells, and then not written).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public SegmentationInfo? Segmentation { get; init; }
    public DateTimeOffset StartedUtc { get; init; }
    public DateTimeOffset FinishedUtc { get; init; }
    public string EngineVersion { get; init; } = typeof(CellResult).Assembly.GetName().Version?.ToString() ?? "0";

    public static CellResult Failed(CellSpec spec, string error, DateTimeOffset started) => new()
    {
        CellId = spec.CellId, Spec = spec, Status = "failed", Error = error, ConfigHash = Hashing.Of(spec),
        DatasetName = DatasetNames.Of(spec.Dataset), // the same name the matrix uses for the dataset's finished cells
        StartedUtc = started, FinishedUtc = DateTimeOffset.UtcNow,
    };
}

/// <summary>A segmentation sample that was not scored, with the reason (an empty target mask: no prompt can be made).</summary>
public sealed record SkippedSegSample(int Index, string SampleId, int Row, string Group, string Reason);

/// <summary>Per group of a segmentation cell: samples, samples scored, samples skipped, volumes.</summary>
public sealed record SegGroupCount(string Group, int Samples, int Evaluated, int Skipped, int Volumes);

/// <summary>
/// The segmentation side of a cell result. <see cref="GroupResult.Positives"/>/<see cref="GroupResult.Negatives"/> of a
/// segmentation cell count the samples that contain the target (scored) and those that do not (skipped).
/// </summary>
public sealed record SegmentationInfo
{
    /// <summary>FairMedFM's prompt name: center, rand, rands or bbox.</summary>
    public required string Prompt { get; init; }
    /// <summary>"sam" (prompt encoder + mask decoder on cached image embeddings) or "otsu-threshold" (baseline).</summary>
    public required string Segmenter { get; init; }
    /// <summary>Model input side the images were resized to (null: native size, the baseline).</summary>
    public int? InputSize { get; init; }
    public string? NormalizationId { get; init; }
    /// <summary>How the best of the multimask outputs was chosen ("argmax predicted IoU", FairMedFM).</summary>
    public string? MaskSelection { get; init; }
    /// <summary>Where masks were compared: "label size" (predicted logits resized bilinearly to the label map's size).</summary>
    public string EvaluatedAt { get; init; } = "label size";
    public required int Samples { get; init; }
    public required int Evaluated { get; init; }
    public required int Skipped { get; init; }
    public IReadOnlyList<SkippedSegSample> SkippedSamples { get; init; } = Array.Empty<SkippedSegSample>();
    /// <summary>Volumes of the card that gave no sample (no slice with the target), from the data layer.</summary>
    public IReadOnlyList<FairMedFM.Data.Segmentation.SkippedVolume> SkippedVolumes { get; init; } = Array.Empty<FairMedFM.Data.Segmentation.SkippedVolume>();
    public int Volumes { get; init; }
    /// <summary>True when the data are slices of volumes: the <c>vol_*</c> metrics aggregate each volume's slices (Dice of the stacked masks).</summary>
    public bool VolumeAggregation { get; init; }
    public IReadOnlyList<SegGroupCount> GroupCounts { get; init; } = Array.Empty<SegGroupCount>();
    /// <summary>Images the encoder ran on for this cell (0 when every embedding came from the cache).</summary>
    public long EncoderForwards { get; init; }
    /// <summary>Per-sample records: sample, patient, volume, slice, group, prompt, dice, iou, hd95, best mask, areas.</summary>
    public string? RecordsFile { get; init; }
}
