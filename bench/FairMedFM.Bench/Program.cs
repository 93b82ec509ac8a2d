using System.Diagnostics;
using FairMedFM.Data;
using FairMedFM.Engine;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Embeddings;
using FairMedFM.Models;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;
using static TorchSharp.torch;

// Benchmarks, not tests: figures and ratios against a peer measured in the same run.
//   embed  – backbone throughput (images/s) at 224² for ResNet-18/50, and the packaged CNTK ResNet-18 in TorchSharp
//            against ONNX Runtime running the very same ONNX file.
//   sweep  – backbone forward passes of a sweep with the embedding cache against FairMedFM's way (full forward every
//            epoch); with --measure it also runs the sweep's cells on a fresh cache and counts the real forwards.
//   metrics – all classification metrics with stratified bootstrap intervals (default 1,000 resamples, 100,000 samples,
//            3 groups) against a plain loop that materialises each resample and recomputes everything per group.
//   seg    – SAM-family masks/s at real sizes without the per-image embedding cache (encoder + decoder per mask) and
//            with it (decoder only, embedding read from SegEmbeddingStore), and the ratio.
return BenchMain.Run(args, Console.Error);

/// <summary>Entry point of the benchmarks: bad options are one line on stderr and exit 2, never a crash.</summary>
public static class BenchMain
{
    public const string Usage =
        "usage: bench [embed [--batches N] | zoo [--batches N] | sweep [--grid FILE] [--measure] | metrics [--n N] [--resamples B] [--naive B'] " +
        "[--mode default|reference] | seg [--images N] [--masks M] [--models ID,…] | all]  (all = embed, sweep, metrics, seg; zoo builds every " +
        "family at real size and is too slow for all: run it on its own)";

    public static int Run(string[] args, TextWriter error)
    {
        var cmd = args.FirstOrDefault() ?? "all";
        var rest = args.Skip(1).ToArray();
        try
        {
            switch (cmd)
            {
                case "embed": Bench.Embed(rest); break;
                case "zoo": Bench.Zoo(rest); break;
                case "sweep": Bench.Sweep(rest); break;
                case "metrics": MetricsBench.Run(rest); break;
                case "seg": SegBench.Run(rest); break;
                case "all":
                    // Every option is checked before the first benchmark starts: a typo must not cost the earlier ones' time.
                    Bench.CheckEmbed(rest); Bench.CheckSweep(rest); MetricsBench.Check(rest); SegBench.Check(rest);
                    Bench.Embed(rest); Bench.Sweep(rest); MetricsBench.Run(rest); SegBench.Run(rest);
                    break;
                default:
                    error.WriteLine($"error: unknown benchmark '{cmd}'");
                    error.WriteLine(Usage);
                    return 2;
            }
        }
        catch (Exception e) when (e is BenchUsageException or ConfigException or FairMedFM.Data.DataException or InvalidDataException
                                      or FileNotFoundException or DirectoryNotFoundException or ArgumentException)
        {
            error.WriteLine($"error: {e.Message.Split('\n')[0]}");
            return 2;
        }
        return 0;
    }
}

/// <summary>A benchmark option that is missing its value, not a number, or out of range.</summary>
public sealed class BenchUsageException(string message) : Exception(message);

/// <summary>Reads benchmark options: a value that is not an integer in range is a <see cref="BenchUsageException"/> naming the flag.</summary>
public static class BenchOpts
{
    public static string? Opt(string[] a, string name)
    {
        var i = Array.IndexOf(a, name);
        if (i < 0) return null;
        if (i + 1 >= a.Length || a[i + 1].StartsWith("--", StringComparison.Ordinal)) throw new BenchUsageException($"{name} needs a value");
        return a[i + 1];
    }

    public static int Int(string[] a, string name, int fallback, int min)
    {
        var v = Opt(a, name);
        if (v is null) return fallback;
        if (!int.TryParse(v, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n))
            throw new BenchUsageException($"{name} must be a whole number, not '{v}'");
        if (n < min) throw new BenchUsageException($"{name} must be at least {min}, not {n}");
        return n;
    }
}

