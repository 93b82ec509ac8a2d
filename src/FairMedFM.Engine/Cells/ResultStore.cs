using System.Text.Json;

namespace FairMedFM.Engine.Cells;

/// <summary>Finished cells on disk, one JSON file per cell id: what makes a cell idempotent and a sweep resumable.</summary>
public sealed class ResultStore(string directory)
{
    public string Directory { get; } = directory;

    public string PathFor(string cellId) => Path.Combine(Directory, cellId + ".json");
    public string PredictionsPathFor(string cellId) => Path.Combine(Directory, cellId + ".predictions.csv");

    public CellResult? TryGet(string cellId)
    {
        var p = PathFor(cellId);
        if (!File.Exists(p)) return null;
        try { return JsonSerializer.Deserialize<CellResult>(File.ReadAllText(p), JsonDefaults.Pretty); }
        catch (JsonException) { return null; } // a damaged entry is recomputed, never trusted
    }

    public void Put(CellResult result)
    {
        try { Workspace.WriteAllTextAtomic(PathFor(result.CellId), JsonSerializer.Serialize(result, JsonDefaults.Pretty)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot write the result of cell {result.CellId} to {Directory}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Records a failure without throwing: when the store itself is unwritable (full disk, read-only or file-in-the-way
    /// cache) the failure must still reach the caller instead of the cell hanging.
    /// </summary>
    public CellResult PutFailure(CellResult failed)
    {
        try { Put(failed); return failed; }
        catch (IOException e) { return failed with { Error = $"{failed.Error} (and {e.Message})" }; }
    }
}
