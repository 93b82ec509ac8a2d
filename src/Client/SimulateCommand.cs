using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FairMedFM.Engine;
using FairMedFM.Engine.Scheduling;
using FairMedFM.Engine.Simulation;
using Spectre.Console;

namespace FairMedFM.Client;

/// <summary>
/// <c>fairmedfm simulate</c>: a discrete-event simulation of a whole sweep on N simulated GPUs, driven by the real sweep ledger
/// and slot scheduler (logic in Engine/Simulation); prints makespan, utilisation and the scheduler's own overhead per cell.
/// </summary>
public static class SimulateCommand
{
    public static Command Build(IAnsiConsole console)
    {
        var devices = new Option<string>("--devices") { Description = "Comma-separated GPU counts to simulate", DefaultValueFactory = _ => "1,8,64" };
        var datasets = new Option<int>("--datasets") { Description = "First N datasets of the calibration (17 = every FairMedFM dataset; more repeat them as replicas)", DefaultValueFactory = _ => 17 };
        var models = new Option<int>("--models") { Description = "First N FMs of the calibration (20 = the paper's FMs; more repeat them as replicas)", DefaultValueFactory = _ => 20 };
        var usages = new Option<int>("--usages") { Description = "First N usages: lp, clip-zs, clip-adapt, lora", DefaultValueFactory = _ => 4 };
        var methods = new Option<int>("--methods") { Description = "First N methods: erm, resampling, group-dro, laftr", DefaultValueFactory = _ => 3 };
        var seeds = new Option<int>("--seeds") { Description = "Seeds per cell", DefaultValueFactory = _ => 3 };
        var attributes = new Option<int>("--attributes") { Description = "Sensitive attributes per cell (sex, age, race, …)", DefaultValueFactory = _ => 1 };
        var costs = new Option<string?>("--costs") { Description = "JSON file merged over the built-in cost calibration (objects key by key, lists replace); --print-costs shows the built-in one" };
        var printCosts = new Option<bool>("--print-costs") { Description = "Print the built-in cost calibration (with its sources) and exit" };
        var failureRate = new Option<double>("--failure-rate") { Description = "Probability that an attempt fails (transient; retried through the ledger's retry budget and backoff)", DefaultValueFactory = _ => 0 };
        var maxAttempts = new Option<int>("--max-attempts") { Description = "Retry budget: attempts per cell", DefaultValueFactory = _ => new RetryPolicy().MaxAttempts };
        var seed = new Option<int>("--seed") { Description = "Seed of the failure draws", DefaultValueFactory = _ => 0 };
        var perSilo = new Option<int>("--devices-per-silo") { Description = "GPUs per simulated silo", DefaultValueFactory = _ => 8 };
        var slots = new Option<int>("--slots-per-device") { Description = "Cells per GPU at once", DefaultValueFactory = _ => 1 };
        var order = new Option<string>("--order") { Description = "longest-first (the cost model's estimate as the ledger's cost hint) | submission | both", DefaultValueFactory = _ => "longest-first" };
        var json = new Option<string?>("--json") { Description = "Also write every figure (per-device utilisation included) to this JSON file" };

        var cmd = new Command("simulate", "Simulate a full sweep on N GPUs with the real ledger and scheduler: makespan, utilisation, scheduler overhead per cell");
        foreach (var o in new Option[] { devices, datasets, models, usages, methods, seeds, attributes, costs, printCosts, failureRate, maxAttempts, seed, perSilo, slots, order, json })
            cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            try
            {
                if (pr.GetValue(printCosts)) { console.Profile.Out.Writer.WriteLine(CostCalibration.DefaultJson()); return 0; }
                var counts = ParseDevices(pr.GetValue(devices)!);
                var orders = pr.GetValue(order) switch
                {
                    "longest-first" => new[] { true },
                    "submission" => new[] { false },
                    "both" => new[] { false, true },
                    var o => throw new ArgumentException($"--order '{o}' is not one of: longest-first, submission, both"),
                };
                var costsPath = pr.GetValue(costs);
                var model = new SweepCostModel(CostCalibration.Load(costsPath));
                var shape = new GridShape(pr.GetValue(datasets), pr.GetValue(models), pr.GetValue(usages), pr.GetValue(methods), pr.GetValue(seeds), pr.GetValue(attributes));
                var jobs = model.Jobs(shape);
                var retry = new RetryPolicy { MaxAttempts = pr.GetValue(maxAttempts) };
                // Every option is checked before the first line is printed: a bad one is one error line, nothing else.
                if (!(pr.GetValue(failureRate) is var rate && rate >= 0 && rate <= 1))
                    throw new ArgumentException($"--failure-rate must be in [0, 1] (got {pr.GetValue(failureRate).ToString(CultureInfo.InvariantCulture)})");
                foreach (var n in counts)
                    new SimulationOptions { Devices = n, DevicesPerSilo = pr.GetValue(perSilo), SlotsPerDevice = pr.GetValue(slots), FailureRate = pr.GetValue(failureRate), Retry = retry }.Validate();
                if (pr.GetValue(json) is { } jsonTarget && OutputFile.Problem(jsonTarget, "--json") is { } unwritable) throw new ArgumentException(unwritable);
                var g = model.Calibration.Gpu;
                console.MarkupLine($"[bold]Sweep:[/] {Markup.Escape(shape.ToString())}");
                double work = jobs.Sum(j => j.ComputeSeconds) + jobs.Where(j => j.CacheKey is not null).DistinctBy(j => j.CacheKey).Sum(j => j.EmbeddingSeconds);
                var longest = jobs.MaxBy(j => j.ComputeSeconds + j.EmbeddingSeconds)!;
                console.MarkupLine($"[bold]Cost model:[/] {Markup.Escape(costsPath is null ? "built-in calibration" : $"built-in calibration merged with {costsPath}")}; GPU = {g.Speedup:0.#} × the measured 2-core CPU throughput; " +
                                   $"total work {Hours(work)} GPU-hours; longest cell {Markup.Escape(longest.Label)} {Hours(longest.ComputeSeconds + (longest.CacheKey is null ? 0 : longest.EmbeddingSeconds))} h");
                console.MarkupLine($"[bold]Failures:[/] rate {pr.GetValue(failureRate).ToString(CultureInfo.InvariantCulture)}, {retry.MaxAttempts} attempts per cell, backoff {retry.InitialBackoff.TotalSeconds:0} s × {retry.BackoffFactor:0.#}^k (≤ {retry.MaxBackoff.TotalSeconds:0} s); seed {pr.GetValue(seed)}");

                var results = new List<SimulationResult>();
                var t = new Table().AddColumns("GPUs", "silos", "order", "makespan", "bound", "util.", "per GPU", "done", "failed", "retries",
                    "embeds", "emb. wait", "sched. µs/cell", "p99 µs", "wall");
                foreach (var n in counts)
                    foreach (var hinted in orders)
                    {
                        var r = SweepSimulator.Run(jobs, new SimulationOptions
                        {
                            Devices = n, DevicesPerSilo = pr.GetValue(perSilo), SlotsPerDevice = pr.GetValue(slots), FailureRate = pr.GetValue(failureRate),
                            Seed = pr.GetValue(seed), UseCostHints = hinted, Retry = retry,
                        });
                        results.Add(r);
                        t.AddRow(n.ToString(), r.Silos.ToString(), r.Order, Duration(r.MakespanSeconds), Duration(r.LowerBoundSeconds),
                            (r.Utilisation >= 0.95 ? "[green]" : "[yellow]") + $"{r.Utilisation * 100:0.0} %[/]",
                            $"{r.PerDevice.Min(d => d.Utilisation) * 100:0.#}–{r.PerDevice.Max(d => d.Utilisation) * 100:0.#}",
                            r.Done.ToString("N0"), r.Failed.ToString("N0"), r.Retries.ToString("N0"), r.EmbeddingsComputed.ToString("N0"),
                            $"{r.EmbeddingWaitSeconds / 3600:0.0} h", $"{r.OverheadMeanMicroseconds:0.0}", $"{r.OverheadP99Microseconds:0.0}", $"{r.SimulationWallSeconds:0.00} s");
                    }
                console.Write(t);
                console.MarkupLine("[grey]util. = GPU-seconds computing ÷ (GPUs × makespan), per GPU = its min–max in %; bound = max(total work ÷ GPUs, longest cell): no order finishes sooner; " +
                                   "embeds = embedding-cache entries computed, emb. wait = slot time spent waiting for another cell's embedding; sched. = measured wall time of the real " +
                                   "SweepLedger and SlotScheduler calls per dispatched cell (dispatch-round share, start, completion report, slot release), mean and p99.[/]");
                if (File.Exists("/proc/loadavg"))
                    console.MarkupLine($"[grey]load average while simulating: {Markup.Escape(File.ReadAllText("/proc/loadavg").Split(' ')[0])} on {Environment.ProcessorCount} cores (scheduler times are wall times).[/]");
                if (pr.GetValue(json) is { } jsonPath)
                {
                    var doc = new JsonObject
                    {
                        ["grid"] = JsonSerializer.SerializeToNode(shape, JsonDefaults.Pretty),
                        ["cells"] = jobs.Count,
                        ["total_work_seconds"] = work,
                        ["failure_rate"] = pr.GetValue(failureRate),
                        ["seed"] = pr.GetValue(seed),
                        ["costs_file"] = costsPath is null ? null : Path.GetFullPath(costsPath),
                        ["calibration"] = JsonSerializer.SerializeToNode(model.Calibration, CostCalibration.JsonOptions),
                        ["results"] = JsonSerializer.SerializeToNode(results, JsonDefaults.Pretty),
                    };
                    var full = Path.GetFullPath(jsonPath);
                    if (OutputFile.Write(full, doc.ToJsonString(JsonDefaults.Pretty), "--json") is { } error) throw new ArgumentException(error);
                    console.MarkupLine($"JSON: [link]{Markup.Escape(full)}[/]");
                }
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException or FileNotFoundException)
            {
                console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                return 2;
            }
        });
        return cmd;
    }

    private static IReadOnlyList<int> ParseDevices(string text)
    {
        var list = new List<int>();
        foreach (var p in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1 || n > 100_000)
                throw new ArgumentException($"--devices: '{p}' is not a GPU count between 1 and 100000");
            list.Add(n);
        }
        if (list.Count == 0) throw new ArgumentException("--devices: give at least one GPU count, e.g. 1,8,64");
        return list;
    }

    private static string Hours(double seconds) => (seconds / 3600).ToString("N1", CultureInfo.InvariantCulture);

    private static string Duration(double seconds) =>
        seconds >= 2 * 86400 ? $"{seconds / 86400:0.0} d" : seconds >= 2 * 3600 ? $"{seconds / 3600:0.0} h" : seconds >= 120 ? $"{seconds / 60:0.0} min" : $"{seconds:0.0} s";
}