static class Bench
{
    static string? Opt(string[] a, string name) => BenchOpts.Opt(a, name);

    public static void CheckEmbed(string[] a) => BenchOpts.Int(a, "--batches", 3, 1);

    /// <summary>The grid file (given or the demo grid), which must exist.</summary>
    public static string CheckSweep(string[] a)
    {
        var given = Opt(a, "--grid");
        var path = given ?? FindRepoFile(Path.Combine("grids", "nih_demo.yaml")) ?? throw new BenchUsageException("grids/nih_demo.yaml not found above the bench; give --grid FILE");
        if (!File.Exists(path)) throw new BenchUsageException($"--grid: '{path}' not found");
        return path;
    }

    public static void Embed(string[] a)
    {
        int batches = BenchOpts.Int(a, "--batches", 3, 1);
        const int batch = 8;
        Console.WriteLine($"# Backbone throughput at 224², CPU, {Environment.ProcessorCount} cores, torch threads {torch.get_num_threads()}, batch {batch}, {batches} timed batches after 1 warm-up");
        Console.WriteLine("| model | images/s | ms/image | ratio to resnet18 |");
        Console.WriteLine("|---|---|---|---|");
        double r18 = 0;
        foreach (var (name, cfg) in new[] { ("resnet18 (torchvision layout)", ResNetConfig.ResNet18), ("resnet50 (torchvision layout)", ResNetConfig.ResNet50) })
        {
            using var model = new ResNet("bench", cfg with { NumClasses = 0 });
            model.eval();
            var ips = Throughput(x => model.ForwardFeatures(x), batch, batches);
            if (r18 == 0) r18 = ips;
            Console.WriteLine($"| {name} | {ips:0.0} | {1000 / ips:0.0} | {ips / r18:0.00} |");
        }

        var cache = Path.Combine(Path.GetTempPath(), "fairmedfm-bench-models");
        using var cntk = OnnxResNetImporter.LoadCntkResNet18(PackagedModels.ResNet18OnnxPath, cache);
        var torchBatched = Throughput(x => cntk.ForwardFeatures(x), batch, batches);
        var torchSingle = Throughput(x => cntk.ForwardFeatures(x), 1, batches * batch);
        Console.WriteLine($"| resnet18-imagenet-cntk (TorchSharp, batch {batch}) | {torchBatched:0.0} | {1000 / torchBatched:0.0} | {torchBatched / r18:0.00} |");
        Console.WriteLine($"| resnet18-imagenet-cntk (TorchSharp, batch 1) | {torchSingle:0.0} | {1000 / torchSingle:0.0} | {torchSingle / r18:0.00} |");

        // Peer: ONNX Runtime on the same file (its graph has a fixed batch of 1).
        using var opts = new SessionOptions { IntraOpNumThreads = Environment.ProcessorCount, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        using var session = new InferenceSession(PackagedModels.ResNet18OnnxPath, opts);
        var inputName = session.InputMetadata.Keys.First();
        var input = new DenseTensor<float>(RandomImage(1), new[] { 1, 3, 224, 224 });
        void RunOrt() { using var r = session.Run(new[] { NamedOnnxValue.CreateFromTensor(inputName, input) }); }
        RunOrt();
        var sw = Stopwatch.StartNew();
        int n = batches * batch;
        for (int i = 0; i < n; i++) RunOrt();
        var ort = n / sw.Elapsed.TotalSeconds;
        Console.WriteLine($"| resnet18-imagenet-cntk (ONNX Runtime 1.32, batch 1) | {ort:0.0} | {1000 / ort:0.0} | {ort / r18:0.00} |");
        Console.WriteLine($"TorchSharp/ONNX Runtime on the same network: batch 1 ×{torchSingle / ort:0.00}, batch {batch} ×{torchBatched / ort:0.00}");

        // Pre-processing (decode + PIL-exact bicubic resize + crop + normalise) per image, for the real 64×64 sample.
        var shared = Environment.GetEnvironmentVariable("FAIRMEDFM_SHARED") ?? FindShared();
        if (shared is not null)
        {
            var images = Directory.GetFiles(Path.Combine(shared, "data", "nih_chestxray14_64px", "images"), "*.png").Take(200).ToArray();
            var spec = new PreprocessingSpec();
            sw.Restart();
            Parallel.ForEach(images, p => ImagePipeline.Run(p, spec, MeanStdNormalization.ChestXray));
            Console.WriteLine($"pre-processing (decode → bicubic 224 → crop → normalise), {images.Length} NIH images: {images.Length / sw.Elapsed.TotalSeconds:0} images/s");
        }
    }

    /// <summary>Every ported family at its real size (random weights: speed does not depend on them) against ResNet-18.</summary>
    public static void Zoo(string[] a)
    {
        int batches = BenchOpts.Int(a, "--batches", 2, 1);
        const int batch = 8;
        Console.WriteLine($"# Image-encoder throughput per family at real size, 224², CPU, {Environment.ProcessorCount} cores, batch {batch}, {batches} timed batches");
        Console.WriteLine("| family (model) | parameters | images/s | ratio to resnet18 |");
        Console.WriteLine("|---|---|---|---|");
        var entries = new (string Name, Func<torch.nn.Module> Build, Func<torch.nn.Module, torch.Tensor, torch.Tensor> Run)[]
        {
            ("resnet (resnet18)", () => new ResNet("r18", ResNetConfig.ResNet18 with { NumClasses = 0 }), (m, x) => ((ResNet)m).ForwardFeatures(x)),
            ("resnet (resnet50)", () => new ResNet("r50", ResNetConfig.ResNet50 with { NumClasses = 0 }), (m, x) => ((ResNet)m).ForwardFeatures(x)),
            ("clip (ViT-B/32 image tower)", () => new FairMedFM.Models.Clip.ClipModel(FairMedFM.Models.Clip.ClipConfig.ViTB32), (m, x) => ((FairMedFM.Models.Clip.ClipModel)m).EncodeImage(x)),
            ("timm-vit (ViT-B/16, MedMAE)", () => new FairMedFM.Models.Vit.VisionTransformer("vit", FairMedFM.Models.Vit.VitConfig.VitBase16), (m, x) => ((FairMedFM.Models.Vit.VisionTransformer)m).ForwardPooled(x)),
            ("dinov2 (ViT-B/14 at 224)", () => new FairMedFM.Models.Vit.DinoVisionTransformer("dino", FairMedFM.Models.Vit.DinoV2Config.VitB14), (m, x) => ((FairMedFM.Models.Vit.DinoVisionTransformer)m).forward(x)),
            ("sam-vit (LVM-Med ViT-B at 224)", () => new FairMedFM.Models.Vit.SamImageEncoderViT("sam", FairMedFM.Models.Vit.SamVitConfig.LvmMedVitB), (m, x) => ((FairMedFM.Models.Vit.SamImageEncoderViT)m).ForwardPooled(x)),
        };
        double r18 = 0;
        foreach (var (name, build, run) in entries)
        {
            using var model = build();
            model.eval();
            long parameters = model.parameters().Sum(p => p.numel());
            var ips = Throughput(x => run(model, x), batch, batches);
            if (r18 == 0) r18 = ips;
            Console.WriteLine($"| {name} | {parameters / 1e6:0.0} M | {ips:0.00} | {ips / r18:0.00} |");
        }
    }

    static double Throughput(Func<torch.Tensor, torch.Tensor> f, int batch, int batches)
    {
        using var _ = torch.inference_mode();
        using (var scope = torch.NewDisposeScope()) f(torch.tensor(RandomImage(batch), new long[] { batch, 3, 224, 224 }));
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < batches; i++)
        {
            using var scope = torch.NewDisposeScope();
            f(torch.tensor(RandomImage(batch), new long[] { batch, 3, 224, 224 }));
        }
        return batch * batches / sw.Elapsed.TotalSeconds;
    }

