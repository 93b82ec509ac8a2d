using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using FairMedFM.Engine;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Scheduling;
using FairMedFM.Grains;
using Spectre.Console;

namespace FairMedFM.Client;

/// <summary>
/// The cluster commands: submit a grid as a durable sweep, then status / watch / cancel / rerun --failed / parallelism /
/// matrix / results against a cluster (--redis or --gateway). Exit codes: 0 fine (watch: every cell done), 1 some cells failed
/// (watch, submit in the embedded silo), 2 bad input or unknown sweep, 3 the cluster cannot be reached.
/// </summary>
public sealed class SweepCommands(IAnsiConsole console)
{
    private static readonly Argument<string> SweepArg = new("SWEEP") { Description = "Sweep id (printed by submit; by default the grid's name)" };
    private static readonly Argument<string?> OptionalSweepArg = new("SWEEP") { Description = "Sweep id (omit for every sweep of the cluster)", Arity = ArgumentArity.ZeroOrOne };

    public const int ExitFailedCells = 1, ExitBadInput = 2, ExitUnreachable = 3;

    public IEnumerable<Command> Build()
    {
        yield return Submit();
        yield return Status();
        yield return Watch();
        yield return Cancel();
        yield return Rerun();
        yield return Parallelism();
        yield return Matrix();
        yield return Results();
    }

    private static void AddConnection(Command c)
    {
        foreach (var o in new Option[] { Cli.GatewayOpt, Cli.RedisOpt }) c.Options.Add(o);
    }

    // ---- submit ----

    internal static readonly Option<string> GridOpt = new("--grid") { Description = "Grid file (YAML or JSON)", Required = true };
    internal static readonly Option<string?> SweepIdOpt = new("--sweep") { Description = "Sweep id (default: the grid's name). Submitting to an existing sweep adds only the cells it lacks" };
    internal static readonly Option<int?> ParallelismOpt = new("--parallelism") { Description = "Most cells of this sweep running at once (default: as many as there are free slots; change later with `fairmedfm parallelism`)" };
    internal static readonly Option<string> DeviceOpt = new("--device") { Description = "Device kind the cells need: cpu, cuda, cuda:N, mps or any", DefaultValueFactory = _ => "cpu" };

    private Command Submit()
    {
        var cmd = new Command("submit", "Submit a grid as a durable sweep (prints its id). Idempotent: resubmitting adds only new cells; done cells are never recomputed. " +
                                        "Without --redis/--gateway the sweep runs in an embedded silo until it settles.");
        foreach (var o in new Option[] { GridOpt, SweepIdOpt, ParallelismOpt, DeviceOpt, Cli.CacheOpt, Cli.WeightsOpt, Cli.SlotsOpt, Cli.PlainOpt }) cmd.Options.Add(o);
        AddConnection(cmd);
        cmd.SetAction(async (pr, ct) =>
        {
            SweepSubmission submission;
            try { submission = BuildSubmission(pr.GetValue(GridOpt)!, pr.GetValue(SweepIdOpt), pr.GetValue(ParallelismOpt), pr.GetValue(DeviceOpt)!); }
            catch (Exception e) when (e is ConfigException or ArgumentException)
            {
                console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                return ExitBadInput;
            }
            return await WithCluster(pr, ct, allowEmbedded: true, async (conn, embedded) =>
            {
                var sweep = conn.Client.GetGrain<ISweepGrain>(submission.SweepId);
                var r = await sweep.Submit(submission);
                console.WriteLine(r.SweepId);
                console.MarkupLine($"[grey]sweep {Markup.Escape(r.SweepId)}: {r.Added} new cell(s), {r.AlreadyKnown} already known, {r.Revived} revived; {r.Total} in all[/]");
                if (!embedded) return 0;
                console.MarkupLine("[grey]embedded silo: watching until the sweep settles (use --redis or --gateway to submit and return)[/]");
                return await WatchAsync(conn.Client, new[] { r.SweepId }, pr.GetValue(Cli.PlainOpt), ct);
            });
        });
        return cmd;
    }

    /// <summary>Expands a grid into a submission: each cell with its canonical JSON (what its id hashes) and the device kind it needs.</summary>
    public static SweepSubmission BuildSubmission(string gridPath, string? sweepId, int? parallelism, string device)
    {
        var grid = GridSpec.Load(gridPath);
        DeviceNames.ValidateRequirement(device);
        if (parallelism is < 0) throw new ArgumentException($"--parallelism must be ≥ 0 (0 = no limit; got {parallelism})");
        var id = sweepId ?? grid.Name;
        ValidateSweepId(id);
        var cells = grid.Expand().DistinctBy(s => s.CellId)
            .Select(s => new SweepCellInput(s.CellId, JsonSerializer.Serialize(s, JsonDefaults.Canonical), s.Label, device)).ToList();
        return new SweepSubmission(id, grid.Name, cells, parallelism);
    }

    public static void ValidateSweepId(string id)
    {
        if (string.IsNullOrWhiteSpace(id) || id.Length > 200 || id.Any(char.IsControl) || id.Contains('/') || id.Contains('|'))
            throw new ArgumentException($"sweep id '{id}' must be 1–200 printable characters without '/' or '|'");
    }

    // ---- status / watch ----

