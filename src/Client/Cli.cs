using System.CommandLine;
using FairMedFM.Engine;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Reports;
using FairMedFM.Grains;
using Spectre.Console;

namespace FairMedFM.Client;

/// <summary>The `fairmedfm` command line: runs grids through the grains and prints the fairness matrix.</summary>
public sealed class Cli
{
    private readonly IAnsiConsole _console;

    public Cli(IAnsiConsole? console = null)
    {
        _console = console ?? AnsiConsole.Console;
        // Redirected output (CI logs, files) would otherwise be wrapped at 80 columns.
        if (console is null && Console.IsOutputRedirected) _console.Profile.Width = 160;
    }

    internal static readonly Option<string?> CacheOpt = new("--cache") { Description = "Cache folder for embeddings, converted weights and cell results (default: $FAIRMEDFM_CACHE or ./.fairmedfm)" };
    internal static readonly Option<string?> WeightsOpt = new("--weights") { Description = "Folder holding FM weights (default: $FAIRMEDFM_WEIGHTS or ./weights)" };
    internal static readonly Option<string?> GatewayOpt = new("--gateway") { Description = "Connect to a running silo's gateway (host:port) instead of the embedded in-process silo" };
    internal static readonly Option<string?> RedisOpt = new("--redis") { Description = "Connect to a Redis-clustered FairMedFM cluster (StackExchange.Redis connection string; default $FAIRMEDFM_REDIS when --gateway is not given)" };
    internal static readonly Option<string?> OutOpt = new("--out") { Description = "Output folder for results.json/csv, groups.csv, per-cell files and summary.md" };
    internal static readonly Option<string?> CardOpt = new("--card") { Description = "Use this dataset card instead of the grid's datasets" };
    internal static readonly Option<int> SlotsOpt = new("--slots") { Description = "Trainings run at once in the embedded silo", DefaultValueFactory = _ => 1 };
    internal static readonly Option<bool> PlainOpt = new("--plain") { Description = "Plain progress lines instead of live bars (also used when output is not a terminal)" };

