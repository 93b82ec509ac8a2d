using FairMedFM.Engine.Config;

namespace FairMedFM.Engine.Cells;

/// <summary>A metric as written to results: a number, or null with the reason it is undefined (never 0, never a bare NaN);
/// <see cref="Lower"/>/<see cref="Upper"/> are its bootstrap confidence bounds when the cell computed them (absent in results
/// written before intervals existed, which still read).</summary>
public sealed record MetricEntry(double? Value, string? Undefined = null, string? Detail = null, double? Lower = null, double? Upper = null)
{
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
    public DateTimeOffset StartedUtc { get; init; }
    public DateTimeOffset FinishedUtc { get; init; }
    public string EngineVersion { get; init; } = typeof(CellResult).Assembly.GetName().Version?.ToString() ?? "0";

    public static CellResult Failed(CellSpec spec, string error, DateTimeOffset started) => new()
    {
        CellId = spec.CellId, Spec = spec, Status = "failed", Error = error, ConfigHash = Hashing.Of(spec),
        StartedUtc = started, FinishedUtc = DateTimeOffset.UtcNow,
    };
}