    private Command Status()
    {
        var cmd = new Command("status", "One sweep in detail (cells by state, slots per silo/device, failed cells with reasons), or every sweep of the cluster");
        cmd.Arguments.Add(OptionalSweepArg);
        AddConnection(cmd);
        cmd.SetAction((pr, ct) => WithCluster(pr, ct, allowEmbedded: false, async (conn, _) =>
        {
            var id = pr.GetValue(OptionalSweepArg);
            if (id is null)
            {
                var all = await conn.Client.GetGrain<ISweepIndexGrain>("all").List();
                if (all.Count == 0) { console.MarkupLine("no sweeps in this cluster"); return 0; }
                var t = new Table().AddColumns("sweep", "grid", "cells", "done", "failed", "undefined", "cancelled", "running", "pending", "updated (UTC)");
                foreach (var e in all)
                {
                    var s = await conn.Client.GetGrain<ISweepGrain>(e.SweepId).GetStatus();
                    t.AddRow(Markup.Escape(e.SweepId), Markup.Escape(s.GridName), s.Total.ToString(), s.Done.ToString(), s.Failed.ToString(), s.Undefined.ToString(),
                        s.Cancelled.ToString(), s.Running.ToString(), s.Pending.ToString(), s.UpdatedUtc.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture));
                }
                console.Write(t);
                return 0;
            }
            var status = await conn.Client.GetGrain<ISweepGrain>(id).GetStatus();
            if (!status.Exists) return await UnknownSweep(conn.Client, id);
            var cells = await conn.Client.GetGrain<ISweepGrain>(id).GetCells();
            PrintStatus(status, cells, detail: true);
            return 0;
        }));
        return cmd;
    }

    private Command Watch()
    {
        var cmd = new Command("watch", "Live progress of a sweep (or of every unfinished sweep) per sweep and per silo/device, until it settles");
        cmd.Arguments.Add(OptionalSweepArg);
        cmd.Options.Add(Cli.PlainOpt);
        AddConnection(cmd);
        cmd.SetAction((pr, ct) => WithCluster(pr, ct, allowEmbedded: false, async (conn, _) =>
        {
            var id = pr.GetValue(OptionalSweepArg);
            IReadOnlyList<string> ids;
            if (id is not null)
            {
                if (!(await conn.Client.GetGrain<ISweepGrain>(id).GetStatus()).Exists) return await UnknownSweep(conn.Client, id);
                ids = new[] { id };
            }
            else ids = (await conn.Client.GetGrain<ISweepIndexGrain>("all").List()).Where(e => !e.Settled).Select(e => e.SweepId).ToList();
            if (ids.Count == 0) { console.MarkupLine("no unfinished sweeps"); return 0; }
            return await WatchAsync(conn.Client, ids, pr.GetValue(Cli.PlainOpt), ct);
        }));
        return cmd;
    }

    /// <summary>Polls the sweeps until every one settles; returns 0 when all their cells are done (or undefined), 1 otherwise.</summary>
    public async Task<int> WatchAsync(IClusterClient client, IReadOnlyList<string> ids, bool plain, CancellationToken ct, TimeSpan? poll = null)
    {
        var period = poll ?? TimeSpan.FromSeconds(1);
        DateTime? outageSince = null;
        async Task<List<SweepStatus>> Read()
        {
            while (true)
            {
                try
                {
                    var list = new List<SweepStatus>();
                    foreach (var id in ids) list.Add(await client.GetGrain<ISweepGrain>(id).GetStatus());
                    if (outageSince is not null) console.MarkupLine("[grey]the cluster answers again[/]");
                    outageSince = null;
                    return list;
                }
                catch (Exception e) when (e is OrleansException or TimeoutException && (outageSince is null || DateTime.UtcNow - outageSince < WatchOutage))
                {
                    // A silo that died is evicted after some seconds; calls in that window fail. The sweep resumes on its own: wait for it.
                    if (outageSince is null) console.MarkupLine($"[yellow]the cluster is not answering ({Markup.Escape(e.GetType().Name)}); retrying for up to {WatchOutage.TotalSeconds:0} s[/]");
                    outageSince ??= DateTime.UtcNow;
                    await Task.Delay(TimeSpan.FromSeconds(2), ct);
                }
            }
        }
        List<SweepStatus> last;
        if (plain || !console.Profile.Capabilities.Interactive)
        {
            string previous = "";
            while (true)
            {
                last = await Read();
                var text = string.Join("\n", last.Select(Line).Concat(last.SelectMany(s => s.Warnings.Select(w => $"  {s.SweepId}: {w}"))));
                if (text != previous) { console.WriteLine(text); previous = text; }
                if (last.All(s => s.IsSettled)) break;
                await Task.Delay(period, ct);
            }
        }
        else
        {
            last = await Read();
            await console.Live(Render(last)).StartAsync(async ctx =>
            {
                while (!last.All(s => s.IsSettled))
                {
                    await Task.Delay(period, ct);
                    last = await Read();
                    ctx.UpdateTarget(Render(last));
                }
            });
        }
        foreach (var s in last.Where(s => s.Failed > 0))
        {
            var failed = (await client.GetGrain<ISweepGrain>(s.SweepId).GetCells()).Where(c => c.State == "failed");
            foreach (var c in failed) console.MarkupLine($"[red]failed[/] {Markup.Escape(s.SweepId)} {Markup.Escape(c.Label)}: {Markup.Escape(c.Reason ?? "")}");
        }
        return last.All(s => s.Failed == 0 && s.Cancelled == 0) ? 0 : ExitFailedCells;
    }

    /// <summary>How long watch keeps retrying while the cluster does not answer (a killed silo is evicted after ~6 s by default).</summary>
    public static readonly TimeSpan WatchOutage = TimeSpan.FromSeconds(90);

    public static string Line(SweepStatus s) =>
        $"{s.SweepId}: {s.Finished}/{s.Total} finished — {s.Done} done, {s.Failed} failed, {s.Undefined} undefined, {s.Cancelled} cancelled, " +
        $"{s.Running} running, {s.Pending} pending" + (s.BackingOff > 0 ? $" ({s.BackingOff} backing off)" : "") +
        (s.LostLeases > 0 ? $", {s.LostLeases} lost lease(s) requeued" : "") + (s.Parallelism is { } p ? $"; parallelism {p}" : "");

    private static Spectre.Console.Rendering.IRenderable Render(IReadOnlyList<SweepStatus> sweeps)
    {
        var rows = new List<Spectre.Console.Rendering.IRenderable>();
        foreach (var s in sweeps)
        {
            var chart = new BreakdownChart().Width(60)
                .AddItem("done", s.Done, Color.Green).AddItem("undefined", s.Undefined, Color.Yellow).AddItem("failed", s.Failed, Color.Red)
                .AddItem("cancelled", s.Cancelled, Color.Grey).AddItem("running", s.Running, Color.Blue).AddItem("pending", s.Pending, Color.Silver);
            rows.Add(new Markup($"[bold]{Markup.Escape(s.SweepId)}[/] {Markup.Escape(Line(s)[(s.SweepId.Length + 2)..])}"));
            rows.Add(chart);
            if (s.Devices.Count > 0)
            {
                var t = new Table().AddColumns("silo", "device", "busy / slots", "this sweep");
                foreach (var d in s.Devices)
                    t.AddRow(Markup.Escape(d.Silo), Markup.Escape(d.Device), $"{d.Busy}/{d.Slots}", d.BusyThisSweep.ToString());
                rows.Add(t);
            }
            foreach (var w in s.Warnings) rows.Add(new Markup($"[yellow]{Markup.Escape(w)}[/]"));
        }
        return new Rows(rows);
    }

    public void PrintStatus(SweepStatus s, IReadOnlyList<SweepCellView> cells, bool detail)
    {
        console.MarkupLine($"[bold]{Markup.Escape(s.SweepId)}[/] (grid {Markup.Escape(s.GridName)}; created {s.CreatedUtc:u}, updated {s.UpdatedUtc:u})");
        console.Write(Render(new[] { s })); // its first line is the progress line (Line): printed once
        if (!detail) return;
        var running = cells.Where(c => c.State == "running").ToList();
        if (running.Count > 0)
        {
            var t = new Table().Title("running").AddColumns("cell", "label", "silo", "device", "stage", "attempt");
            foreach (var c in running) t.AddRow(c.CellId, Markup.Escape(c.Label), Markup.Escape(c.Silo ?? ""), Markup.Escape(c.Device ?? ""), Markup.Escape(c.Stage ?? ""), c.Attempts.ToString());
            console.Write(t);
        }
        foreach (var c in cells.Where(c => c.State is "failed" or "undefined"))
            console.MarkupLine($"[{(c.State == "failed" ? "red" : "yellow")}]{c.State}[/] {c.CellId} {Markup.Escape(c.Label)} after {c.Attempts} attempt(s): {Markup.Escape(c.Reason ?? "")}");
        foreach (var c in cells.Where(c => c.State == "pending" && c.NotBefore is not null))
            console.MarkupLine($"[grey]backing off[/] {c.CellId} {Markup.Escape(c.Label)} until {c.NotBefore:u}: {Markup.Escape(c.Errors.LastOrDefault() ?? "")}");
    }

    // ---- control ----

    private Command Cancel()
    {
        var cmd = new Command("cancel", "Cancel a sweep: pending and running cells become cancelled (results that running cells still deliver are kept)");
        cmd.Arguments.Add(SweepArg);
        AddConnection(cmd);
        cmd.SetAction((pr, ct) => OnSweep(pr, ct, async (sweep, id) =>
        {
            var n = await sweep.Cancel();
            console.MarkupLine($"sweep {Markup.Escape(id)}: {n} cell(s) cancelled (submit the grid again to resume them)");
            return 0;
        }));
        return cmd;
    }

    private static readonly Option<bool> FailedOpt = new("--failed") { Description = "Rerun the failed cells (with a fresh retry budget)" };

    private Command Rerun()
    {
        var cmd = new Command("rerun", "Rerun a sweep's failed cells; done cells are never recomputed");
        cmd.Arguments.Add(SweepArg);
        cmd.Options.Add(FailedOpt);
        AddConnection(cmd);
        cmd.Validators.Add(r =>
        {
            if (!r.GetValue(FailedOpt)) r.AddError("rerun needs --failed (only failed cells are rerun; done cells are never recomputed)");
        });
        cmd.SetAction((pr, ct) => OnSweep(pr, ct, async (sweep, id) =>
        {
            var n = await sweep.RerunFailed();
            console.MarkupLine($"sweep {Markup.Escape(id)}: {n} failed cell(s) pending again");
            return 0;
        }));
        return cmd;
    }

    private static readonly Argument<int> CountArg = new("N")
    {
        Description = "Most cells running at once (0: no limit beyond the free slots)",
        // Parsed here, not in a validator: a validator that reads an unparsable token (abc, 1.5, 99999999999) throws instead of reporting.
        CustomParser = r => WholeNumber(r, "N"),
    };

    /// <summary>A whole number ≥ 0 from the single token of <paramref name="r"/>, or a parse error in the user's words (exit 2).</summary>
    internal static int WholeNumber(System.CommandLine.Parsing.ArgumentResult r, string name)
    {
        var token = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
        if (int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var n)) return n;
        r.AddError($"{name} must be a whole number ≥ 0 (got '{token}')");
        return 0;
    }

    private Command Parallelism()
    {
        var cmd = new Command("parallelism", "Change how many cells of a running sweep may run at once (takes effect at the next dispatch; running cells are not stopped)");
        cmd.Arguments.Add(SweepArg);
        cmd.Arguments.Add(CountArg);
        AddConnection(cmd);
        cmd.SetAction((pr, ct) => OnSweep(pr, ct, async (sweep, id) =>
        {
            var n = pr.GetValue(CountArg);
            await sweep.SetParallelism(n);
            console.MarkupLine($"sweep {Markup.Escape(id)}: parallelism {(n == 0 ? "unlimited" : n.ToString())}");
            return 0;
        }));
        return cmd;
    }

    // ---- results ----

    private static readonly Option<string?> UsageOpt = new("--usage") { Description = "Only this usage (lp, clip-zs, …)" };
    private static readonly Option<string?> MethodOpt = new("--method") { Description = "Only this method" };
    private static readonly Option<string?> AttributeOpt = new("--attribute") { Description = "Only this attribute" };
    private static readonly Option<string?> MetricOpt = new("--metric") { Description = "Only this metric (default: overall-auc, auc-gap, eod for classification cells; mean_dice, delta_dice, es_dice, mean_hd95 for segmentation cells)" };
    private static readonly Option<string?> CellOpt = new("--cell") { Description = "Drill down to one cell (id or unique prefix): its groups and stored per-sample predictions" };
    private static readonly Option<int> LimitOpt = new("--limit")
    {
        Description = "Predictions shown with --cell", DefaultValueFactory = _ => 20,
        CustomParser = r => WholeNumber(r, "--limit"),
    };

    private Command Matrix()
    {
        var cmd = new Command("matrix", "The datasets × models matrix of a sweep per usage · method · attribute · metric (mean ± sd over seeds), or one cell's drill-down");
        cmd.Arguments.Add(SweepArg);
        foreach (var o in new Option[] { UsageOpt, MethodOpt, AttributeOpt, MetricOpt, CellOpt, LimitOpt }) cmd.Options.Add(o);
        AddConnection(cmd);
        cmd.SetAction((pr, ct) => OnSweep(pr, ct, async (_, id) =>
        {
            var agg = ClientOf(pr).GetGrain<IAggregatorGrain>(id);
            if (pr.GetValue(CellOpt) is { } cellId) return await PrintDrillDownAsync(agg, id, cellId, pr.GetValue(LimitOpt));
            if (pr.GetResult(LimitOpt) is { Implicit: false }) console.MarkupLine("[yellow]note:[/] --limit applies to a cell's drill-down (--cell ID); ignored here");
            var filter = new MatrixFilter(pr.GetValue(UsageOpt), pr.GetValue(MethodOpt), pr.GetValue(AttributeOpt), pr.GetValue(MetricOpt));
            return await PrintMatrixAsync(agg, await ClientOf(pr).GetGrain<ISweepGrain>(id).GetCells(), id, filter);
        }));
        return cmd;
    }

    /// <summary>The filters of <c>fairmedfm matrix</c>; null matches every value (for the metric: the task's default set).</summary>
    public sealed record MatrixFilter(string? Usage = null, string? Method = null, string? Attribute = null, string? Metric = null);

    /// <summary>Default metrics of a classification slice.</summary>
    public static readonly IReadOnlyList<string> ClassificationMatrixMetrics = ["overall-auc", "auc-gap", "eod"];
    /// <summary>Default metrics of a segmentation slice: mean Dice, Dice gap (max − min group mean), ES-Dice, mean HD95, as the cells store them.</summary>
    public static readonly IReadOnlyList<string> SegmentationMatrixMetrics = ["mean_dice", "delta_dice", "es_dice", "mean_hd95"];

    /// <summary>
    /// Prints the matrix of a sweep: per usage · method · attribute, the chosen metric or the defaults of the slice's task
    /// (segmentation or classification); a filter value or metric that the sweep does not have is exit 2 naming the valid
    /// ones. Failed, cancelled and unfinished cells are named after the tables.
    /// </summary>
    public async Task<int> PrintMatrixAsync(IAggregatorGrain agg, IReadOnlyList<SweepCellView> ledger, string sweepId, MatrixFilter filter)
    {
        var summaries = await agg.GetCells();
        var done = summaries.Where(c => c.Phase == JobPhase.Done).ToList();
        // Values the sweep has: from every reported cell and from the ledger's labels (which also cover pending cells).
        var labels = ledger.Select(c => ParseLabel(c.Label)).Where(l => l is not null).Select(l => l!.Value).ToList();
        var checks = new (string Option, string? Value, IEnumerable<string> Known)[]
        {
            ("--usage", filter.Usage, summaries.Select(c => c.Usage).Concat(labels.Select(l => l.Usage))),
            ("--method", filter.Method, summaries.Select(c => c.Method).Concat(labels.Select(l => l.Method))),
            ("--attribute", filter.Attribute, summaries.Select(c => c.Attribute).Concat(labels.Select(l => l.Attribute))),
        };
        foreach (var (option, value, knownValues) in checks)
        {
            if (value is null) continue;
            var known = knownValues.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            if (known.Contains(value)) continue;
            console.MarkupLine($"[red]error:[/] {option} '{Markup.Escape(value)}' does not occur in sweep {Markup.Escape(sweepId)}" + DidYouMean(value, known) +
                               (known.Count > 0 ? $"; its values: {Markup.Escape(string.Join(", ", known))}" : " (it has no cells)"));
            return ExitBadInput;
        }
        var metricNames = done.SelectMany(c => c.Metrics.Keys).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (filter.Metric is { } wanted && done.Count > 0 && !metricNames.Contains(wanted))
        {
            console.MarkupLine($"[red]error:[/] unknown metric '{Markup.Escape(wanted)}'" + DidYouMean(wanted, metricNames) +
                               $"; the metrics in this sweep's results: {Markup.Escape(string.Join(", ", metricNames))}");
            return ExitBadInput;
        }

        var slices = done.Select(c => (c.Usage, c.Method, c.Attribute)).Distinct()
            .Where(x => (filter.Usage is null || x.Usage == filter.Usage) && (filter.Method is null || x.Method == filter.Method) && (filter.Attribute is null || x.Attribute == filter.Attribute))
            .OrderBy(x => x.Usage, StringComparer.Ordinal).ThenBy(x => x.Method, StringComparer.Ordinal).ThenBy(x => x.Attribute, StringComparer.Ordinal).ToList();
        if (slices.Count == 0) console.MarkupLine(done.Count == 0 ? "no finished cells yet" : "no finished cells match");
        bool marked = false;
        foreach (var (usage, method, attribute) in slices)
        {
            IEnumerable<string> metrics;
            if (filter.Metric is { } m) metrics = [m];
            else
            {
                var defaults = FairMedFM.Engine.Segmentation.SegUsages.IsSegmentation(usage) ? SegmentationMatrixMetrics : ClassificationMatrixMetrics;
                var present = done.Where(c => (c.Usage, c.Method, c.Attribute) == (usage, method, attribute)).SelectMany(c => c.Metrics.Keys).ToHashSet(StringComparer.Ordinal);
                metrics = defaults.Any(present.Contains) ? defaults.Where(present.Contains) : defaults;
            }
            foreach (var metric in metrics)
            {
                var v = await agg.GetMatrix(usage, method, attribute, metric);
                var t = new Table().Title($"[bold]{Markup.Escape(v.Usage)} · {Markup.Escape(v.Method)} · {Markup.Escape(v.Attribute)} · {Markup.Escape(v.Metric)}[/]");
                t.AddColumn("dataset");
                foreach (var model in v.Models) t.AddColumn(Markup.Escape(model));
                foreach (var ds in v.Datasets)
                {
                    var texts = v.Models.Select(model => v.Cells.FirstOrDefault(c => c.Dataset == ds && c.Model == model)?.Text ?? "–").ToList();
                    marked |= texts.Any(x => x.Contains(FairMedFM.Engine.Reports.MatrixCell.OutsideIntervalMark, StringComparison.Ordinal));
                    t.AddRow(new[] { Markup.Escape(ds) }.Concat(texts.Select(Markup.Escape)).ToArray());
                }
                console.Write(t);
            }
        }
        if (marked) console.MarkupLine($"[grey]{Markup.Escape(FairMedFM.Engine.Reports.MatrixCell.OutsideIntervalNote)}[/]");
        PrintUnfinished(ledger, sweepId);
        return 0;
    }

    /// <summary>After the tables: the cells that are not in them (failed, cancelled, still pending or running), with their datasets.</summary>
    private void PrintUnfinished(IReadOnlyList<SweepCellView> ledger, string sweepId)
    {
        string Datasets(IEnumerable<SweepCellView> cells) =>
            string.Join(", ", cells.Select(c => ParseLabel(c.Label)?.Dataset ?? c.CellId).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal));
        var parts = new List<string>();
        foreach (var (state, verb) in new[] { ("failed", "failed"), ("cancelled", "cancelled") })
        {
            var cells = ledger.Where(c => c.State == state).ToList();
            if (cells.Count > 0) parts.Add($"{cells.Count} cell{(cells.Count == 1 ? "" : "s")} {verb} (datasets: {Datasets(cells)})");
        }
        var open = ledger.Where(c => c.State is "pending" or "running").ToList();
        if (open.Count > 0) parts.Add($"{open.Count} cell{(open.Count == 1 ? "" : "s")} still pending or running (datasets: {Datasets(open)})");
        if (parts.Count == 0) return;
        console.MarkupLine($"[yellow]{Markup.Escape(string.Join("; ", parts))}[/]; not in the tables above; see `fairmedfm status {Markup.Escape(sweepId)}`");
    }

    private static string DidYouMean(string value, IEnumerable<string> known) =>
        Suggest.Near(value, known) is { Count: > 0 } near ? $" (did you mean {Markup.Escape(string.Join(" or ", near))}?)" : "";

    /// <summary>The parts of a cell label (<c>dataset × model × usage × method × attribute × seed N</c>); null when it has another shape.</summary>
    public static (string Dataset, string Model, string Usage, string Method, string Attribute)? ParseLabel(string label)
    {
        var p = label.Split(" × ");
        if (p.Length < 6 || !p[^1].StartsWith("seed ", StringComparison.Ordinal)) return null;
        return (string.Join(" × ", p[..^5]), p[^5], p[^4], p[^3], p[^2]);
    }

    /// <summary><c>matrix SWEEP --cell ID</c>: the cell's metrics (an estimate outside its own interval marked
    /// <see cref="FairMedFM.Engine.Reports.MatrixCell.OutsideIntervalMark"/>), its groups and the first <paramref name="limit"/>
    /// stored per-sample records — classification predictions, or a segmentation cell's per-sample Dice, IoU and HD95.</summary>
    public async Task<int> PrintDrillDownAsync(IAggregatorGrain agg, string sweepId, string cellId, int limit)
    {
        if (limit < 0) { console.MarkupLine($"[red]error:[/] --limit must be a whole number ≥ 0 (got '{limit}')"); return ExitBadInput; }
        CellDrillDown? d;
        try { d = await agg.GetCell(cellId, 0, limit); }
        catch (ArgumentException e) { console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}"); return ExitBadInput; }
        if (d is null) { console.MarkupLine($"[red]error:[/] no cell '{Markup.Escape(cellId)}' in sweep {Markup.Escape(sweepId)}"); return ExitBadInput; }
        PrintDrillDown(d);
        return 0;
    }

    private void PrintDrillDown(CellDrillDown d)
    {
        var c = d.Cell;
        var ci = CultureInfo.InvariantCulture;
        bool seg = FairMedFM.Engine.Segmentation.SegUsages.IsSegmentation(c.Usage) || d.SegSamples is not null;
        console.MarkupLine($"[bold]{c.CellId}[/] {Markup.Escape($"{c.Dataset} × {c.Model} × {c.Usage} × {c.Method} × {c.Attribute} × seed {c.Seed}")}: {c.Phase}{(c.Error is null ? "" : " — " + Markup.Escape(c.Error))}");
        bool marked = false;
        if (c.Metrics.Count > 0)
        {
            var t = new Table().AddColumns("metric", "value");
            foreach (var (k, v) in c.Metrics.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                string text;
                if (v.Value is not { } x) text = $"undefined ({v.Undefined})";
                else
                {
                    text = x.ToString("0.0000", ci) + (v.Lower is { } lo && v.Upper is { } hi ? string.Create(ci, $" [{lo:0.0000}, {hi:0.0000}]") : "");
                    // The same mark the matrix tables and summary.md use: a gap's percentile interval can miss its own estimate.
                    if (FairMedFM.Engine.Reports.MatrixCell.IsOutside(x, v.Lower, v.Upper)) { text += " " + FairMedFM.Engine.Reports.MatrixCell.OutsideIntervalMark; marked = true; }
                }
                t.AddRow(Markup.Escape(k), Markup.Escape(text));
            }
            console.Write(t);
        }
        if (marked) console.MarkupLine($"[grey]{Markup.Escape(FairMedFM.Engine.Reports.MatrixCell.OutsideIntervalNote)}[/]");
        console.MarkupLine("groups: " + Markup.Escape(string.Join(", ", c.Groups.Select(g => seg ? $"{g.Group}: {g.N} (+{g.Positives} scored/−{g.Negatives} skipped)" : $"{g.Group}: {g.N} (+{g.Positives}/−{g.Negatives})"))));
        if (d.Error is not null) console.MarkupLine($"[yellow]{Markup.Escape(d.Error)}[/]");
        if (d.SegSamples is { } samples)
        {
            if (samples.Count == 0) return;
            string N(double? v) => v?.ToString("0.0000", ci) ?? "–";
            var s = new Table().Title($"per-sample records ({samples.Count} of {d.TotalPredictions})")
                .AddColumns("index", "sample", "patient", "group", "prompt", "status", "dice", "iou", "hd95");
            foreach (var r in samples)
                s.AddRow(r.Index.ToString(ci), Markup.Escape(r.SampleId), Markup.Escape(r.PatientId), Markup.Escape(r.Group), Markup.Escape(r.Prompt),
                    Markup.Escape(r.Status == "skipped" && r.SkipReason is { } why ? $"skipped: {why}" : r.Status),
                    N(r.Dice), N(r.Iou), r.Hd95 is null && r.Hd95Undefined is { } u ? Markup.Escape($"undefined ({u})") : N(r.Hd95));
            console.Write(s);
            return;
        }
        if (d.Predictions.Count == 0) return;
        var p = new Table().Title($"predictions ({d.Predictions.Count} of {d.TotalPredictions})").AddColumns("index", "split", "image", "patient", "label", "P(y=1)", "group");
        foreach (var r in d.Predictions)
            p.AddRow(r.Index.ToString(), r.Split, Markup.Escape(r.Image), Markup.Escape(r.PatientId), r.Label.ToString(), r.Probability.ToString("0.0000", ci), Markup.Escape(r.Group));
        console.Write(p);
    }

    private static readonly Option<string> FormatOpt = new("--format") { Description = "csv or json", DefaultValueFactory = _ => "csv" };
    private static readonly Option<string> ResultsOutOpt = new("--out") { Description = "File to write", Required = true };

    private Command Results()
    {
        var cmd = new Command("results", "Export a sweep's cells (ledger state, attempts, reasons, every summary metric with its interval) as CSV or JSON");
        cmd.Arguments.Add(SweepArg);
        cmd.Options.Add(FormatOpt);
        cmd.Options.Add(ResultsOutOpt);
        AddConnection(cmd);
        cmd.Validators.Add(r =>
        {
            if (r.GetValue(FormatOpt) is { Length: > 0 } f && f is not ("csv" or "json")) r.AddError($"--format must be csv or json (got '{r.GetValue(FormatOpt)}')");
        });
        cmd.SetAction((pr, ct) => OnSweep(pr, ct, async (sweep, id) =>
        {
            var ledger = await sweep.GetCells();
            var summaries = (await ClientOf(pr).GetGrain<IAggregatorGrain>(id).GetCells()).ToDictionary(c => c.CellId);
            var path = Path.GetFullPath(pr.GetValue(ResultsOutOpt)!);
            var text = pr.GetValue(FormatOpt) == "json" ? ResultsJson(id, ledger, summaries) : ResultsCsv(ledger, summaries);
            if (OutputFile.Write(path, text, "--out") is { } error)
            {
                console.MarkupLine($"[red]error:[/] {Markup.Escape(error)}");
                return ExitBadInput;
            }
            console.MarkupLine($"{ledger.Count} cell(s) → [link]{Markup.Escape(path)}[/]");
            return 0;
        }));
        return cmd;
    }

    public static string ResultsJson(string sweepId, IReadOnlyList<SweepCellView> ledger, IReadOnlyDictionary<string, CellSummary> summaries)
    {
        var cells = ledger.Select(c => new
        {
            cell_id = c.CellId, label = c.Label, state = c.State, attempts = c.Attempts, reason = c.Reason, errors = c.Errors, device = c.Device, silo = c.Silo,
            summary = summaries.GetValueOrDefault(c.CellId),
        });
        return JsonSerializer.Serialize(new { sweep = sweepId, cells }, JsonDefaults.Pretty);
    }

    public static string ResultsCsv(IReadOnlyList<SweepCellView> ledger, IReadOnlyDictionary<string, CellSummary> summaries)
    {
        var metrics = summaries.Values.SelectMany(s => s.Metrics.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        var sb = new StringBuilder();
        var head = new List<string> { "cell_id", "dataset", "model", "usage", "method", "attribute", "seed", "state", "attempts", "reason" };
        foreach (var m in metrics) head.AddRange(new[] { m, m + ":undefined", m + ":lo", m + ":hi" });
        sb.AppendLine(string.Join(',', head.Select(Csv)));
        string N(double? v) => v?.ToString("R", CultureInfo.InvariantCulture) ?? "";
        foreach (var c in ledger)
        {
            var s = summaries.GetValueOrDefault(c.CellId);
            var row = new List<string> { c.CellId, s?.Dataset ?? "", s?.Model ?? "", s?.Usage ?? "", s?.Method ?? "", s?.Attribute ?? "", s?.Seed.ToString(CultureInfo.InvariantCulture) ?? "",
                c.State, c.Attempts.ToString(CultureInfo.InvariantCulture), c.Reason ?? "" };
            foreach (var m in metrics)
            {
                var v = s?.Metrics.GetValueOrDefault(m);
                row.AddRange(new[] { N(v?.Value), v?.Undefined ?? "", N(v?.Lower), N(v?.Upper) });
            }
            sb.AppendLine(string.Join(',', row.Select(Csv)));
        }
        return sb.ToString();
    }

    private static string Csv(string s) => s.IndexOfAny(new[] { ',', '"', '\n', '\r' }) >= 0 ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    // ---- plumbing ----

    private IClusterClient? _client;
    private IClusterClient ClientOf(ParseResult _) => _client ?? throw new InvalidOperationException("not connected");

    private Task<int> OnSweep(ParseResult pr, CancellationToken ct, Func<ISweepGrain, string, Task<int>> body) =>
        WithCluster(pr, ct, allowEmbedded: false, async (conn, _) =>
        {
            var id = pr.GetValue(SweepArg)!;
            var sweep = conn.Client.GetGrain<ISweepGrain>(id);
            if (!(await sweep.GetStatus()).Exists) return await UnknownSweep(conn.Client, id);
            return await body(sweep, id);
        });

    /// <summary>For commands outside this class (report --sweep): connects through --redis/--gateway (exit 3 when it cannot),
    /// checks that the sweep exists (exit 2 naming the known ones) and runs <paramref name="body"/> with its ledger.</summary>
    public Task<int> OnSweepAsync(ParseResult pr, string sweepId, CancellationToken ct, Func<IClusterClient, IReadOnlyList<SweepCellView>, Task<int>> body) =>
        WithCluster(pr, ct, allowEmbedded: false, async (conn, _) =>
        {
            var sweep = conn.Client.GetGrain<ISweepGrain>(sweepId);
            if (!(await sweep.GetStatus()).Exists) return await UnknownSweep(conn.Client, sweepId);
            return await body(conn.Client, await sweep.GetCells());
        });

    /// <summary>
    /// A sweep's finished cells as the report reads them: each cell's stored result when the aggregator's silo can read it,
    /// else a result made from its summary (metrics, intervals, group sizes; no per-group values); failed cells the aggregator
    /// never heard of come from the ledger with their reason. Returns how many came from summaries only.
    /// </summary>
    public static async Task<(List<FairMedFM.Engine.Cells.CellResult> Results, int SummaryOnly)> FetchResultsAsync(IAggregatorGrain agg, IReadOnlyList<SweepCellView> ledger)
    {
        var results = new List<FairMedFM.Engine.Cells.CellResult>();
        int summaryOnly = 0;
        var summaries = (await agg.GetCells()).ToDictionary(c => c.CellId);
        foreach (var view in ledger)
        {
            if (summaries.TryGetValue(view.CellId, out var s) && s.Phase is JobPhase.Done or JobPhase.Failed)
            {
                FairMedFM.Engine.Cells.CellResult? full = null;
                if (await agg.GetResultJson(s.CellId) is { } json)
                {
                    try { full = JsonSerializer.Deserialize<FairMedFM.Engine.Cells.CellResult>(json, JsonDefaults.Pretty); }
                    catch (JsonException) { full = null; }
                }
                if (full is null) summaryOnly++;
                results.Add(full ?? FromSummary(s));
            }
            else if (view.State == "failed" && ParseLabel(view.Label) is { } l)
            {
                var seed = int.TryParse(view.Label[(view.Label.LastIndexOf("seed ", StringComparison.Ordinal) + 5)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
                results.Add(new FairMedFM.Engine.Cells.CellResult
                {
                    CellId = view.CellId, Status = "failed", Error = view.Reason ?? view.Errors.LastOrDefault() ?? "failed", DatasetName = l.Dataset,
                    Spec = new CellSpec { Dataset = l.Dataset, Model = l.Model, Usage = l.Usage, Method = l.Method, Attribute = l.Attribute, Seed = seed },
                });
            }
        }
        return (results, summaryOnly);
    }

    private static FairMedFM.Engine.Cells.CellResult FromSummary(CellSummary s) => new()
    {
        CellId = s.CellId, Status = s.Phase == JobPhase.Done ? "done" : "failed", Error = s.Error, DatasetName = s.Dataset,
        Spec = new CellSpec { Dataset = s.Dataset, Model = s.Model, Usage = s.Usage, Method = s.Method, Attribute = s.Attribute, Seed = s.Seed },
        Summary = s.Metrics.ToDictionary(kv => kv.Key, kv => new FairMedFM.Engine.Cells.MetricEntry(kv.Value.Value, kv.Value.Undefined, Lower: kv.Value.Lower, Upper: kv.Value.Upper)),
        Groups = s.Groups.Select(g => new FairMedFM.Engine.Cells.GroupResult(g.Group, g.N, g.Positives, g.Negatives, new Dictionary<string, FairMedFM.Engine.Cells.MetricEntry>())).ToList(),
    };

    private async Task<int> UnknownSweep(IClusterClient client, string id)
    {
        var known = (await client.GetGrain<ISweepIndexGrain>("all").List()).Select(e => e.SweepId).ToList();
        console.MarkupLine($"[red]error:[/] no sweep '{Markup.Escape(id)}' in this cluster" + (known.Count > 0 ? $" (known: {Markup.Escape(string.Join(", ", known))})" : " (it has none)"));
        return ExitBadInput;
    }

    /// <summary>Connects (Redis, gateway, or — for submit only — an embedded silo), runs <paramref name="body"/>, and turns
    /// connection and cluster failures into one line and exit code 3.</summary>
    private async Task<int> WithCluster(ParseResult pr, CancellationToken ct, bool allowEmbedded, Func<ClusterConnection, bool, Task<int>> body)
    {
        var gateway = pr.GetValue(Cli.GatewayOpt);
        var redis = pr.GetValue(Cli.RedisOpt) ?? (gateway is null ? Cli.NullIfEmpty(Environment.GetEnvironmentVariable("FAIRMEDFM_REDIS")) : null);
        bool embedded = gateway is null && redis is null;
        if (embedded && !allowEmbedded)
        {
            console.MarkupLine("[red]error:[/] this command needs a running cluster: give --redis CONNECTION (or set $FAIRMEDFM_REDIS) or --gateway HOST:PORT " +
                               "(an embedded silo lives only as long as one command)");
            return ExitUnreachable;
        }
        var ws = Workspace.FromEnvironment(pr.GetValue(Cli.CacheOpt), pr.GetValue(Cli.WeightsOpt));
        ClusterConnection conn;
        try { conn = await ClusterConnection.ConnectAsync(gateway, ws, Math.Max(1, pr.GetValue(Cli.SlotsOpt)), ct, redis: redis); }
        catch (ConnectionSettingsException e)
        {
            console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 2;
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return ExitUnreachable;
        }
        await using (conn)
        {
            _client = conn.Client;
            try { return await body(conn, embedded); }
            catch (Exception e) when (e is OrleansException or TimeoutException or System.Net.Sockets.SocketException)
            {
                console.MarkupLine($"[red]error:[/] the cluster ({Markup.Escape(conn.Description)}) stopped answering: {Markup.Escape(e.Message)}");
                return ExitUnreachable;
            }
            catch (ArgumentException e)
            {
                console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                return ExitBadInput;
            }
        }
    }
}

/// <summary>Writing one output file a user named (results --out, simulate --json): problems in the user's words, naming the option.</summary>
public static class OutputFile
{
    /// <summary>Why <paramref name="path"/> cannot be written (checked before long work), or null.</summary>
    public static string? Problem(string path, string option)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full)) return $"{option} {full} is a folder; give a file name";
        var dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) return $"cannot write {option} {full}: the folder {dir} does not exist";
        var probe = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.probe");
        try { using (File.Create(probe, 1, FileOptions.DeleteOnClose)) { } return null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return $"cannot write {option} {full}: {Reason(e, dir)}"; }
    }

    /// <summary>Writes atomically; returns the problem in the user's words, or null.</summary>
    public static string? Write(string path, string text, string option)
    {
        var full = Path.GetFullPath(path);
        if (Problem(full, option) is { } problem) return problem;
        try { Workspace.WriteAllTextAtomic(full, text); return null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return $"cannot write {option} {full}: {Reason(e, Path.GetDirectoryName(full)!)}"; }
    }

    // The runtime's messages name the temporary file of the atomic write ("Could not find file 'x.json.26d139ac.tmp'"): say what it means.
    private static string Reason(Exception e, string dir) => e switch
    {
        UnauthorizedAccessException => $"no permission to create files in {dir}",
        DirectoryNotFoundException => $"the folder {dir} does not exist",
        FileNotFoundException => $"files cannot be created in {dir}",
        _ => e.Message,
    };
}