    static float[] RandomImage(int batch)
    {
        var rng = new Random(batch);
        var x = new float[batch * 3 * 224 * 224];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    static string? FindShared()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "FairMedFM.sln"))) return Path.GetFullPath(Path.Combine(d.FullName, "..", "shared"));
        return null;
    }

    static string? FindRepoFile(string rel)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, rel))) return Path.Combine(d.FullName, rel);
        return null;
    }

    public static void Sweep(string[] a)
    {
        var gridPath = CheckSweep(a);
        var grid = GridSpec.Load(gridPath);
        var cells = grid.Expand();
        // Only classification grids have a backbone-forward count to compare; a segmentation card is named as such.
        foreach (var d in cells.Select(c => c.Dataset).Distinct()) _ = DatasetCatalog.Get(d);
        long ours = 0, reference = 0;
        var sizes = new Dictionary<string, int>();
        foreach (var d in cells.Select(c => c.Dataset).Distinct()) sizes[d] = DatasetCatalog.Get(d).Samples.Count;
        // Ours: each (dataset, model, normalisation) is embedded once for the whole sweep.
        foreach (var key in cells.Select(c => (c.Dataset, c.Model, c.Normalization)).Distinct()) ours += sizes[key.Dataset];
        // FairMedFM: every cell runs the frozen backbone on the training split every epoch, and on the test split
        // every 5 epochs plus once at the end (trainers/cls.py); it has no validation split.
        foreach (var c in cells)
        {
            int n = sizes[c.Dataset];
            long train = (long)Math.Round(n * (c.Split.Train + c.Split.Validation)), test = n - train;
            reference += c.Training.Epochs * train + ((c.Training.Epochs + 4) / 5 + 1) * test;
        }
        Console.WriteLine($"# Backbone forward passes for grid '{grid.Name}' ({cells.Count} cells, {grid.Training.Epochs} epochs)");
        Console.WriteLine($"| way | image forwards | ratio |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| FairMedFM (full forward every epoch, per cell) | {reference:N0} | 1.00 |");
        Console.WriteLine($"| FairMedFM.NET (cached embeddings, per dataset × model) | {ours:N0} | {(double)ours / reference:0.0000} (×{(double)reference / ours:0} fewer) |");

        if (a.Contains("--measure"))
        {
            var ws = new Workspace(Path.Combine(Path.GetTempPath(), "fairmedfm-bench-" + Guid.NewGuid().ToString("N")[..8]), null);
            var runner = new FairMedFM.Engine.Cells.CellRunner(ws);
            var before = EmbeddingStore.BackboneForwardImages;
            var sw = Stopwatch.StartNew();
            foreach (var c in cells) runner.Run(c);
            var measured = EmbeddingStore.BackboneForwardImages - before;
            Console.WriteLine($"measured on a fresh cache: {measured:N0} image forwards for {cells.Count} cells in {sw.Elapsed.TotalSeconds:0.0} s " +
                              $"({(measured == ours ? "as predicted" : "differs from the prediction")})");
            Directory.Delete(ws.CacheDir, true);
        }
    }
}

