using System.Text.RegularExpressions;

namespace FairMedFM.Engine.Scheduling;

/// <summary>A device a silo offers: its name (<c>cpu</c>, <c>cuda:0</c>, <c>cuda:1</c>, …) and how many cells may train on it at once.</summary>
public sealed record DeviceSlots(string Device, int Slots)
{
    /// <summary>The device kind: the name before ':' (<c>cuda:1</c> → <c>cuda</c>).</summary>
    public string Kind => DeviceNames.KindOf(Device);
}

/// <summary>One training slot: silo, device on that silo, slot index. <see cref="Key"/> names the worker that owns it.</summary>
public readonly record struct SlotRef(string Silo, string Device, int Index)
{
    public string Key => $"{Silo}|{Device}|{Index}";

    public static SlotRef Parse(string key)
    {
        var p = key.Split('|');
        if (p.Length != 3 || !int.TryParse(p[2], out var i) || i < 0 || p[0].Length == 0 || p[1].Length == 0)
            throw new FormatException($"'{key}' is not a slot key (silo|device|index)");
        return new SlotRef(p[0], p[1], i);
    }

    public override string ToString() => Key;
}

public static partial class DeviceNames
{
    [GeneratedRegex("^(cpu|cuda:[0-9]+|mps)$")] private static partial Regex DeviceRx();
    [GeneratedRegex("^(cpu|cuda|cuda:[0-9]+|mps|any)$")] private static partial Regex RequirementRx();

    public static string KindOf(string device) => device.Split(':')[0];

    /// <summary>Does <paramref name="device"/> satisfy <paramref name="requirement"/>? A kind (<c>cuda</c>) matches every device
    /// of that kind, a full name (<c>cuda:1</c>) only that device, <c>any</c> every device.</summary>
    public static bool Satisfies(string device, string requirement) =>
        requirement == "any" || requirement == device || (!requirement.Contains(':') && KindOf(device) == requirement);

    public static void ValidateDevice(string device)
    {
        if (!DeviceRx().IsMatch(device)) throw new ArgumentException($"device '{device}' is not one of cpu, cuda:N, mps");
    }

    public static void ValidateRequirement(string requirement)
    {
        if (!RequirementRx().IsMatch(requirement)) throw new ArgumentException($"device requirement '{requirement}' is not one of cpu, cuda, cuda:N, mps, any");
    }

    /// <summary>Parses a silo's device declaration: <c>cpu</c>, <c>cpu=2,cuda:0=1,cuda:1=1</c> (name=slots; a bare name takes
    /// <paramref name="defaultSlots"/>). Errors name the offending entry.</summary>
    public static IReadOnlyList<DeviceSlots> ParseDeclaration(string declaration, int defaultSlots = 1)
    {
        if (defaultSlots < 1) throw new ArgumentException($"slots per device must be ≥ 1 (got {defaultSlots})");
        var list = new List<DeviceSlots>();
        foreach (var raw in declaration.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = raw.Split('=', 2, StringSplitOptions.TrimEntries);
            var name = kv[0].ToLowerInvariant();
            ValidateDevice(name);
            int slots = defaultSlots;
            if (kv.Length == 2 && (!int.TryParse(kv[1], out slots) || slots < 1))
                throw new ArgumentException($"device entry '{raw}': slots must be a whole number ≥ 1");
            if (list.Any(d => d.Device == name)) throw new ArgumentException($"device '{name}' is declared twice in '{declaration}'");
            list.Add(new DeviceSlots(name, slots));
        }
        if (list.Count == 0) throw new ArgumentException("no device declared (e.g. cpu, or cpu=2,cuda:0=1)");
        return list;
    }
}

/// <summary>Busy/free slots per device kind for one silo or the whole pool.</summary>
public sealed record DeviceUsage(string Silo, string Device, int Slots, int Busy);

/// <summary>
/// The cluster's training slots as a scheduler sees them: silos declare devices and slots per device; a cell needing a
/// device kind gets a free slot of that kind (the least-busy device first) or nothing, so it queues. A slot is held by
/// one holder at a time — the pool never hands out more slots of a device than it declared — and a silo without the
/// kind never gets such a cell. Removing a silo returns the holders of its busy slots (their cells were lost).
/// Pure and single-threaded, like <see cref="SweepLedger"/>: a grain owns one, a simulator owns one.
/// </summary>
public sealed class SlotScheduler
{
    private sealed class Device(string silo, string name, int slots)
    {
        public readonly string Silo = silo, Name = name;
        public int Slots = slots;
        /// <summary>Holder per slot index (null: free). Indexes ≥ Slots are draining after a shrink: freed, never reused.</summary>
        public readonly Dictionary<int, string> Held = new();
        public int Busy => Held.Count;
        public int Free => Math.Max(0, Slots - Held.Keys.Count(i => i < Slots));
    }

    private readonly SortedDictionary<string, List<Device>> _silos = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SlotRef> _byHolder = new(StringComparer.Ordinal);

    public IEnumerable<string> Silos => _silos.Keys;

