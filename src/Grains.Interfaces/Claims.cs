namespace FairMedFM.Grains;

/// <summary>
/// The claim on computing one cell (key: the cell id = hash of its configuration), held in grain storage so it survives the
/// grain's silo. Whoever computes a cell — a device worker of any sweep, or an experiment grain — must hold the claim; a
/// second worker (another sweep id with the same cell, or a retry after a spurious lease loss) waits until the holder has
/// finished (and then reuses its stored result) or its lease has run out (a dead holder). The holder renews the lease while
/// it computes and releases the claim at the end.
/// </summary>
[Alias("fairmedfm.ICellClaimGrain")]
public interface ICellClaimGrain : IGrainWithStringKey
{
    /// <summary>Grants the claim when it is free, expired or already <paramref name="holder"/>'s; otherwise says who holds it until when.</summary>
    [Alias("Acquire")] Task<CellClaimReply> Acquire(string holder, TimeSpan lease);
    /// <summary>Extends <paramref name="holder"/>'s lease; false when it no longer holds the claim (expired and taken over, or released).</summary>
    [Alias("Renew")] Task<bool> Renew(string holder, TimeSpan lease);
    /// <summary>Frees the claim if <paramref name="holder"/> holds it.</summary>
    [Alias("Release")] Task Release(string holder);
    [Alias("Get")] Task<CellClaimReply> Get();
}

[GenerateSerializer, Immutable, Alias("fairmedfm.CellClaimReply")]
/// <summary><see cref="Waiters"/>: runners that were told to wait for a holder, <see cref="Takeovers"/>: claims taken over from a
/// holder whose lease ran out — both over the claim's life (diagnostics; the failure tests check the claim was contended).</summary>
public sealed record CellClaimReply(
    [property: Id(0)] bool Granted,
    [property: Id(1)] string? Holder,
    [property: Id(2)] DateTimeOffset? ExpiresUtc,
    [property: Id(3)] int Waiters = 0,
    [property: Id(4)] int Takeovers = 0);