static class MetricsBench
{
    static string? Opt(string[] a, string name) => BenchOpts.Opt(a, name);

    /// <summary>n (at least 300: 3 groups with both labels), resamples, naive resamples, reference mode.</summary>
    public static (int N, int Resamples, int Naive, bool Reference) Check(string[] a)
    {
        int n = BenchOpts.Int(a, "--n", 100000, 300);
        int resamples = BenchOpts.Int(a, "--resamples", 1000, 1);
        int naive = BenchOpts.Int(a, "--naive", 50, 1);
        var mode = Opt(a, "--mode") ?? "default";
        if (mode is not ("default" or "reference")) throw new BenchUsageException($"--mode must be default or reference, not '{mode}'");
        return (n, resamples, naive, mode == "reference");
    }

    public static void Run(string[] a)
    {
        var (n, resamples, naive, reference) = Check(a);
        var rng = new Random(1);
        var p = new float[n]; var y = new int[n]; var g = new string[n];
        string[] names = ["F", "M", "X"];
        for (int i = 0; i < n; i++)
        {
            int k = i % 3;
            y[i] = rng.NextDouble() < 0.3 ? 1 : 0;
            double z = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()) + (y[i] == 1 ? 1.0 + 0.3 * k : 0);
            p[i] = (float)(1 / (1 + Math.Exp(-z)));
            g[i] = names[k];
        }
        var options = reference ? new FairMedFM.Metrics.MetricsOptions(FairMedFM.Metrics.MetricsMode.Reference) : new FairMedFM.Metrics.MetricsOptions();
        double? thr = reference ? null : 0.5;
        Console.WriteLine($"# Classification metrics with bootstrap intervals: n = {n:N0}, 3 groups, {resamples:N0} stratified resamples, " +
                          $"{(reference ? "reference mode (best-F1 threshold re-chosen per resample)" : "default mode (frozen threshold)")}, {Environment.ProcessorCount} cores");
        FairMedFM.Metrics.ClassificationMetrics.Evaluate(p, y, g, options, thr); // warm-up (JIT)
        var sw = Stopwatch.StartNew();
        var one = FairMedFM.Metrics.ClassificationMetrics.Evaluate(p, y, g, options, thr);
        double evalMs = sw.Elapsed.TotalMilliseconds;

        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        sw.Restart();
        var boot = FairMedFM.Metrics.Bootstrap.Classification(p, y, g, options, new FairMedFM.Metrics.BootstrapOptions(resamples, Seed: 1), thr);
        double bootS = sw.Elapsed.TotalSeconds;
        double bootCpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;

