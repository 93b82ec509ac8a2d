using FairMedFM.Engine;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Scheduling;
using Microsoft.Extensions.DependencyInjection;

namespace FairMedFM.Grains;

/// <summary>
/// The silo's slot manager: per declared device (<c>cpu</c>, <c>cuda:0</c>, …) a gate that lets at most that device's slot count
/// of trainings run at once, so cells queue instead of oversubscribing a device. Experiment grains train on the first declared
/// device; device workers on their own.
/// </summary>
public sealed class TrainingSlots
{
    private readonly Dictionary<string, SemaphoreSlim> _gates;

    public TrainingSlots(IReadOnlyList<DeviceSlots> devices)
    {
        if (devices.Count == 0) throw new ArgumentException("a silo needs at least one device");
        Devices = devices;
        _gates = devices.ToDictionary(d => d.Device, d => new SemaphoreSlim(d.Slots, d.Slots), StringComparer.Ordinal);
    }

    /// <summary><paramref name="device"/> is a declaration: <c>cpu</c>, <c>cuda:0</c>, or <c>cpu=2,cuda:0=1</c> (bare names get <paramref name="slots"/>).</summary>
    public TrainingSlots(int slots, string device = "cpu") : this(DeviceNames.ParseDeclaration(device, Math.Max(1, slots))) { }

    public IReadOnlyList<DeviceSlots> Devices { get; }

    /// <summary>Slots of the default (first declared) device.</summary>
    public int Count => Devices[0].Slots;

    /// <summary>The default device ("cpu", "cuda:0", …): where experiment grains train; recorded on spans and metrics.</summary>
    public string Device => Devices[0].Device;

    public bool Has(string device) => _gates.ContainsKey(device);

    public Task WaitAsync(CancellationToken ct = default) => WaitAsync(Device, ct);
    public void Release() => Release(Device);

    public Task WaitAsync(string device, CancellationToken ct = default) => Gate(device).WaitAsync(ct);
    public void Release(string device) => Gate(device).Release();

    /// <summary>Trainings running now on <paramref name="device"/>.</summary>
    public int Busy(string device) => Devices.First(d => d.Device == device).Slots - Gate(device).CurrentCount;

    private SemaphoreSlim Gate(string device) =>
        _gates.TryGetValue(device, out var g) ? g : throw new ArgumentException($"device '{device}' is not declared on this silo (declared: {string.Join(", ", _gates.Keys)})");
}

public static class FairMedFMSilo
{
    /// <summary>Grain state storage name shared by all FairMedFM grains.</summary>
    public const string StorageName = "fairmedfm";

    /// <summary>Registers the engine services the grains use. Storage is in-memory here; durable storage is configured by the host.</summary>
    /// <param name="device">Device declaration: <c>cpu</c>, <c>cuda:0</c> or <c>cpu=2,cuda:0=1</c>; bare names get <paramref name="trainingSlots"/> slots.</param>
    /// <param name="memoryStorage">In-memory grain storage and reminders (embedded silo, tests); false when the host configured durable ones (Redis).</param>
    public static ISiloBuilder AddFairMedFM(this ISiloBuilder silo, Workspace workspace, int trainingSlots = 1, bool memoryStorage = true, string device = "cpu",
        SweepOptions? sweeps = null)
    {
        if (memoryStorage)
        {
            silo.AddMemoryGrainStorage(StorageName);
            silo.UseInMemoryReminderService();
        }
        // Trace context crosses grain calls, so a cell's spans join its sweep's trace.
        silo.AddActivityPropagation();
        silo.Services.AddSingleton(workspace);
        silo.Services.AddSingleton(new CellRunner(workspace));
        silo.Services.AddSingleton(new TrainingSlots(trainingSlots, device));
        silo.Services.AddSingleton(sweeps ?? new SweepOptions());
        // Device workers live on the silo that owns their slot; the silo announces its devices and wakes unfinished sweeps.
        silo.AddPlacementDirector<DeviceSlotPlacement, DeviceSlotPlacementDirector>();
        silo.Services.AddSingleton<SiloAnnouncer>();
        silo.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<SiloAnnouncer>());
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
