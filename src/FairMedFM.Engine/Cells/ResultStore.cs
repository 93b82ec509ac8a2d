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

    public void Put(CellResult result) =>
        Workspace.WriteAllTextAtomic(PathFor(result.CellId), JsonSerializer.Serialize(result, JsonDefaults.Pretty));
}
