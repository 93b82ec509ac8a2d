namespace FairMedFM.Grains;

/// <summary>One dataset card (key: the card's absolute path): loads and validates it, and owns its data hash.</summary>
[Alias("fairmedfm.IDatasetGrain")]
public interface IDatasetGrain : IGrainWithStringKey
{
    /// <summary>Starts loading (and hashing) the dataset if needed; returns at once with the current status.</summary>
    [Alias("Prepare")] Task<DatasetStatus> Prepare();
}

/// <summary>
/// One (dataset, model, normalisation) pair (key: "card|model|normalisation"): owns the embedding cache entry of that
/// backbone on that dataset, so it runs once per image however many cells need it.
/// </summary>
[Alias("fairmedfm.IModelUsageGrain")]
public interface IModelUsageGrain : IGrainWithStringKey
{
    /// <summary>Starts computing the embeddings if they are not cached; returns at once with progress.</summary>
    [Alias("EnsureEmbeddings")] Task<EmbeddingStatus> EnsureEmbeddings();
}

/// <summary>One cell of a grid (key: its cell id). Idempotent: starting a finished or running cell changes nothing.</summary>
[Alias("fairmedfm.IExperimentGrain")]
public interface IExperimentGrain : IGrainWithStringKey
{
    [Alias("Start")] Task<CellStatus> Start(CellRequest request);
    [Alias("GetStatus")] Task<CellStatus> GetStatus();
}

/// <summary>Assembles the datasets × models fairness matrix of a sweep (key: the sweep/grid name) as cells finish.</summary>
[Alias("fairmedfm.IAggregatorGrain")]
public interface IAggregatorGrain : IGrainWithStringKey
{
    [Alias("Report")] Task Report(CellSummary cell);
    [Alias("GetCells")] Task<IReadOnlyList<CellSummary>> GetCells();
    [Alias("GetMatrix")] Task<MatrixView> GetMatrix(string usage, string method, string attribute, string metric);
    /// <summary>Every usage · method · attribute · metric slice matching the query (null filters match all), in a stable order.</summary>
    [Alias("Query")] Task<IReadOnlyList<MatrixView>> Query(MatrixQuery query);
    /// <summary>One cell (id or unique prefix) with a page of its stored per-sample predictions and their group labels; null when unknown.</summary>
    [Alias("GetCell")] Task<CellDrillDown?> GetCell(string cellId, int offset, int limit);
    /// <summary>A cell's full stored result (the JSON of its result file, as results.json holds it), read where the aggregator
    /// runs; null when the cell is unknown or its file is not readable there (then only its summary is known).</summary>
    [Alias("GetResultJson")] Task<string?> GetResultJson(string cellId);
}
