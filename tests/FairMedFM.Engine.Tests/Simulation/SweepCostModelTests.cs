using FairMedFM.Engine.Simulation;

namespace FairMedFM.Engine.Tests.Simulation;

/// <summary>The calibrated cost model, its file and the full-size sweeps it drives.</summary>
public sealed class SweepCostModelTests
{
    private static readonly SweepCostModel Model = new(CostCalibration.Default());

    private static SimCell Cell(string dataset, string model, string usage, string method = "erm") =>
        new($"{dataset}|{model}|{usage}|{method}|sex|0", dataset, model, usage, method, "sex", 0);

    [Fact]
    public void The_built_in_calibration_covers_the_17_datasets_and_20_fms_with_a_source_for_every_number()
    {
        var c = CostCalibration.Default();
        Assert.Equal(17, c.Datasets.Count);
        Assert.Equal(20, c.Models.Count);
        Assert.Equal(new[] { "lp", "clip-zs", "clip-adapt", "lora" }, c.Usages.Select(u => u.Name));
        Assert.Equal(new[] { "erm", "resampling", "group-dro" }, c.Methods.Take(3).Select(m => m.Name));
        Assert.All(c.Datasets, d => Assert.False(string.IsNullOrWhiteSpace(d.Source)));
        Assert.All(c.Models, m => Assert.False(string.IsNullOrWhiteSpace(m.Source)));
        Assert.False(string.IsNullOrWhiteSpace(c.Gpu.SpeedupSource));
        Assert.Equal(357_542, c.Datasets.Single(d => d.Name == "MIMIC_CXR").Samples);     // spec §2.4
        Assert.Equal(305 * 34, c.Datasets.Single(d => d.Name == "COVID_CT_MD").Images);  // 34 slices per volume
        Assert.Equal(2.4, c.Models.Single(m => m.Name == "MedMAE").CpuImagesPerSecond);  // ViT-B/16, PLATFORM.md
    }

    [Fact]
    public void Embedding_is_images_over_the_gpu_throughput_of_the_family()
    {
        var c = Model.Calibration;
        // MedMAE is a ViT-B/16: 2.4 images/s on 2 CPU cores × the stated GPU speed-up.
        Assert.Equal(357_542 / (2.4 * c.Gpu.Speedup), Model.EmbeddingSeconds("MIMIC_CXR", "MedMAE"), 9);
        Assert.True(Model.EmbeddingSeconds("MIMIC_CXR", "BLIP2") > 10 * Model.EmbeddingSeconds("MIMIC_CXR", "BLIP"));
        Assert.True(Model.EmbeddingSeconds("CXP", "C2L") < Model.EmbeddingSeconds("CXP", "DINOv2"));
    }

    [Fact]
    public void Usages_cost_what_they_do_lora_far_above_lp_and_zero_shot_almost_nothing()
    {
        double lp = Model.ComputeSeconds(Cell("CXP", "MedMAE", "lp"));
        double zs = Model.ComputeSeconds(Cell("CXP", "MedMAE", "clip-zs"));
        double adapt = Model.ComputeSeconds(Cell("CXP", "MedMAE", "clip-adapt"));
        double lora = Model.ComputeSeconds(Cell("CXP", "MedMAE", "lora"));
        Assert.True(zs < lp && lp < adapt && adapt < lora, $"zs {zs}, lp {lp}, adapt {adapt}, lora {lora}");
        Assert.True(lora > 100 * lp, $"lora {lora} s vs lp {lp} s");
        // lora: 30 epochs of forward + backward over the training split dominate: ≈ 0.6 · images · 30 · 3.1 / GPU images/s.
        var c = Model.Calibration;
        double gpu = 2.4 * c.Gpu.Speedup;
        Assert.InRange(lora, 221_006 * 0.6 * 30 * c.Gpu.BackwardFactor / gpu, 221_006 * (0.6 * 30 * c.Gpu.BackwardFactor + 0.2 * 31) / gpu + 60);
        // Methods scale training; the cache applies to every usage but lora.
        Assert.True(Model.ComputeSeconds(Cell("CXP", "MedMAE", "lora", "group-dro")) > lora);
        Assert.NotNull(Model.CacheKey(Cell("CXP", "MedMAE", "lp")));
        Assert.NotNull(Model.CacheKey(Cell("CXP", "MedMAE", "clip-zs")));
        Assert.Null(Model.CacheKey(Cell("CXP", "MedMAE", "lora")));
    }

    [Fact]
    public void The_grid_and_its_cost_hints_put_the_embedding_on_the_first_cell_of_each_dataset_and_model()
    {
        var shape = new GridShape(Datasets: 2, Models: 2, Usages: 4, Methods: 1, Seeds: 2);
        var jobs = Model.Jobs(shape);
        Assert.Equal(shape.Cells, jobs.Count);
        Assert.Equal(32, jobs.Count);
        Assert.Equal(jobs.Count, jobs.Select(j => j.Id).Distinct().Count());
        foreach (var g in jobs.Where(j => j.CacheKey is not null).GroupBy(j => j.CacheKey))
        {
            var first = g.First();
            Assert.Equal(first.ComputeSeconds + first.EmbeddingSeconds, first.CostHint, 9);
            Assert.All(g.Skip(1), j => Assert.Equal(j.ComputeSeconds, j.CostHint, 9));
            Assert.Equal(6, g.Count());                              // lp, clip-zs, clip-adapt × 2 seeds
        }
        Assert.All(jobs.Where(j => j.CacheKey is null), j => Assert.Equal(0, j.EmbeddingSeconds));
        // Beyond the calibration's lists, replicas with their own cache entries.
        var big = Model.Cells(new GridShape(Datasets: 18, Models: 1, Usages: 1, Methods: 1, Seeds: 1));
        Assert.Equal("CXP~2", big[^1].Dataset);
        Assert.Contains("the calibration knows 4 usages", Assert.Throws<ArgumentException>(() => Model.Cells(new GridShape(Usages: 5))).Message);
    }