    /// <summary>Adds a silo or changes its devices. A device that shrank keeps its busy slots until released (no new holder
    /// beyond the new count); a device that disappeared keeps its holders likewise, and frees nothing new.</summary>
    public void SetSilo(string silo, IEnumerable<DeviceSlots> devices)
    {
        if (string.IsNullOrEmpty(silo) || silo.Contains('|')) throw new ArgumentException($"silo name '{silo}' is empty or contains '|'");
        var declared = devices.ToList();
        foreach (var d in declared)
        {
            DeviceNames.ValidateDevice(d.Device);
            if (d.Slots < 0) throw new ArgumentException($"silo {silo}: device {d.Device} declares {d.Slots} slots");
        }
        if (!_silos.TryGetValue(silo, out var list)) _silos[silo] = list = new List<Device>();
        foreach (var d in declared)
        {
            var existing = list.FirstOrDefault(x => x.Name == d.Device);
            if (existing is null) list.Add(new Device(silo, d.Device, d.Slots));
            else existing.Slots = d.Slots;
        }
        foreach (var gone in list.Where(x => declared.All(d => d.Device != x.Name))) gone.Slots = 0;
        list.RemoveAll(x => x.Slots == 0 && x.Busy == 0);
        list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
    }

    /// <summary>The silo left the cluster: its slots are gone; returns the holders of the slots that were busy (lost work).</summary>
    public IReadOnlyList<(string Holder, SlotRef Slot)> RemoveSilo(string silo)
    {
        if (!_silos.Remove(silo, out var list)) return Array.Empty<(string, SlotRef)>();
        var lost = new List<(string, SlotRef)>();
        foreach (var d in list)
            foreach (var (i, holder) in d.Held.OrderBy(kv => kv.Key))
            {
                _byHolder.Remove(holder);
                lost.Add((holder, new SlotRef(silo, d.Name, i)));
            }
        return lost;
    }

    public bool HasSilo(string silo) => _silos.ContainsKey(silo);

    /// <summary>Does any silo offer a device satisfying <paramref name="requirement"/> (free or not)?</summary>
    public bool Offers(string requirement) => AllDevices().Any(d => d.Slots > 0 && DeviceNames.Satisfies(d.Name, requirement));

    /// <summary>Gives <paramref name="holder"/> a free slot satisfying <paramref name="requirement"/>: on the device with the most
    /// free slots (ties: silo, then device name), lowest free index. Null when none is free (the cell queues).</summary>
    public SlotRef? TryAcquire(string requirement, string holder)
    {
        if (_byHolder.ContainsKey(holder)) throw new InvalidOperationException($"'{holder}' already holds slot {_byHolder[holder]}");
        Device? best = null;
        foreach (var d in AllDevices())
        {
            if (d.Free == 0 || !DeviceNames.Satisfies(d.Name, requirement)) continue;
            if (best is null || d.Free > best.Free) best = d;
        }
        if (best is null) return null;
        int index = Enumerable.Range(0, best.Slots).First(i => !best.Held.ContainsKey(i));
        best.Held[index] = holder;
        var slot = new SlotRef(best.Silo, best.Name, index);
        _byHolder[holder] = slot;
        return slot;
    }

    /// <summary>Marks a specific slot as held (e.g. restoring assignments after a restart, or a slot found busy with another
    /// sweep's cell). False when the slot does not exist or is held by someone else.</summary>
    public bool TryHold(SlotRef slot, string holder)
    {
        var d = Find(slot);
        if (d is null || slot.Index >= d.Slots) return false;
        if (d.Held.TryGetValue(slot.Index, out var h)) return h == holder;
        if (_byHolder.ContainsKey(holder)) return false;
        d.Held[slot.Index] = holder;
        _byHolder[holder] = slot;
        return true;
    }

    /// <summary>Frees the holder's slot; false when it held none.</summary>
    public bool Release(string holder)
    {
        if (!_byHolder.Remove(holder, out var slot)) return false;
        var d = Find(slot);
        if (d is null) return true;
        d.Held.Remove(slot.Index);
        if (d.Slots == 0 && d.Busy == 0) _silos[slot.Silo].Remove(d);
        return true;
    }

    public SlotRef? SlotOf(string holder) => _byHolder.TryGetValue(holder, out var s) ? s : null;

    public string? HolderOf(SlotRef slot) => Find(slot) is { } d && d.Held.TryGetValue(slot.Index, out var h) ? h : null;

    /// <summary>Free slots that satisfy <paramref name="requirement"/> (null: all free slots).</summary>
    public int Free(string? requirement = null) => AllDevices().Where(d => requirement is null || DeviceNames.Satisfies(d.Name, requirement)).Sum(d => d.Free);

    public int Capacity(string? requirement = null) => AllDevices().Where(d => requirement is null || DeviceNames.Satisfies(d.Name, requirement)).Sum(d => d.Slots);

    public int Busy => _byHolder.Count;

    /// <summary>Every declared slot, busy or not (for starting one worker per slot, and for displays).</summary>
    public IEnumerable<SlotRef> AllSlots() => AllDevices().SelectMany(d => Enumerable.Range(0, d.Slots).Select(i => new SlotRef(d.Silo, d.Name, i)));

    public IReadOnlyList<DeviceUsage> Usage() => AllDevices().Select(d => new DeviceUsage(d.Silo, d.Name, d.Slots, d.Busy)).ToList();

    private IEnumerable<Device> AllDevices() => _silos.Values.SelectMany(l => l);

    private Device? Find(SlotRef slot) => _silos.TryGetValue(slot.Silo, out var l) ? l.FirstOrDefault(d => d.Name == slot.Device) : null;
}
