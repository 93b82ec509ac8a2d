using FairMedFM.Engine.Scheduling;
using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace FairMedFM.Grains;

/// <summary>Places a grain keyed <c>silo|device|index</c> (a <see cref="SlotRef"/>) on the silo named in its key.</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.DeviceSlotPlacement")]
public sealed class DeviceSlotPlacement : PlacementStrategy
{
    public static readonly DeviceSlotPlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class DeviceSlotPlacementAttribute() : PlacementAttribute(DeviceSlotPlacement.Instance);

/// <summary>
/// The silo that declared a slot is the only place its worker may run: the director parses the silo from the grain key and
/// places the activation there if that silo is a compatible, live member; otherwise placement fails (the sweep then treats
/// the slot as gone), so work is never silently run on a silo without the device.
/// </summary>
public sealed class DeviceSlotPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString() ?? "";
        SlotRef slot;
        try { slot = SlotRef.Parse(key); }
        catch (FormatException e) { throw new OrleansException($"device-slot placement: {e.Message}"); }
        var silos = context.GetCompatibleSilos(target);
        var owner = silos.FirstOrDefault(s => s.ToParsableString() == slot.Silo)
                    ?? throw new OrleansException($"device-slot placement: silo {slot.Silo} of slot {key} is not an active member of the cluster");
        return Task.FromResult(owner);
    }
}