    [Fact]
    public void A_costs_file_merges_over_the_built_in_one_and_bad_entries_are_named()
    {
        using var tmp = new TempDir();
        var path = tmp.File("costs.json");
        File.WriteAllText(path, """{ "gpu": { "speedup": 100 }, "training": { "epochs": 10 } }""");
        var c = CostCalibration.Load(path);
        Assert.Equal(100, c.Gpu.Speedup);
        Assert.Equal(CostCalibration.Default().Gpu.BackwardFactor, c.Gpu.BackwardFactor);   // the rest of "gpu" kept
        Assert.Equal(10, c.Training.Epochs);
        Assert.Equal(64, c.Training.BatchSize);
        Assert.Equal(17, c.Datasets.Count);
        var slower = new SweepCostModel(c);
        Assert.Equal(4 * Model.EmbeddingSeconds("CXP", "CLIP"), slower.EmbeddingSeconds("CXP", "CLIP"), 6);

        File.WriteAllText(path, """{ "datasets": [ { "name": "mine", "samples": 5000, "source": "our hospital" } ] }""");
        Assert.Equal("mine", Assert.Single(CostCalibration.Load(path).Datasets).Name);

        void Bad(string json, string expected)
        {
            File.WriteAllText(path, json);
            var e = Assert.Throws<InvalidDataException>(() => CostCalibration.Load(path));
            Assert.Contains(expected, e.Message);
        }
        Bad("""{ "gpu": { "speedup": 0 } }""", "gpu.speedup");
        Bad("""{ "gpu": { "spedup": 3 } }""", "spedup");
        Bad("""{ "models": [ { "name": "x", "cpu_images_per_second": -1 } ] }""", "models[0] (x).cpu_images_per_second");
        Bad("""{ "datasets": [ { "name": "a", "samples": 10 }, { "name": "a", "samples": 20 } ] }""", "'a' twice");
        Bad("""{ "usages": [ { "name": "u", "kind": "magic" } ] }""", "kind 'magic'");
        Bad("""{ "splits": { "train": 0.9 } }""", "add up to 1");
        Bad("""[1, 2]""", "top level");
        Bad("""{ "gpu": """, "not valid JSON");
        Assert.Throws<FileNotFoundException>(() => CostCalibration.Load(tmp.File("missing.json")));
    }

    [Fact]
    public void Longest_first_fills_64_gpus_where_submission_order_leaves_long_cells_at_the_end()
    {
        // 17 datasets × 2 FMs × 4 usages × 3 methods × 3 seeds × 3 attributes: submission order ends with long LoRA cells alone.
        var jobs = Model.Jobs(new GridShape(Datasets: 17, Models: 2, Usages: 4, Methods: 3, Seeds: 3, Attributes: 3));
        var naive = SweepSimulator.Run(jobs, new SimulationOptions { Devices = 64, UseCostHints = false });
        var lpt = SweepSimulator.Run(jobs, new SimulationOptions { Devices = 64, UseCostHints = true });
        Assert.True(naive.Utilisation < 0.9, $"submission order {naive.Utilisation:P1}");
        Assert.True(lpt.Utilisation >= 0.95, $"longest-first {lpt.Utilisation:P1}");
        Assert.True(lpt.MakespanSeconds < naive.MakespanSeconds);
        Assert.Equal(jobs.Count, lpt.Done);
    }

    [Fact]
    public void The_full_17x20x4x3x3_sweep_on_64_gpus_reaches_its_lower_bound_and_with_three_attributes_95_percent()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var jobs = Model.Jobs(new GridShape());
        Assert.Equal(12_240, jobs.Count);
        var r = SweepSimulator.Run(jobs, new SimulationOptions { Devices = 64 });
        Assert.Equal(12_240, r.Done);
        Assert.Equal(340, r.EmbeddingsComputed);                     // 17 × 20 dataset × FM entries, each once
        Assert.True(r.EmbeddingWaitSeconds < 1e-5 * r.BusySeconds, $"{r.EmbeddingWaitSeconds} s waiting for embeddings"); // longest-first: next to none
        // One attribute: a single cell (BLIP-2 × MIMIC-CXR × LoRA, ~100 h) is longer than the work per GPU, so no order can
        // beat the longest cell; longest-first finishes exactly then.
        Assert.True(r.MakespanSeconds <= r.LowerBoundSeconds * 1.001, $"makespan {r.MakespanSeconds} vs bound {r.LowerBoundSeconds}");
        double best = r.BusySeconds / (64 * r.LowerBoundSeconds);
        Assert.True(r.Utilisation >= best * 0.999 && r.Utilisation > 0.9, $"{r.Utilisation:P2} of at most {best:P2}");
        var naive = SweepSimulator.Run(jobs, new SimulationOptions { Devices = 64, UseCostHints = false });
        Assert.True(naive.Utilisation < r.Utilisation - 0.05, $"submission order {naive.Utilisation:P1}, longest-first {r.Utilisation:P1}");

        // Sex, age and race: 36,720 cells, enough work per GPU that the 95 % target is reachable, and reached.
        var three = SweepSimulator.Run(Model.Jobs(new GridShape(Attributes: 3)), new SimulationOptions { Devices = 64 });
        Assert.Equal(36_720, three.Done);
        Assert.True(three.Utilisation >= 0.95, $"{three.Utilisation:P2}");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"took {sw.Elapsed}");
    }
}
