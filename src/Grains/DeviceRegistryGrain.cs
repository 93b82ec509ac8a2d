using FairMedFM.Engine.Scheduling;
using Microsoft.Extensions.Logging;

namespace FairMedFM.Grains;

[GenerateSerializer, Alias("fairmedfm.DeviceRegistryState")]
public sealed class DeviceRegistryState
{
    [Id(0)] public Dictionary<string, SiloDevices> Silos { get; set; } = new();
}

/// <summary>Devices and slots per silo (key "cluster"). Persisted so a re-activated registry knows the silos at once; silos
/// re-announce periodically, and readers keep only active members, so entries of dead silos are ignored and then pruned.</summary>
public sealed class DeviceRegistryGrain(
    [PersistentState("devices", FairMedFMSilo.StorageName)] IPersistentState<DeviceRegistryState> state,
    IClusterMembershipService membership) : Grain, IDeviceRegistryGrain
{
    public async Task Register(SiloDevices silo)
    {
        foreach (var d in silo.Devices) DeviceNames.ValidateDevice(d.Device);
        var changed = !state.State.Silos.TryGetValue(silo.Silo, out var old) || !old.Devices.SequenceEqual(silo.Devices) || old.CudaAvailable != silo.CudaAvailable;
        state.State.Silos[silo.Silo] = silo;
        // Silos that are no longer members (dead, or shut down) are dropped.
        var live = ActiveSilos();
        foreach (var gone in state.State.Silos.Keys.Where(k => !live.Contains(k) && k != silo.Silo).ToList()) { state.State.Silos.Remove(gone); changed = true; }
        if (changed) await state.WriteStateAsync();
    }

    public Task<IReadOnlyList<SiloDevices>> GetSilos()
    {
        var live = ActiveSilos();
        return Task.FromResult<IReadOnlyList<SiloDevices>>(state.State.Silos.Values.Where(s => live.Contains(s.Silo)).OrderBy(s => s.Silo, StringComparer.Ordinal).ToList());
    }

    private HashSet<string> ActiveSilos() =>
        membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress.ToParsableString()).ToHashSet();
}

[GenerateSerializer, Alias("fairmedfm.SweepIndexState")]
public sealed class SweepIndexState
{
    [Id(0)] public Dictionary<string, SweepIndexEntry> Sweeps { get; set; } = new();
}

public sealed class SweepIndexGrain([PersistentState("sweeps", FairMedFMSilo.StorageName)] IPersistentState<SweepIndexState> state) : Grain, ISweepIndexGrain
{
    public async Task Update(SweepIndexEntry entry)
    {
        if (state.State.Sweeps.TryGetValue(entry.SweepId, out var old) && old with { UpdatedUtc = entry.UpdatedUtc } == entry) return;
        state.State.Sweeps[entry.SweepId] = entry;
        await state.WriteStateAsync();
    }

    public Task<IReadOnlyList<SweepIndexEntry>> List() =>
        Task.FromResult<IReadOnlyList<SweepIndexEntry>>(state.State.Sweeps.Values.OrderBy(s => s.SweepId, StringComparer.Ordinal).ToList());
}

/// <summary>
/// Runs on every silo once it is active: logs its devices (and says so when CUDA is absent), announces them to the device
/// registry now and periodically, and wakes every unfinished sweep of the index — so sweeps resume as soon as any silo of a
/// restarted cluster is up (the sweeps' reminders do the same within a minute).
/// </summary>
public sealed class SiloAnnouncer(IGrainFactory grains, TrainingSlots slots, ILocalSiloDetails silo, SweepOptions options, ILogger<SiloAnnouncer> log)
    : ILifecycleParticipant<ISiloLifecycle>
{
    private CancellationTokenSource? _stop;
    private Task? _loop;

    public static bool CudaAvailable()
    {
        try { return TorchSharp.torch.cuda.is_available(); }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe<SiloAnnouncer>(ServiceLifecycleStage.Active, Start, Stop);

    private Task Start(CancellationToken ct)
    {
        var cuda = CudaAvailable();
        var declared = string.Join(", ", slots.Devices.Select(d => $"{d.Device}×{d.Slots}"));
        if (!cuda)
        {
            if (slots.Devices.Any(d => d.Kind == "cuda"))
                log.LogWarning("CUDA is not available in this silo (CPU libtorch build or no driver), yet it declares {Devices}: cuda slots are scheduled but compute runs on the CPU", declared);
            else
                log.LogInformation("CUDA is not available in this silo; devices: {Devices}", declared);
        }
        else log.LogInformation("CUDA is available ({Count} device(s)); declared devices: {Devices}", TorchSharp.torch.cuda.device_count(), declared);
        _stop = new CancellationTokenSource();
        _loop = Task.Run(() => Loop(_stop.Token, cuda));
        return Task.CompletedTask;
    }

    private async Task Stop(CancellationToken ct)
    {
        _stop?.Cancel();
        if (_loop is not null) { try { await _loop.WaitAsync(ct); } catch (OperationCanceledException) { } }
    }

    private async Task Loop(CancellationToken ct, bool cuda)
    {
        var me = new SiloDevices(silo.SiloAddress.ToParsableString(), silo.DnsHostName, slots.Devices.Select(d => new DeviceSlotsDto(d.Device, d.Slots)).ToList(), cuda, DateTimeOffset.UtcNow);
        bool woke = false;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await grains.GetGrain<IDeviceRegistryGrain>("cluster").Register(me with { RegisteredUtc = DateTimeOffset.UtcNow });
                if (!woke)
                {
                    foreach (var s in (await grains.GetGrain<ISweepIndexGrain>("all").List()).Where(s => !s.Settled))
                        await grains.GetGrain<ISweepGrain>(s.SweepId).Wake();
                    woke = true;
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.LogWarning("announcing this silo's devices failed (retrying in {Period}): {Error}", options.Announce, e.Message);
            }
            try { await Task.Delay(options.Announce, ct); } catch (OperationCanceledException) { break; }
        }
    }
}