    public RootCommand Build()
    {
        var root = new RootCommand("FairMedFM.NET: fairness benchmark for medical-imaging foundation models");

        var gridOpt = new Option<string>("--grid") { Description = "Grid file (YAML or JSON): datasets × models × usages × methods × attributes × seeds", Required = true };
        var run = new Command("run", "Run a grid through the grains and print the datasets × models fairness matrix");
        foreach (var o in new Option[] { gridOpt, OutOpt, CardOpt, CacheOpt, WeightsOpt, GatewayOpt, RedisOpt, SlotsOpt, PlainOpt }) run.Options.Add(o);
        run.SetAction((pr, ct) => RunAsync(pr.GetValue(gridOpt)!, pr, ct));
        root.Subcommands.Add(run);

        var demo = new Command("demo", "The real NIH chest X-ray sample × ImageNet ResNet-18 × linear probe × {sex, age ≥ 60, age bins, sex × age} × 3 seeds");
        foreach (var o in new Option[] { OutOpt, CardOpt, CacheOpt, WeightsOpt, GatewayOpt, RedisOpt, SlotsOpt, PlainOpt }) demo.Options.Add(o);
        demo.SetAction((pr, ct) =>
        {
            var grid = FindRepoFile(Path.Combine("grids", "nih_demo.yaml"));
            if (grid is null) { _console.MarkupLine("[red]error:[/] grids/nih_demo.yaml not found above the current folder"); return Task.FromResult(2); }
            // Any FM whose weights are present joins the packaged ResNet-18 (with none present the demo runs on it alone).
            var weights = Workspace.FromEnvironment(pr.GetValue(CacheOpt), pr.GetValue(WeightsOpt)).WeightsDir;
            var extra = FairMedFM.Models.ModelZoo.Cards.Where(c => c.WeightsFile is not null && FairMedFM.Models.ModelStatus.Check(c, weights).Available)
                .Select(c => c.Id).ToList();
            return RunAsync(grid, pr, ct, defaultOut: Path.Combine("out", "demo"), extraModels: extra);
        });
        root.Subcommands.Add(demo);

        var models = new Command("models", "Foundation models known to this build");
        var list = new Command("list", "Every model card: how its family was verified, whether its weights are here (or the file to add), feature dim");
        var listPlain = new Option<bool>("--plain") { Description = "Tab-separated rows (one model a line, no wrapping) instead of a table; also used when output is not a terminal" };
        list.Options.Add(WeightsOpt);
        list.Options.Add(listPlain);
        list.SetAction(pr =>
        {
            var weights = Workspace.FromEnvironment(null, pr.GetValue(WeightsOpt)).WeightsDir;
            var rows = new List<(string Id, string Family, string Verified, string Weights, bool Ok, string Feature, string Size, string Norm, string Licence)>();
            foreach (var c in FairMedFM.Models.ModelZoo.Cards)
            {
                var a = FairMedFM.Models.ModelStatus.Check(c, weights);
                rows.Add((c.Id, c.Family, a.Verification, a.Weights, a.Available, c.FeatureDim.ToString(), c.ImageSize.ToString(), c.NormalizationKind, c.License ?? ""));
            }
            // The user's ONNX cards (<weights>/<id>/onnx-card.json), usable or not, with the reason.
            foreach (var (id, card, status, ok) in FairMedFM.Models.Onnx.OnnxImageEncoder.ListCards(weights, FairMedFM.Models.ModelZoo.Cards.Select(c => c.Id)))
                rows.Add((id, FairMedFM.Models.Onnx.OnnxImageEncoder.Family, "runs the user's ONNX file in ONNX Runtime (no port)", status, ok,
                    card is { FeatureDim: > 0 } ? card.FeatureDim.ToString() : "–", card?.ImageSize.ToString() ?? "–", card?.NormalizationKind ?? "–", card?.License ?? ""));
            foreach (var (id, reason) in FairMedFM.Models.ModelStatus.NotYetAvailable)
                rows.Add((id, "–", "not yet available", reason, false, "–", "–", "–", "–"));
            // Promptable segmentation models (SAM family): the feature column holds the cached image-embedding shape.
            foreach (var a in FairMedFM.Models.Sam.SegModelZoo.Status(weights))
                rows.Add((a.Card.Id, a.Card.Family, a.Card.Verification, a.Weights, a.Available, a.Card.EmbeddingShape, a.Card.ImageSize.ToString(), a.Card.NormalizationKind, a.Card.License));
            // The weight-free segmentation baseline (a model id in segmentation grids, the floor to compare FMs with).
            rows.Add((FairMedFM.Engine.Segmentation.OtsuBaseline.Id, "segmentation baseline", "classical algorithm (tests)", "no weights needed", true, "–", "native", "–", "–"));
            foreach (var (id, reason) in FairMedFM.Models.Sam.SegModelZoo.NotYetAvailable)
                rows.Add((id, "segmentation", "not yet available", reason, false, "–", "–", "–", "–"));

            string? note = null;
            int code = 0;
            var given = pr.GetValue(WeightsOpt) ?? Environment.GetEnvironmentVariable("FAIRMEDFM_WEIGHTS");
            if (weights is not null && File.Exists(weights))
            {
                note = $"error: weights folder '{weights}' is a file, not a folder{(given is null ? "" : " (--weights / $FAIRMEDFM_WEIGHTS)")}";
                code = SweepCommands.ExitBadInput;
            }
            else if (weights is not null && !Directory.Exists(weights))
                note = $"note: weights folder '{weights}' does not exist: every model that needs weights shows missing";

            // Piped output is read by scripts (grep, cut): one line per model, tab-separated, ids never wrapped.
            bool plain = pr.GetValue(listPlain) || (ReferenceEquals(_console, AnsiConsole.Console) && Console.IsOutputRedirected);
            if (plain)
            {
                static string Cell(string v) => v.Replace('\t', ' ').Replace('\n', ' ');
                var w = _console.Profile.Out.Writer; // raw lines: a Spectre text would wrap at the console width
                w.WriteLine("id\tfamily\tverified\tweights\tfeature dim\timage size\tnormalisation\tlicence");
                foreach (var r in rows)
                    w.WriteLine(string.Join("\t", new[] { r.Id, r.Family, r.Verified, r.Weights, r.Feature, r.Size, r.Norm, r.Licence }.Select(Cell)));
                if (note is not null) w.WriteLine(note);
                w.WriteLine($"weights folder: {weights ?? "(none: --weights, $FAIRMEDFM_WEIGHTS or ./weights)"}");
                w.Flush();
                return code;
            }
            var t = new Table().AddColumns("id", "family", "verified", "weights", "feature dim", "image size", "normalisation", "licence");
            t.Columns[0].NoWrap();
            foreach (var r in rows)
            {
                var verified = r.Verified == "not yet available" ? "[red]not yet available[/]" : Markup.Escape(r.Verified);
                var status = r.Family == "–" || r.Verified == "not yet available" ? Markup.Escape(r.Weights)
                    : (r.Ok ? "[green]" : "[yellow]") + Markup.Escape(r.Weights) + "[/]";
                t.AddRow(Markup.Escape(r.Id), Markup.Escape(r.Family), verified, status, Markup.Escape(r.Feature), Markup.Escape(r.Size),
                    Markup.Escape(r.Norm), Markup.Escape(r.Licence));
            }
            _console.Write(t);
            if (note is not null) _console.MarkupLine((code == 0 ? "[yellow]" : "[red]") + Markup.Escape(note) + "[/]");
            _console.MarkupLine($"[grey]weights folder: {Markup.Escape(weights ?? "(none: --weights, $FAIRMEDFM_WEIGHTS or ./weights)")}[/]");
            return code;
        });
        models.Subcommands.Add(list);
        root.Subcommands.Add(models);
        root.Subcommands.Add(EvaluateCommand());
        foreach (var c in new SweepCommands(_console).Build()) root.Subcommands.Add(c);
        root.Subcommands.Add(ReportCommand.Build(_console));
        root.Subcommands.Add(SimulateCommand.Build(_console));
        root.Subcommands.Add(SegCommands.SynthSeg(_console));
        return root;
    }

