namespace FairMedFM.Grains;

/// <summary>Life of a long piece of work that is started by one call and then observed by polling (grain calls time out at 30 s).</summary>
[GenerateSerializer, Alias("fairmedfm.JobPhase")]
public enum JobPhase { Pending = 0, Running = 1, Done = 2, Failed = 3 }

[GenerateSerializer, Immutable, Alias("fairmedfm.DatasetStatus")]
public sealed record DatasetStatus(
    [property: Id(0)] string CardPath,
    [property: Id(1)] JobPhase Phase,
    [property: Id(2)] string? Name,
    [property: Id(3)] int Samples,
    [property: Id(4)] int Patients,
    [property: Id(5)] string? DataHash,
    [property: Id(6)] IReadOnlyList<string> Attributes,
    [property: Id(7)] string? Error);

[GenerateSerializer, Immutable, Alias("fairmedfm.EmbeddingStatus")]
public sealed record EmbeddingStatus(
    [property: Id(0)] JobPhase Phase,
    [property: Id(1)] int Done,
    [property: Id(2)] int Total,
    [property: Id(3)] string? EmbeddingKey,
    [property: Id(4)] bool CacheHit,
    [property: Id(5)] string? Error);

/// <summary>
/// A cell to run. <see cref="SpecJson"/> is the cell's canonical configuration (the engine's CellSpec as JSON) — the same
/// content that is hashed into <see cref="CellId"/>, which the grain re-checks so a key can never point at another cell.
/// </summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.CellRequest")]
public sealed record CellRequest(
    [property: Id(0)] string CellId,
    [property: Id(1)] string SpecJson,
    [property: Id(2)] string AggregatorKey);

[GenerateSerializer, Immutable, Alias("fairmedfm.CellStatus")]
public sealed record CellStatus(
    [property: Id(0)] string CellId,
    [property: Id(1)] JobPhase Phase,
    [property: Id(2)] string Stage,
    [property: Id(3)] int Done,
    [property: Id(4)] int Total,
    [property: Id(5)] string? Error,
    [property: Id(6)] string? ResultFile)
{
    public bool IsFinished => Phase is JobPhase.Done or JobPhase.Failed;
}

/// <summary>A metric value: a number, or null with the reason it is undefined; with its bootstrap interval when computed.</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.MetricDto")]
public sealed record MetricDto([property: Id(0)] double? Value, [property: Id(1)] string? Undefined,
    [property: Id(2)] double? Lower = null, [property: Id(3)] double? Upper = null,
    // Defined without an interval because a group has one patient: the matrix says so instead of a bare value.
    [property: Id(4)] bool NoIntervalOnePatient = false);

[GenerateSerializer, Immutable, Alias("fairmedfm.GroupSizeDto")]
public sealed record GroupSizeDto([property: Id(0)] string Group, [property: Id(1)] int N, [property: Id(2)] int Positives, [property: Id(3)] int Negatives);

/// <summary>What the aggregator keeps of a finished cell; the full result (per-sample predictions too) stays in <see cref="ResultFile"/>.</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.CellSummary")]
public sealed record CellSummary(
    [property: Id(0)] string CellId,
    [property: Id(1)] string Dataset,
    [property: Id(2)] string Model,
    [property: Id(3)] string Usage,
    [property: Id(4)] string Method,
    [property: Id(5)] string Attribute,
    [property: Id(6)] int Seed,
    [property: Id(7)] JobPhase Phase,
    [property: Id(8)] string? Error,
    [property: Id(9)] IReadOnlyDictionary<string, MetricDto> Metrics,
    [property: Id(10)] IReadOnlyList<GroupSizeDto> Groups,
    [property: Id(11)] string? ResultFile,
    // The card's path: two datasets that share a card name are told apart (the matrix refuses to average them together).
    [property: Id(12)] string? Card = null);

[GenerateSerializer, Immutable, Alias("fairmedfm.MatrixCellDto")]
public sealed record MatrixCellDto(
    [property: Id(0)] string Dataset,
    [property: Id(1)] string Model,
    [property: Id(2)] double? Mean,
    [property: Id(3)] double? Std,
    [property: Id(4)] int Seeds,
    [property: Id(5)] int UndefinedSeeds,
    [property: Id(6)] IReadOnlyList<string> UndefinedReasons,
    [property: Id(7)] IReadOnlyList<GroupSizeDto> GroupSizes,
    [property: Id(8)] string Text);

[GenerateSerializer, Immutable, Alias("fairmedfm.MatrixView")]
public sealed record MatrixView(
    [property: Id(0)] string Usage,
    [property: Id(1)] string Method,
    [property: Id(2)] string Attribute,
    [property: Id(3)] string Metric,
    [property: Id(4)] IReadOnlyList<string> Datasets,
    [property: Id(5)] IReadOnlyList<string> Models,
    [property: Id(6)] IReadOnlyList<MatrixCellDto> Cells);
