namespace FairMedFM.Grains;

[GenerateSerializer, Alias("fairmedfm.CellClaimState")]
public sealed class CellClaimState
{
    [Id(0)] public string? Holder { get; set; }
    [Id(1)] public DateTimeOffset ExpiresUtc { get; set; }
    /// <summary>Times the claim changed hands because a holder's lease ran out (for status and tests).</summary>
    [Id(2)] public int Takeovers { get; set; }
    /// <summary>Distinct runners told to wait (counted once each, in memory: a diagnostic, not persisted on its own).</summary>
    [Id(3)] public int Waiters { get; set; }
}

/// <summary>
/// See <see cref="ICellClaimGrain"/>. The state is written before a change is answered, so a claim granted is durable: if this
/// grain's silo dies, the re-activated grain still knows the holder and its lease. A failed write leaves the claim as it was
/// and fails the call (the caller retries). Non-reentrant: requests are decided one at a time. Times are this grain's clock.
/// </summary>
public sealed class CellClaimGrain(
    [PersistentState("claim", FairMedFMSilo.StorageName)] IPersistentState<CellClaimState> state) : Grain, ICellClaimGrain
{
    private readonly HashSet<string> _waiting = new(StringComparer.Ordinal);

    public async Task<CellClaimReply> Acquire(string holder, TimeSpan lease)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(holder);
        if (lease <= TimeSpan.Zero) throw new ArgumentException($"a claim's lease must be positive (got {lease})");
        var now = DateTimeOffset.UtcNow;
        var s = state.State;
        if (s.Holder is { } h && h != holder && s.ExpiresUtc > now)
        {
            if (_waiting.Add(holder)) s.Waiters++;
            return new CellClaimReply(false, h, s.ExpiresUtc, s.Waiters, s.Takeovers);
        }
        bool takeover = s.Holder is { } old && old != holder;
        await Change(holder, now + lease, takeover);
        _waiting.Remove(holder);
        return new CellClaimReply(true, holder, state.State.ExpiresUtc, state.State.Waiters, state.State.Takeovers);
    }

    public async Task<bool> Renew(string holder, TimeSpan lease)
    {
        if (state.State.Holder != holder) return false;
        await Change(holder, DateTimeOffset.UtcNow + lease, takeover: false);
        return true;
    }

    public async Task Release(string holder)
    {
        if (state.State.Holder != holder) return;
        await Change(null, DateTimeOffset.UtcNow, takeover: false);
    }

    public Task<CellClaimReply> Get()
    {
        var s = state.State;
        var live = s.Holder is not null && s.ExpiresUtc > DateTimeOffset.UtcNow;
        return Task.FromResult(new CellClaimReply(false, live ? s.Holder : null, live ? s.ExpiresUtc : null, s.Waiters, s.Takeovers));
    }

    private async Task Change(string? holder, DateTimeOffset expires, bool takeover)
    {
        var (h, e, t) = (state.State.Holder, state.State.ExpiresUtc, state.State.Takeovers);
        state.State.Holder = holder;
        state.State.ExpiresUtc = expires;
        if (takeover) state.State.Takeovers++;
        try { await state.WriteStateAsync(); }
        catch
        {
            (state.State.Holder, state.State.ExpiresUtc, state.State.Takeovers) = (h, e, t);
            throw;
        }
    }
}
