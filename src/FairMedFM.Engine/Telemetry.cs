using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace FairMedFM.Engine;

/// <summary>
/// The engine's OpenTelemetry sources (plain System.Diagnostics, so the engine needs no exporter): one trace per cell,
/// joined to its sweep — sweep → cell → dataset / embedding / training / evaluation → aggregation — and the counters an
/// operator watches. Hosts choose exporters; nothing is exported unless they do.
/// </summary>
public static class Telemetry
{
    public const string Name = "FairMedFM";
    public static readonly ActivitySource Source = new(Name, typeof(Telemetry).Assembly.GetName().Version?.ToString());
    public static readonly Meter Meter = new(Name);

    public static readonly Counter<long> CellsFinished = Meter.CreateCounter<long>("fairmedfm.cells.finished", "{cell}", "cells finished, tagged state=done|failed");
    public static readonly UpDownCounter<long> CellsRunning = Meter.CreateUpDownCounter<long>("fairmedfm.cells.running", "{cell}", "cells started and not yet finished (any stage)");
    public static readonly UpDownCounter<long> CellsQueued = Meter.CreateUpDownCounter<long>("fairmedfm.cells.queued", "{cell}", "cells waiting for a training slot");
    public static readonly UpDownCounter<long> SlotsBusy = Meter.CreateUpDownCounter<long>("fairmedfm.slots.busy", "{slot}", "training slots in use, tagged device");
    public static readonly Counter<long> EmbeddedImages = Meter.CreateCounter<long>("fairmedfm.embeddings.images", "{image}", "images pushed through a frozen backbone");
    public static readonly Histogram<double> EmbeddingRate = Meter.CreateHistogram<double>("fairmedfm.embeddings.rate", "{image}/s", "backbone throughput of each embedding job");
    public static readonly Counter<long> TrainingSteps = Meter.CreateCounter<long>("fairmedfm.training.steps", "{step}", "optimizer steps");
    public static readonly Histogram<double> TrainingStepRate = Meter.CreateHistogram<double>("fairmedfm.training.rate", "{step}/s", "optimizer steps per second of each training");
    public static readonly Counter<long> CacheLookups = Meter.CreateCounter<long>("fairmedfm.cache.lookups", "{lookup}", "embedding cache lookups, tagged hit=true|false");

    /// <summary>Tags every cell span carries.</summary>
    public static Activity? StartCell(string name, Config.CellSpec spec, ActivityKind kind = ActivityKind.Internal)
    {
        var a = Source.StartActivity(name, kind);
        if (a is null) return null;
        a.SetTag("fairmedfm.cell_id", spec.CellId);
        a.SetTag("fairmedfm.dataset", Config.DatasetNames.Of(spec.Dataset));
        a.SetTag("fairmedfm.model", spec.Model);
        a.SetTag("fairmedfm.usage", spec.Usage);
        a.SetTag("fairmedfm.method", spec.Method);
        a.SetTag("fairmedfm.attribute", spec.Attribute);
        a.SetTag("fairmedfm.seed", spec.Seed);
        return a;
    }
}