        // Peer: the plain loop — draw a stratified resample, materialise it, recompute every metric per group with Evaluate.
        var strata = Enumerable.Range(0, n).GroupBy(i => (g[i], y[i])).Select(x => x.ToArray()).ToArray();
        var rp = new float[n]; var ry = new int[n]; var rg = new string[n];
        cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        sw.Restart();
        for (int r = 0; r < naive; r++)
        {
            int k = 0;
            foreach (var s in strata)
                for (int j = 0; j < s.Length; j++) { int i = s[rng.Next(s.Length)]; rp[k] = p[i]; ry[k] = y[i]; rg[k] = g[i]; k++; }
            FairMedFM.Metrics.ClassificationMetrics.Evaluate(rp, ry, rg, options, thr);
        }
        double naivePer = sw.Elapsed.TotalSeconds / naive;
        double naiveCpuPer = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds / naive;
        double naiveTotal = naivePer * resamples;
        Console.WriteLine("| way | wall time | CPU time | wall per resample | wall ratio to the plain loop | CPU ratio |");
        Console.WriteLine("|---|---|---|---|---|---|");
        Console.WriteLine($"| one Evaluate (all metrics, overall + 3 groups, summaries) | {evalMs:0} ms | – | – | – | – |");
        Console.WriteLine($"| plain loop: materialise + Evaluate, 1 thread ({naive} resamples timed, ×{resamples / (double)naive:0} extrapolated) | {naiveTotal:0.0} s | {naiveCpuPer * resamples:0.0} s | {naivePer * 1000:0.0} ms | 1.00 | 1.00 |");
        Console.WriteLine($"| FairMedFM.NET bootstrap (weighted O(n) kernel, {Environment.ProcessorCount} threads) | {bootS:0.0} s | {bootCpu:0.0} s | {bootS / resamples * 1000:0.0} ms | ×{naiveTotal / bootS:0.0} faster | ×{naiveCpuPer * resamples / bootCpu:0.0} less CPU |");
        Console.WriteLine($"load average during the run: {File.ReadAllText("/proc/loadavg").Split(' ')[0]} (other processes on these cores slow both ways alike)");
        Console.WriteLine($"intervals: overall-auc {one.Summary["overall-auc"]} {boot.Summary["overall-auc"]}, auc-gap {one.Summary["auc-gap"]} {boot.Summary["auc-gap"]}, " +
                          $"eod {one.Summary["eod"]} {boot.Summary["eod"]}; {boot.Summary.Count + boot.Overall.Count + boot.Groups.Sum(x => x.Value.Count)} intervals");
    }
}
