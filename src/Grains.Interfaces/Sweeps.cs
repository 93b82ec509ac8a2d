namespace FairMedFM.Grains;

// ---- Durable sweeps (ledger), device workers, the device registry ----

/// <summary>One cell of a submission: its id (hash of its configuration), canonical specification JSON, a label, and the device
/// kind it needs (<c>cpu</c>, <c>cuda</c>, <c>cuda:1</c>, <c>any</c>).</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.SweepCellInput")]
public sealed record SweepCellInput(
    [property: Id(0)] string CellId,
    [property: Id(1)] string SpecJson,
    [property: Id(2)] string Label,
    [property: Id(3)] string Requirement);

/// <summary>A grid expanded into cells, submitted to the sweep grain keyed <see cref="SweepId"/>. Submitting again (the same
/// grid, or a grown one) is idempotent: known cells keep their state, new cells are added.</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.SweepSubmission")]
public sealed record SweepSubmission(
    [property: Id(0)] string SweepId,
    [property: Id(1)] string GridName,
    [property: Id(2)] IReadOnlyList<SweepCellInput> Cells,
    [property: Id(3)] int? Parallelism = null);

[GenerateSerializer, Immutable, Alias("fairmedfm.SweepSubmitResult")]
public sealed record SweepSubmitResult(
    [property: Id(0)] string SweepId,
    [property: Id(1)] int Added,
    [property: Id(2)] int AlreadyKnown,
    [property: Id(3)] int Revived,
    [property: Id(4)] int Total);

/// <summary>One cell of a sweep as the ledger sees it.</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.SweepCellView")]
public sealed record SweepCellView(
    [property: Id(0)] string CellId,
    [property: Id(1)] string Label,
    [property: Id(2)] string State,
    [property: Id(3)] int Attempts,
    [property: Id(4)] string? Silo,
    [property: Id(5)] string? Device,
    [property: Id(6)] string? Reason,
    [property: Id(7)] IReadOnlyList<string> Errors,
    [property: Id(8)] string? Stage,
    [property: Id(9)] string Requirement,
    [property: Id(10)] DateTimeOffset? NotBefore);

/// <summary>Slots of one device of one silo: what this sweep runs there and how many slots it has.</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.DeviceLoad")]
public sealed record DeviceLoad(
    [property: Id(0)] string Silo,
    [property: Id(1)] string Device,
    [property: Id(2)] int Slots,
    [property: Id(3)] int Busy,
    [property: Id(4)] int BusyThisSweep);

[GenerateSerializer, Immutable, Alias("fairmedfm.SweepStatus")]
public sealed record SweepStatus(
    [property: Id(0)] string SweepId,
    [property: Id(1)] string GridName,
    [property: Id(2)] bool Exists,
    [property: Id(3)] int Total,
    [property: Id(4)] int Pending,
    [property: Id(5)] int Running,
    [property: Id(6)] int Done,
    [property: Id(7)] int Failed,
    [property: Id(8)] int Undefined,
    [property: Id(9)] int Cancelled,
    [property: Id(10)] int BackingOff,
    [property: Id(11)] int LostLeases,
    [property: Id(12)] int? Parallelism,
    [property: Id(13)] IReadOnlyList<DeviceLoad> Devices,
    [property: Id(14)] IReadOnlyList<string> Warnings,
    [property: Id(15)] DateTimeOffset CreatedUtc,
    [property: Id(16)] DateTimeOffset UpdatedUtc)
{
    public int Finished => Done + Failed + Undefined + Cancelled;
    public bool IsSettled => Exists && Pending == 0 && Running == 0;
}

/// <summary>
/// A sweep as a durable ledger (key: the sweep id). It expands nothing itself (the client sends the cells), keeps every cell's
/// state durably, and dispatches cells to device workers from a timer; a reminder and the silos' start-up hook bring it back
/// after any restart. All calls return at once.
/// </summary>
[Alias("fairmedfm.ISweepGrain")]
public interface ISweepGrain : IGrainWithStringKey
{
    [Alias("Submit")] Task<SweepSubmitResult> Submit(SweepSubmission submission);
    [Alias("GetStatus")] Task<SweepStatus> GetStatus();
    [Alias("GetCells")] Task<IReadOnlyList<SweepCellView>> GetCells();
    /// <summary>Pending and running cells become cancelled; returns how many.</summary>
    [Alias("Cancel")] Task<int> Cancel();
    /// <summary>Failed cells are pending again with a fresh retry budget; returns how many.</summary>
    [Alias("RerunFailed")] Task<int> RerunFailed();
    /// <summary>Most cells of this sweep running at once (null or 0: as many as there are free slots). Takes effect at once.</summary>
    [Alias("SetParallelism")] Task SetParallelism(int? parallelism);
    /// <summary>Makes sure the sweep is active and dispatching (used after restarts).</summary>
    [Alias("Wake")] Task Wake();
}

[GenerateSerializer, Immutable, Alias("fairmedfm.SweepIndexEntry")]
public sealed record SweepIndexEntry(
    [property: Id(0)] string SweepId,
    [property: Id(1)] string GridName,
    [property: Id(2)] bool Settled,
    [property: Id(3)] DateTimeOffset UpdatedUtc);

/// <summary>Every sweep of the cluster (key: "all"), so `status` can list them and restarted silos can wake unfinished ones.</summary>
[Alias("fairmedfm.ISweepIndexGrain")]
public interface ISweepIndexGrain : IGrainWithStringKey
{
    [Alias("Update")] Task Update(SweepIndexEntry entry);
    [Alias("List")] Task<IReadOnlyList<SweepIndexEntry>> List();
}