    /// <summary>
    /// Parses and runs <paramref name="args"/>. A usage error (unknown option, missing required option, invalid value) is
    /// bad input: exit 2 with the errors and a pointer to the command's help, not the whole help text.
    /// </summary>
    public async Task<int> InvokeAsync(string[] args, InvocationConfiguration? configuration = null, CancellationToken cancellationToken = default)
    {
        var root = Build();
        var pr = root.Parse(args);
        if (pr.Action is System.CommandLine.Invocation.ParseErrorAction)
        {
            foreach (var e in pr.Errors) _console.MarkupLine($"[red]error:[/] {Markup.Escape(InUserWords(e.Message))}");
            var command = pr.CommandResult.Command;
            // A mistyped command ("runn") gets the nearest command, as a mistyped option gets the nearest option.
            foreach (var t in pr.UnmatchedTokens.Where(t => !t.StartsWith('-')))
                if (Suggest.Near(t, command.Subcommands.Select(c => c.Name).ToList()).FirstOrDefault() is { } cmd)
                    _console.MarkupLine($"did you mean [bold]{Markup.Escape(cmd)}[/]?");
            var options = command.Options.Concat(command.Options.Count == 0 ? Array.Empty<Option>() : root.Options)
                .SelectMany(o => o.Aliases.Prepend(o.Name)).Distinct().ToList();
            foreach (var t in pr.UnmatchedTokens.Where(t => t.StartsWith('-')))
                if (Suggest.Near(t, options).FirstOrDefault() is { } near) _console.MarkupLine($"did you mean [bold]{Markup.Escape(near)}[/]?");
            _console.MarkupLine($"see: [bold]{Markup.Escape(CommandPath(pr.CommandResult))} --help[/]");
            return SweepCommands.ExitBadInput;
        }
        // Ctrl-C / SIGTERM are handled here rather than by System.CommandLine, so that an interruption is known for certain
        // before the command's token is cancelled (any other cancellation is an error, not a quiet exit). A second Ctrl-C
        // is not intercepted: it ends the process at once.
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void OnSignal(System.Runtime.InteropServices.PosixSignalContext c)
        {
            if (_interrupted) return;
            _interrupted = true;
            c.Cancel = true;
            cts.Cancel();
        }
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, OnSignal);
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, OnSignal);
        configuration ??= new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        configuration.ProcessTerminationTimeout = null;
        try
        {
            return await pr.InvokeAsync(configuration, cts.Token);
        }
        catch (OperationCanceledException) when (_interrupted || cancellationToken.IsCancellationRequested)
        {
            // Cells that finished are in the cache (and a cluster's ledger); running cells of a cluster sweep go on there.
            _console.MarkupLine("[yellow]interrupted:[/] cells that finished are kept; run the same command again to go on from there " +
                                "(a cluster sweep keeps running on its silos: fairmedfm watch/status).");
            return ExitInterrupted;
        }
        catch (OperationCanceledException e)
        {
            // Not a user's Ctrl-C: a timeout or shutdown inside a call.
            _console.MarkupLine($"[red]error:[/] the operation was cancelled before it finished ({Markup.Escape(e.Message)})");
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException)
        {
            // An unwritable path or unreadable file that a command did not catch itself: bad input.
            _console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return SweepCommands.ExitBadInput;
        }
    }

    /// <summary>Exit code of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).</summary>
    public const int ExitInterrupted = 130;

    private volatile bool _interrupted;

    /// <summary>System.CommandLine names .NET types in its parse errors ("as expected type 'System.Nullable`1[System.Double]'"):
    /// say what kind of value the option wants instead.</summary>
    internal static string InUserWords(string message) =>
        System.Text.RegularExpressions.Regex.Replace(message, @"as expected type '([^']*)'\.?", m =>
        {
            var t = m.Groups[1].Value;
            return t.Contains("Int32") || t.Contains("Int64") ? "as a whole number."
                : t.Contains("Double") || t.Contains("Single") || t.Contains("Decimal") ? "as a number."
                : t.Contains("Boolean") ? "as true or false."
                : "as a value of this option's kind.";
        });

    private static string CommandPath(System.CommandLine.Parsing.CommandResult result)
    {
        var names = new List<string>();
        for (System.CommandLine.Parsing.SymbolResult? r = result; r is not null; r = r.Parent)
            if (r is System.CommandLine.Parsing.CommandResult c && c.Command is not RootCommand) names.Insert(0, c.Command.Name);
        return string.Join(' ', names.Prepend("fairmedfm"));
    }

    /// <summary><c>fairmedfm evaluate</c>: metrics, intervals and counts for predictions a user brings (logic in Engine/Evaluation).</summary>
    private Command EvaluateCommand()
    {
        var file = new Option<string>("--predictions") { Description = "CSV with a label column, a score column (or per-class scores), attribute column(s), optional patient id and split", Required = true };
        var json = new Option<string?>("--json") { Description = "Where to write every metric, interval and count as JSON (default: <predictions>.metrics.json)" };
        var label = new Option<string>("--label") { Description = "Label column (0/1; class index with --scores)", DefaultValueFactory = _ => "label" };
        var score = new Option<string?>("--score") { Description = "Score column, P(y = 1) (default: score, else prob)" };
        var scores = new Option<string[]>("--scores") { Description = "Per-class score columns in class order (multi-class, one-vs-rest)", AllowMultipleArgumentsPerToken = true };
        var attr = new Option<string[]>("--attribute") { Description = "Sensitive-attribute column; repeat for several (default: group)" };
        var intersect = new Option<bool>("--intersect") { Description = "Also evaluate the intersection of all attributes" };
        var patient = new Option<string?>("--patient") { Description = "Patient id column for clustered bootstrap (default: patient_id when present; --patient= with no value disables)" };
        var split = new Option<string?>("--split") { Description = "Split column: train rows ignored, threshold chosen on validation rows and frozen for test (default: split when present)" };
        var missing = new Option<string?>("--missing-group") { Description = "Group label for missing attribute values (default: a missing value is an error naming the row)" };
        var mode = new Option<string>("--mode") { Description = "default | reference (FairMedFM's own numbers)", DefaultValueFactory = _ => "default" };
        var rule = new Option<string>("--threshold") { Description = "best-f1 | youden | fixed | fixed-specificity", DefaultValueFactory = _ => "best-f1" };
        var value = new Option<double?>("--threshold-value") { Description = "Use this decision threshold (default mode)" };
        var spec = new Option<double>("--specificity") { Description = "Target of fixed-specificity", DefaultValueFactory = _ => 0.9 };
        var boot = new Option<int>("--bootstrap") { Description = "Bootstrap resamples for intervals (0: none)", DefaultValueFactory = _ => 1000 };
        var ci = new Option<string>("--ci") { Description = "percentile | bca", DefaultValueFactory = _ => "percentile" };
        var level = new Option<double>("--ci-level") { Description = "Confidence level", DefaultValueFactory = _ => 0.95 };
        var seed = new Option<long>("--seed") { Description = "Bootstrap seed", DefaultValueFactory = _ => 0 };
        var bins = new Option<int>("--ece-bins") { Description = "ECE bins", DefaultValueFactory = _ => 10 };
        var cmd = new Command("evaluate", "Fairness metrics with bootstrap intervals for your own model's predictions (prints a table, writes JSON)");
        foreach (var o in new Option[] { file, json, label, score, scores, attr, intersect, patient, split, missing, mode, rule, value, spec, boot, ci, level, seed, bins }) cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            // An option that the other options make meaningless is said to be ignored, never silently dropped.
            bool Given(Option o) => pr.GetResult(o) is { Implicit: false };
            if (Given(spec) && pr.GetValue(rule) != "fixed-specificity")
                _console.MarkupLine("[yellow]note:[/] --specificity applies to --threshold fixed-specificity; ignored here");
            if ((Given(ci) || Given(level)) && pr.GetValue(boot) == 0)
                _console.MarkupLine("[yellow]note:[/] --ci and --ci-level apply to bootstrap intervals; ignored with --bootstrap 0");
            try
            {
                var path = pr.GetValue(file)!;
                var preds = FairMedFM.Engine.Evaluation.Predictions.Read(path, new FairMedFM.Engine.Evaluation.PredictionColumns
                {
                    Label = pr.GetValue(label)!, Score = pr.GetValue(score), ClassScores = pr.GetValue(scores),
                    Attributes = pr.GetValue(attr) ?? [], Patient = pr.GetValue(patient), Split = pr.GetValue(split), MissingGroup = pr.GetValue(missing),
                });
                // The output is checked before the bootstrap runs, with the same rules as every other file a command writes.
                var outPath = Path.GetFullPath(pr.GetValue(json) ?? Path.ChangeExtension(path, null) + ".metrics.json");
                if (OutputFile.Problem(outPath, "--json") is { } unwritable) throw new ConfigException(unwritable);
                var result = FairMedFM.Engine.Evaluation.PredictionsEvaluator.Run(preds, new FairMedFM.Engine.Evaluation.EvaluateSettings
                {
                    Mode = pr.GetValue(mode)!, Threshold = pr.GetValue(rule)!, ThresholdValue = pr.GetValue(value), Specificity = pr.GetValue(spec),
                    Bootstrap = pr.GetValue(boot), Ci = pr.GetValue(ci)!, CiLevel = pr.GetValue(level), Seed = pr.GetValue(seed), EceBins = pr.GetValue(bins),
                    Intersections = pr.GetValue(intersect),
                });
                if (OutputFile.Write(outPath, result.ToJson(), "--json") is { } error) throw new ConfigException(error);
                _console.WriteLine(FairMedFM.Engine.Evaluation.PredictionsEvaluator.ToText(result));
                _console.MarkupLine($"JSON: [link]{Markup.Escape(outPath)}[/]");
                return 0;
            }
            catch (Exception e) when (e is FairMedFM.Data.DataException or ConfigException or ArgumentException)
            {
                _console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                return 2;
            }
        });
        return cmd;
    }

    private async Task<int> RunAsync(string gridPath, ParseResult pr, CancellationToken ct, string? defaultOut = null, IReadOnlyList<string>? extraModels = null)
    {
        // An empty path ("--out ''", an unset shell variable) would reach Path.GetFullPath as a .NET message: name the option.
        foreach (var opt in new[] { OutOpt, CardOpt, CacheOpt, WeightsOpt })
            if (pr.GetValue(opt) is { } v && string.IsNullOrWhiteSpace(v))
            {
                _console.MarkupLine($"[red]error:[/] {opt.Name} needs a path (got an empty value)");
                return 2;
            }
        GridSpec grid;
        bool embedded = pr.GetValue(GatewayOpt) is null && (pr.GetValue(RedisOpt) ?? NullIfEmpty(Environment.GetEnvironmentVariable("FAIRMEDFM_REDIS"))) is null;
        try
        {
            grid = GridSpec.Load(gridPath);
            if (pr.GetValue(CardOpt) is { } card)
            {
                if (!File.Exists(card)) throw new ConfigException($"--card {card}: file not found");
                grid.Datasets = new List<string> { Path.GetFullPath(card) };
            }
            foreach (var m in extraModels ?? Array.Empty<string>())
                if (!grid.Models.Contains(m)) grid.Models.Add(m);
            // With the embedded silo this process reads the cards anyway (memoised): a grid none of whose cards loads is bad
            // input, reported once (exit 2) instead of once per cell. Remote silos may see other paths: they judge there.
            if (embedded) grid.CheckDatasets();
        }
        catch (ConfigException e)
        {
            _console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 2;
        }

        var ws = Workspace.FromEnvironment(pr.GetValue(CacheOpt), pr.GetValue(WeightsOpt));
        if (pr.GetValue(WeightsOpt) is { } weightsGiven && File.Exists(ws.WeightsDir))
        {
            _console.MarkupLine($"[red]error:[/] --weights {Markup.Escape(weightsGiven)} is a file; give the folder that holds the weights");
            return 2;
        }
        if (pr.GetValue(WeightsOpt) is not null && embedded && !Directory.Exists(ws.WeightsDir))
            _console.MarkupLine($"[yellow]note:[/] weights folder {Markup.Escape(ws.WeightsDir ?? "")} does not exist: cells of models that need weights will fail");
        var outDir = Path.GetFullPath(pr.GetValue(OutOpt) ?? defaultOut ?? Path.Combine("out", grid.Name));
        // Checked before the sweep, so a bad option never costs a whole run.
        string? early = File.Exists(outDir) ? $"--out {outDir} is a file, not a folder"
            : File.Exists(ws.CacheDir) ? $"--cache {ws.CacheDir} is a file, not a folder"
            : pr.GetValue(SlotsOpt) < 1 ? $"--slots must be at least 1 (got {pr.GetValue(SlotsOpt)})" : null;
        if (early is not null) { _console.MarkupLine($"[red]error:[/] {Markup.Escape(early)}"); return 2; }
        // An unwritable --out is found now, not after every cell has run.
        if (OutputFolder.CheckWritable(outDir) is { } unwritable)
        {
            _console.MarkupLine($"[red]error:[/] cannot write the output folder --out {Markup.Escape(outDir)}: {Markup.Escape(unwritable)}");
            return 2;
        }
        // The embedded silo writes embeddings and cell results there: unwritable means every cell would fail the same way.
        if (embedded && OutputFolder.CheckWritable(ws.CacheDir) is { } noCache)
        {
            _console.MarkupLine($"[red]error:[/] cannot write the cache folder --cache {Markup.Escape(ws.CacheDir)}: {Markup.Escape(noCache)}");
            return 2;
        }
        var cells = grid.Expand();
        _console.MarkupLine($"[bold]{Markup.Escape(grid.Name)}[/]: {cells.Count} cells = {grid.Datasets.Count} dataset(s) × {grid.Models.Count} model(s) × " +
                            $"{grid.Usages.Count} usage(s) × {grid.Methods.Count} method(s) × {grid.Attributes.Count} attribute(s) × {grid.Seeds.Count} seed(s)");

        ClusterConnection conn;
        var gateway = pr.GetValue(GatewayOpt);
        var redis = pr.GetValue(RedisOpt) ?? (gateway is null ? NullIfEmpty(Environment.GetEnvironmentVariable("FAIRMEDFM_REDIS")) : null);
        try { conn = await ClusterConnection.ConnectAsync(gateway, ws, pr.GetValue(SlotsOpt), ct, redis: redis); }
        catch (ConnectionSettingsException e)
        {
            _console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 2;
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // Ctrl-C while connecting is an interruption (exit 130), not an unreachable cluster.
            if (ct.IsCancellationRequested) throw new OperationCanceledException(ct);
            _console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 3;
        }

        await using (conn)
        {
            _console.MarkupLine($"[grey]grains on {Markup.Escape(conn.Where(ws))}[/]");
            var forwardsBefore = FairMedFM.Engine.Embeddings.EmbeddingStore.BackboneForwardImages;
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var outcome = await RunWithProgress(conn.Client, grid, pr.GetValue(PlainOpt), ct);
            sw.Stop();

            try
            {
                ResultWriter.Write(outDir, grid.Name, outcome.Results);
                // A reused --out folder must not keep an earlier run's per-cell files that this run's results.csv does not list.
                OutputFolder.RemoveStaleCellFiles(outDir, outcome.Results.Select(r => r.CellId));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The cells themselves are kept in the cache: a rerun with a writable --out costs nothing.
                _console.MarkupLine($"[red]error:[/] cannot write the output folder {Markup.Escape(outDir)}: {Markup.Escape(e.Message)} (results are kept in {Markup.Escape(ws.ResultsDir)})");
                return 2;
            }
            await PrintMatrix(conn.Client, outcome);
            var failed = outcome.Results.Where(r => r.Status != "done").ToList();
            // Cells that failed with the same dataset and reason are listed once (a bad card fails every cell that uses it).
            foreach (var line in ResultWriter.FailureLines(outcome.Results))
                _console.MarkupLine($"[red]failed[/] {Markup.Escape(line)}");
            // A 3-D volume with no slice holding the target is reported, never dropped silently.
            foreach (var line in ResultWriter.SkippedVolumeLines(outcome.Results))
                _console.MarkupLine($"[yellow]skipped[/] {Markup.Escape(line)}");
            var forwards = FairMedFM.Engine.Embeddings.EmbeddingStore.BackboneForwardImages - forwardsBefore;
            _console.MarkupLine($"{outcome.Results.Count - failed.Count} done, {failed.Count} failed in {sw.Elapsed.TotalSeconds:0.0} s; " +
                                $"backbone forward passes in this process: {forwards} images" + (gateway is null && redis is null ? "" : " (remote silos not counted)"));
            _console.MarkupLine($"results: [link]{Markup.Escape(outDir)}[/] (results.json, results.csv, groups.csv, cells/, summary.md)");
            return failed.Count == 0 ? 0 : 1;
        }
    }

    private async Task<SweepOutcome> RunWithProgress(IClusterClient client, GridSpec grid, bool plain, CancellationToken ct)
    {
        if (plain || !_console.Profile.Capabilities.Interactive)
        {
            // Progress<T> posts each report to the thread pool: without the gate a late report could write while the
            // tables are printed (interleaved or lost text), so reports stop, under the lock, once the sweep has returned.
            string last = "";
            var gate = new object();
            bool finished = false;
            var p = new Progress<SweepProgress>(s =>
            {
                lock (gate)
                {
                    if (finished) return;
                    var line = Describe(s);
                    if (line != last) { _console.WriteLine(line); last = line; }
                }
            });
            var result = await SweepDriver.RunAsync(client, grid, p, ct: ct);
            lock (gate) finished = true;
            return result;
        }

        SweepOutcome? outcome = null;
        await _console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async ctx =>
            {
                var cellsTask = ctx.AddTask("cells", maxValue: grid.Expand().Select(c => c.CellId).Distinct().Count());
                var embTask = ctx.AddTask("embeddings", maxValue: 1);
                var p = new Progress<SweepProgress>(s =>
                {
                    cellsTask.Value = s.Done + s.Failed;
                    cellsTask.Description = Markup.Escape(Describe(s));
                    var emb = s.Cells.Where(c => c.Stage == "embeddings" && c.Total > 0).MaxBy(c => c.Total);
                    if (emb is not null) { embTask.MaxValue = emb.Total; embTask.Value = emb.Done; embTask.Description = $"embeddings {emb.Done}/{emb.Total} images"; }
                    else if (s.Cells.All(c => c.Stage != "embeddings" && c.Stage != "dataset")) { embTask.Value = embTask.MaxValue; embTask.Description = "embeddings ready"; }
                });
                outcome = await SweepDriver.RunAsync(client, grid, p, ct: ct);
                cellsTask.Value = cellsTask.MaxValue;
            });
        return outcome!;
    }

    private static string Describe(SweepProgress s)
    {
        var stages = s.Cells.Where(c => !c.IsFinished).GroupBy(c => c.Stage).Select(g => $"{g.Count()} {g.Key}");
        var emb = s.Cells.FirstOrDefault(c => c.Stage == "embeddings" && c.Total > 0);
        var embText = emb is null ? "" : $" (embeddings {emb.Done}/{emb.Total})";
        return $"cells: {s.Done} done, {s.Failed} failed, {s.Running} running [{string.Join(", ", stages)}]{embText}";
    }

    /// <summary>Per attribute: AUC, AUC gap and EOD (mean ± sd over seeds) with the test-set group sizes, from the aggregator grain.</summary>
    private async Task PrintMatrix(IClusterClient client, SweepOutcome outcome)
    {
        var agg = client.GetGrain<IAggregatorGrain>(outcome.AggregatorKey);
        var wanted = outcome.Specs.Select(s => s.CellId).ToHashSet();
        var cells = (await agg.GetCells()).Where(c => wanted.Contains(c.CellId) && c.Phase == JobPhase.Done).ToList();
        // Slices in the grid's own order (attributes as the user listed them).
        var order = outcome.Specs.Select(s => (s.Usage, s.Method, s.Attribute)).Distinct().ToList();
        bool marked = false;
        foreach (var (usage, method, attribute) in order.Where(o => cells.Any(c => (c.Usage, c.Method, c.Attribute) == o)))
        {
            bool seg = FairMedFM.Engine.Segmentation.SegUsages.IsSegmentation(usage);
            var metrics = seg ? new[] { ("mean_dice", "Dice"), ("delta_dice", "Dice gap"), ("es_dice", "ES-Dice") }
                              : new[] { ("overall-auc", "AUC"), ("auc-gap", "AUC gap"), ("eod", "EOD") };
            var views = new List<MatrixView>();
            foreach (var (key, _) in metrics) views.Add(await agg.GetMatrix(usage, method, attribute, key));
            var table = new Table().Title($"[bold]{Markup.Escape(usage)} · {Markup.Escape(method)} · attribute {Markup.Escape(attribute)}[/]");
            table.AddColumn("dataset").AddColumn("model");
            foreach (var (_, label) in metrics) table.AddColumn(label);
            table.AddColumn(seg ? "groups, first seed: n (+scored/−skipped)" : "test groups, first seed: n (+pos/−neg)");
            foreach (var ds in views[0].Datasets)
            foreach (var model in views[0].Models)
            {
                var first = views[0].Cells.FirstOrDefault(c => c.Dataset == ds && c.Model == model);
                if (first is null) continue;
                var row = new List<string> { Markup.Escape(ds), Markup.Escape(model) };
                foreach (var v in views) row.Add(Markup.Escape(v.Cells.FirstOrDefault(c => c.Dataset == ds && c.Model == model)?.Text ?? "–"));
                marked |= row.Any(t => t.Contains(MatrixCell.OutsideIntervalMark, StringComparison.Ordinal));
                row.Add(Markup.Escape(string.Join("\n", first.GroupSizes.Select(g => $"{g.Group}: {g.N} (+{g.Positives}/−{g.Negatives})"))));
                table.AddRow(row.ToArray());
            }
            _console.Write(table);
            if (seg) marked |= PrintSegGroups(outcome.Results, usage, method, attribute);
        }
        _console.MarkupLine("[grey]Mean ± sd over seeds; [[lo, hi]] bootstrap interval (mean of the per-seed bounds). EOD is FairMedFM's equalized-odds score 1 − (ΔTPR + ΔTNR)/2 (1 = equal); gaps are max − min over groups." +
                            (outcome.Specs.Any(s => FairMedFM.Engine.Segmentation.SegUsages.IsSegmentation(s.Usage)) ? " Segmentation: mean Dice over scored samples, Dice gap = max − min group mean, ES-Dice = Dice / (1 + std of the group means)." : "") + "[/]");
        if (marked) _console.MarkupLine($"[grey]{Markup.Escape(MatrixCell.OutsideIntervalNote)}[/]");
    }

    /// <summary>A segmentation slice's per-group Dice, IoU and HD95 (and per-volume Dice for sliced volumes) with their intervals.</summary>
    /// <returns>Whether a printed value carries <see cref="MatrixCell.OutsideIntervalMark"/>.</returns>
    private bool PrintSegGroups(IReadOnlyList<CellResult> results, string usage, string method, string attribute)
    {
        var metrics = new List<(string Key, string Label)> { ("dice", "Dice"), ("iou", "IoU"), ("hd95", "HD95 (px)") };
        if (results.Any(r => r.Spec.Usage == usage && r.Groups?.Any(g => g.Values.ContainsKey("vol_dice")) == true)) metrics.Add(("vol_dice", "Dice per volume"));
        var columns = metrics.Select(m => FairMedFM.Engine.Reports.FairnessMatrix.GroupValues(results, usage, method, attribute, m.Key)).ToList();
        if (columns[0].Count == 0) return false;
        bool marked = false;
        var table = new Table().Title($"[bold]{Markup.Escape(usage)} · {Markup.Escape(method)} · attribute {Markup.Escape(attribute)}: per group[/]");
        table.AddColumn("dataset").AddColumn("model").AddColumn("group").AddColumn("n (+scored/−skipped)");
        foreach (var (_, label) in metrics) table.AddColumn(label);
        for (int i = 0; i < columns[0].Count; i++)
        {
            var (ds, model, group, first) = columns[0][i];
            var size = first.GroupSizes[0];
            var row = new List<string> { Markup.Escape(ds), Markup.Escape(model), Markup.Escape(group), $"{size.N} (+{size.Positives}/−{size.Negatives})" };
            foreach (var col in columns)
                row.Add(Markup.Escape(col.FirstOrDefault(c => c.Dataset == ds && c.Model == model && c.Group == group).Cell?.Format() ?? "–"));
            marked |= row.Any(t => t.Contains(MatrixCell.OutsideIntervalMark, StringComparison.Ordinal));
            table.AddRow(row.ToArray());
        }
        _console.Write(table);
        return marked;
    }

    internal static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    /// <summary>Finds a file shipped in the repository, looking up from the current folder and from the program's folder.</summary>
    public static string? FindRepoFile(string relative)
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, relative);
                if (File.Exists(candidate)) return candidate;
            }
        }
        return null;
    }
}
