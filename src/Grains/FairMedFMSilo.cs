using FairMedFM.Engine;
using FairMedFM.Engine.Cells;
using Microsoft.Extensions.DependencyInjection;

namespace FairMedFM.Grains;

/// <summary>Limits how many trainings run at once in a silo, so cells queue instead of oversubscribing the device.</summary>
public sealed class TrainingSlots(int slots, string device = "cpu")
{
    public int Count { get; } = Math.Max(1, slots);
    /// <summary>The device these slots stand for ("cpu", "cuda:0", …): recorded on spans and metrics.</summary>
    public string Device { get; } = device;
    private readonly SemaphoreSlim _gate = new(Math.Max(1, slots), Math.Max(1, slots));
    public Task WaitAsync(CancellationToken ct = default) => _gate.WaitAsync(ct);
    public void Release() => _gate.Release();
}

public static class FairMedFMSilo
{
    /// <summary>Grain state storage name shared by all FairMedFM grains.</summary>
    public const string StorageName = "fairmedfm";

    /// <summary>Registers the engine services the grains use. Storage is in-memory here; durable storage is configured by the host.</summary>
    public static ISiloBuilder AddFairMedFM(this ISiloBuilder silo, Workspace workspace, int trainingSlots = 1, bool memoryStorage = true, string device = "cpu")
    {
        if (memoryStorage) silo.AddMemoryGrainStorage(StorageName);
        // Trace context crosses grain calls, so a cell's spans join its sweep's trace.
        silo.AddActivityPropagation();
        silo.Services.AddSingleton(workspace);
        silo.Services.AddSingleton(new CellRunner(workspace));
        silo.Services.AddSingleton(new TrainingSlots(trainingSlots, device));
        return silo;
    }
}

/// <summary>Grain keys built in one place so the client and the grains agree on them.</summary>
public static class GrainKeys
{
    private const char Sep = '\u001f'; // cannot occur in a path or model id
    public static string ModelUsage(string cardPath, string model, string normalization) => string.Join(Sep, cardPath, model, normalization);
    public static (string Card, string Model, string Normalization) ParseModelUsage(string key)
    {
        var p = key.Split(Sep);
        if (p.Length != 3) throw new ArgumentException($"malformed model-usage grain key '{key}'");
        return (p[0], p[1], p[2]);
    }
}