[GenerateSerializer, Immutable, Alias("fairmedfm.DeviceSlotsDto")]
public sealed record DeviceSlotsDto([property: Id(0)] string Device, [property: Id(1)] int Slots);

/// <summary>What a silo offers: its address (Orleans' parsable form), host, devices and slots, and whether CUDA is usable there.</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.SiloDevices")]
public sealed record SiloDevices(
    [property: Id(0)] string Silo,
    [property: Id(1)] string Host,
    [property: Id(2)] IReadOnlyList<DeviceSlotsDto> Devices,
    [property: Id(3)] bool CudaAvailable,
    [property: Id(4)] DateTimeOffset RegisteredUtc);

/// <summary>The devices every silo declared (key: "cluster"). Silos register at start and refresh periodically; readers
/// check the entries against cluster membership, so a dead silo's devices are never used.</summary>
[Alias("fairmedfm.IDeviceRegistryGrain")]
public interface IDeviceRegistryGrain : IGrainWithStringKey
{
    [Alias("Register")] Task Register(SiloDevices silo);
    [Alias("GetSilos")] Task<IReadOnlyList<SiloDevices>> GetSilos();
}

/// <summary>A cell handed to a device worker by a sweep.</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.WorkerAssignment")]
public sealed record WorkerAssignment(
    [property: Id(0)] string SweepId,
    [property: Id(1)] string CellId,
    [property: Id(2)] string SpecJson,
    [property: Id(3)] string AggregatorKey,
    [property: Id(4)] int Attempt);

[GenerateSerializer, Alias("fairmedfm.WorkerReply")]
public enum WorkerReply
{
    /// <summary>The cell started (or was already running here).</summary>
    Accepted = 0,
    /// <summary>The slot runs another cell (another sweep's): try another slot.</summary>
    Busy = 1,
    /// <summary>This worker cannot run on this silo (its slot belongs elsewhere or the device is not declared here).</summary>
    Refused = 2,
}

[GenerateSerializer, Immutable, Alias("fairmedfm.WorkerAccept")]
public sealed record WorkerAccept([property: Id(0)] WorkerReply Reply, [property: Id(1)] string? Detail);

[GenerateSerializer, Alias("fairmedfm.WorkerCellPhase")]
public enum WorkerCellPhase { Unknown = 0, Running = 1, Done = 2, Failed = 3 }

/// <summary>A worker's answer about one cell. <see cref="Retryable"/>: a failure another attempt may not repeat (I/O, lost
/// grains); otherwise it is permanent (bad input). <see cref="Undefined"/>: done, but the headline metric is undefined (why).</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.WorkerCellStatus")]
public sealed record WorkerCellStatus(
    [property: Id(0)] WorkerCellPhase Phase,
    [property: Id(1)] string? Stage,
    [property: Id(2)] string? Error,
    [property: Id(3)] bool Retryable,
    [property: Id(4)] string? Undefined,
    [property: Id(5)] int Attempt);

/// <summary>
/// One training slot of one device of one silo (key: <c>silo|device|index</c>, placed on that silo by the device-slot placement
/// director). Runs at most one cell at a time, through the same stages as the experiment grain, holding the silo's slot of
/// that device while it trains.
/// </summary>
[Alias("fairmedfm.IDeviceWorkerGrain")]
public interface IDeviceWorkerGrain : IGrainWithStringKey
{
    [Alias("Run")] Task<WorkerAccept> Run(WorkerAssignment assignment);
    /// <summary>The state of <paramref name="cellId"/> as run for <paramref name="sweepId"/> (Unknown when this worker has no such job).</summary>
    [Alias("PollCell")] Task<WorkerCellStatus> Poll(string sweepId, string cellId);
}

/// <summary>A slice query: any filter left null matches every value.</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.MatrixQuery")]
public sealed record MatrixQuery(
    [property: Id(0)] string? Usage = null,
    [property: Id(1)] string? Method = null,
    [property: Id(2)] string? Attribute = null,
    [property: Id(3)] string? Metric = null);

/// <summary>One stored per-sample prediction of a cell, with the sample's group for the cell's attribute.</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.PredictionRow")]
public sealed record PredictionRow(
    [property: Id(0)] int Index,
    [property: Id(1)] string Split,
    [property: Id(2)] string Image,
    [property: Id(3)] string PatientId,
    [property: Id(4)] int Label,
    [property: Id(5)] double Probability,
    [property: Id(6)] string Group);

/// <summary>One stored per-sample record of a segmentation cell (its predictions.csv): the sample, its group and prompt, whether it
/// was scored (else the skip reason) and its Dice, IoU and HD95 (null when not scored or undefined, HD95 then with the reason).</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.SegSampleRow")]
public sealed record SegSampleRow(
    [property: Id(0)] int Index,
    [property: Id(1)] string SampleId,
    [property: Id(2)] string PatientId,
    [property: Id(3)] string Group,
    [property: Id(4)] string Prompt,
    [property: Id(5)] string Status,
    [property: Id(6)] string? SkipReason,
    [property: Id(7)] double? Dice,
    [property: Id(8)] double? Iou,
    [property: Id(9)] double? Hd95,
    [property: Id(10)] string? Hd95Undefined);

/// <summary>A cell's drill-down: its summary and a page of its stored predictions (for a segmentation cell also the same page
/// as <see cref="SegSamples"/>, with the segmentation columns).</summary>
[GenerateSerializer, Immutable, Alias("fairmedfm.CellDrillDown")]
public sealed record CellDrillDown(
    [property: Id(0)] CellSummary Cell,
    [property: Id(1)] int TotalPredictions,
    [property: Id(2)] IReadOnlyList<PredictionRow> Predictions,
    [property: Id(3)] string? Error,
    [property: Id(4)] IReadOnlyList<SegSampleRow>? SegSamples = null);
