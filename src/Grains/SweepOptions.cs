using FairMedFM.Engine.Scheduling;

namespace FairMedFM.Grains;

/// <summary>How sweep grains pace themselves (silo-wide; env FAIRMEDFM_SWEEP_* in the standalone silo).</summary>
public sealed record SweepOptions
{
    /// <summary>Dispatch/poll period of an active sweep.</summary>
    public TimeSpan Tick { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Retry budget, backoff and lease of cells (a running cell whose worker does not answer for a lease is requeued).</summary>
    public RetryPolicy Retry { get; init; } = new() { MaxAttempts = 3, InitialBackoff = TimeSpan.FromSeconds(5), MaxBackoff = TimeSpan.FromMinutes(5), Lease = TimeSpan.FromSeconds(60) };
    /// <summary>How often silos re-announce their devices (and how stale an announcement may be before it is ignored: 3×).</summary>
    public TimeSpan Announce { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Period of the durable reminder that re-activates an unfinished sweep after every silo restarted (Orleans' minimum is 1 minute).</summary>
    public TimeSpan Reminder { get; init; } = TimeSpan.FromMinutes(1);
}
