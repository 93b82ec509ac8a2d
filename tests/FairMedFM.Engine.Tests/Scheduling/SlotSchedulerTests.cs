using FairMedFM.Engine.Scheduling;

namespace FairMedFM.Engine.Tests.Scheduling;

public sealed class SlotSchedulerTests
{
    [Fact]
    public void Device_declarations_parse_with_slots_and_reject_nonsense()
    {
        Assert.Equal(new[] { new DeviceSlots("cpu", 1) }, DeviceNames.ParseDeclaration("cpu"));
        Assert.Equal(new[] { new DeviceSlots("cpu", 2), new DeviceSlots("cuda:0", 1), new DeviceSlots("cuda:1", 3) },
            DeviceNames.ParseDeclaration(" cpu=2, CUDA:0 ,cuda:1=3"));
        Assert.Equal(new[] { new DeviceSlots("cuda:0", 4) }, DeviceNames.ParseDeclaration("cuda:0", defaultSlots: 4));
        Assert.Contains("gpu0", Assert.Throws<ArgumentException>(() => DeviceNames.ParseDeclaration("gpu0")).Message);
        Assert.Contains("cuda:0=x", Assert.Throws<ArgumentException>(() => DeviceNames.ParseDeclaration("cuda:0=x")).Message);
        Assert.Contains("cuda:0=0", Assert.Throws<ArgumentException>(() => DeviceNames.ParseDeclaration("cuda:0=0")).Message);
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => DeviceNames.ParseDeclaration("cpu,cpu=2")).Message);
        Assert.Throws<ArgumentException>(() => DeviceNames.ParseDeclaration(" , "));
        Assert.Equal("cuda", new DeviceSlots("cuda:3", 1).Kind);
    }

    [Theory]
    [InlineData("cuda:0", "cuda", true)]
    [InlineData("cuda:1", "cuda:1", true)]
    [InlineData("cuda:0", "cuda:1", false)]
    [InlineData("cpu", "cuda", false)]
    [InlineData("cuda:0", "cpu", false)]
    [InlineData("cpu", "any", true)]
    [InlineData("cuda:2", "any", true)]
    public void Requirements_match_kinds_or_exact_devices(string device, string requirement, bool expected) =>
        Assert.Equal(expected, DeviceNames.Satisfies(device, requirement));

    [Fact]
    public void Slots_are_never_oversubscribed_and_freed_slots_are_reused()
    {
        var pool = new SlotScheduler();
        pool.SetSilo("a", DeviceNames.ParseDeclaration("cpu=2"));
        pool.SetSilo("b", DeviceNames.ParseDeclaration("cpu=1"));
        Assert.Equal(3, pool.Capacity("cpu"));
        var got = Enumerable.Range(0, 5).Select(i => pool.TryAcquire("cpu", $"h{i}")).ToList();
        Assert.Equal(3, got.Count(s => s is not null));
        Assert.Null(got[3]); Assert.Null(got[4]);
        Assert.Equal(3, got.Where(s => s is not null).Select(s => s!.Value).Distinct().Count());
        Assert.Equal(0, pool.Free("cpu"));
        Assert.Throws<InvalidOperationException>(() => pool.TryAcquire("cpu", "h0")); // one slot per holder

        Assert.True(pool.Release("h1"));
        Assert.False(pool.Release("h1"));
        var again = pool.TryAcquire("cpu", "h5");
        Assert.Equal(got[1], again);
        Assert.Equal("h5", pool.HolderOf(again!.Value));
        Assert.Equal(again, pool.SlotOf("h5"));
    }

    [Fact]
    public void Work_is_spread_to_the_least_busy_device()
    {
        var pool = new SlotScheduler();
        pool.SetSilo("a", DeviceNames.ParseDeclaration("cuda:0=2,cuda:1=2"));
        pool.SetSilo("b", DeviceNames.ParseDeclaration("cuda:0=2"));
        var devices = Enumerable.Range(0, 3).Select(i => pool.TryAcquire("cuda", $"h{i}")!.Value).Select(s => (s.Silo, s.Device)).ToList();
        Assert.Equal(3, devices.Distinct().Count()); // one per device before any device gets a second
    }

    [Fact]
    public void A_silo_without_the_kind_never_gets_such_work()
    {
        var pool = new SlotScheduler();
        pool.SetSilo("cpu-only", DeviceNames.ParseDeclaration("cpu=4"));
        Assert.False(pool.Offers("cuda"));
        Assert.Null(pool.TryAcquire("cuda", "g"));
        Assert.Null(pool.TryAcquire("cuda:0", "g"));
        pool.SetSilo("gpu", DeviceNames.ParseDeclaration("cuda:1=1"));
        Assert.True(pool.Offers("cuda"));
        Assert.Null(pool.TryAcquire("cuda:0", "g")); // an exact device nobody has
        var s = pool.TryAcquire("cuda", "g")!.Value;
        Assert.Equal(("gpu", "cuda:1"), (s.Silo, s.Device));
        Assert.Null(pool.TryAcquire("cuda", "g2"));
        Assert.Equal(4, pool.Free("cpu"));
    }

    [Fact]
    public void Removing_a_silo_returns_its_lost_holders_and_its_slots_are_gone()
    {
        var pool = new SlotScheduler();
        pool.SetSilo("a", DeviceNames.ParseDeclaration("cpu=2"));
        pool.SetSilo("b", DeviceNames.ParseDeclaration("cpu=2"));
        var held = Enumerable.Range(0, 4).Select(i => (Holder: $"h{i}", Slot: pool.TryAcquire("cpu", $"h{i}")!.Value)).ToList();
        var lost = pool.RemoveSilo("a");
        Assert.Equal(held.Where(h => h.Slot.Silo == "a").Select(h => h.Holder).Order(), lost.Select(l => l.Holder).Order());
        Assert.All(lost, l => Assert.Null(pool.SlotOf(l.Holder)));
        Assert.Equal(2, pool.Capacity());
        Assert.False(pool.HasSilo("a"));
        Assert.Null(pool.TryAcquire("cpu", "h9")); // b's two slots are still busy
        Assert.Empty(pool.RemoveSilo("a"));
        Assert.False(pool.TryHold(new SlotRef("a", "cpu", 0), "x"));
    }

    [Fact]
    public void Shrinking_a_device_drains_busy_slots_instead_of_oversubscribing()
    {
        var pool = new SlotScheduler();
        pool.SetSilo("a", DeviceNames.ParseDeclaration("cpu=3"));
        for (int i = 0; i < 3; i++) pool.TryAcquire("cpu", $"h{i}");
        pool.SetSilo("a", DeviceNames.ParseDeclaration("cpu=1"));
        Assert.Equal(3, pool.Busy);
        pool.Release("h0"); // slot 0 is within the new count but h1 (slot 1) and h2 (slot 2) still run: no free slot yet
        Assert.Equal(1, pool.Free("cpu"));
        pool.TryAcquire("cpu", "h3");
        Assert.Equal(0, pool.Free("cpu"));
        pool.Release("h1"); pool.Release("h2");
        Assert.Equal(0, pool.Free("cpu"));
        Assert.Null(pool.TryAcquire("cpu", "h4"));
        // The device disappears from the declaration: its busy slot drains, then it is gone.
        pool.SetSilo("a", DeviceNames.ParseDeclaration("cuda:0"));
        Assert.Equal(0, pool.Capacity("cpu"));
        Assert.True(pool.Release("h3"));
        Assert.DoesNotContain(pool.Usage(), u => u.Device == "cpu");
    }

    [Fact]
    public void TryHold_marks_a_known_slot_busy_once()
    {
        var pool = new SlotScheduler();
        pool.SetSilo("a", DeviceNames.ParseDeclaration("cpu=2"));
        var slot = new SlotRef("a", "cpu", 1);
        Assert.True(pool.TryHold(slot, "other-sweep"));
        Assert.True(pool.TryHold(slot, "other-sweep"));
        Assert.False(pool.TryHold(slot, "me"));
        Assert.False(pool.TryHold(new SlotRef("a", "cpu", 2), "me"));
        Assert.Equal(new SlotRef("a", "cpu", 0), pool.TryAcquire("cpu", "me"));
    }

    [Fact]
    public void Slot_keys_round_trip()
    {
        var s = new SlotRef("S10.0.0.1:11111:42", "cuda:1", 3);
        Assert.Equal(s, SlotRef.Parse(s.Key));
        Assert.Throws<FormatException>(() => SlotRef.Parse("a|b"));
        Assert.Throws<FormatException>(() => SlotRef.Parse("a|cpu|-1"));
    }

    [Fact]
    public void Random_acquire_release_never_exceeds_any_devices_slots()
    {
        var rng = new Random(7);
        var pool = new SlotScheduler();
        var declared = new Dictionary<(string, string), int>
        {
            [("a", "cpu")] = 2, [("a", "cuda:0")] = 1, [("b", "cuda:0")] = 2, [("b", "cuda:1")] = 1,
        };
        pool.SetSilo("a", DeviceNames.ParseDeclaration("cpu=2,cuda:0=1"));
        pool.SetSilo("b", DeviceNames.ParseDeclaration("cuda:0=2,cuda:1=1"));
        var holders = new List<string>();
        for (int step = 0; step < 5000; step++)
        {
            if (holders.Count > 0 && rng.NextDouble() < 0.45)
            {
                var h = holders[rng.Next(holders.Count)];
                Assert.True(pool.Release(h));
                holders.Remove(h);
            }
            else
            {
                var req = new[] { "cpu", "cuda", "cuda:1", "any" }[rng.Next(4)];
                var h = $"h{step}";
                if (pool.TryAcquire(req, h) is { } s)
                {
                    Assert.True(DeviceNames.Satisfies(s.Device, req));
                    holders.Add(h);
                }
                else Assert.Equal(0, pool.Free(req));
            }
            foreach (var u in pool.Usage()) Assert.True(u.Busy <= declared[(u.Silo, u.Device)], $"{u.Silo}/{u.Device}: {u.Busy} busy");
            Assert.Equal(holders.Count, pool.Busy);
        }
    }
}
