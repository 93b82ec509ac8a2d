namespace FairMedFM.Engine.Simulation;

/// <summary>How big a simulated sweep is: the first N datasets, models, usages and methods of the calibration, seeds and
/// attributes. More datasets or models than the calibration lists repeat its entries as replicas (<c>CXP~2</c>: same size,
/// its own embedding-cache entries), so larger grids can be simulated.</summary>
public sealed record GridShape(int Datasets = 17, int Models = 20, int Usages = 4, int Methods = 3, int Seeds = 3, int Attributes = 1)
{
    public long Cells => (long)Datasets * Models * Usages * Methods * Seeds * Attributes;

    public override string ToString() => $"{Datasets} datasets × {Models} FMs × {Usages} usages × {Methods} methods × {Seeds} seeds × {Attributes} attribute(s) = {Cells:N0} cells";
}

/// <summary>One cell of a simulated sweep.</summary>
public sealed record SimCell(string Id, string Dataset, string Model, string Usage, string Method, string Attribute, int Seed)
{
    public string Label => $"{Dataset} × {Model} × {Usage} × {Method} × {Attribute} × seed {Seed}";
}

/// <summary>
/// Device-seconds of each cell of a FairMedFM sweep on one GPU, from a <see cref="CostCalibration"/>:
/// <list type="bullet">
/// <item>Embedding (per dataset × FM, paid once by whichever cell needs it first; the others read the cache, as the real
/// system's ModelUsageGrain does): every image of every split through the frozen backbone, images ÷ (CPU images/s × GPU speed-up).</item>
/// <item>Training by usage kind: <c>head</c> (lp, clip-adapt) = epochs × ⌈train images ÷ batch⌉ head steps plus an evaluation
/// pass over the validation split every epoch (best-validation-loss selection); <c>zero-shot</c> (clip-zs) = nothing trained;
/// <c>backbone</c> (lora) = epochs × train images × backward factor ÷ backbone images/s, plus a forward of the validation split
/// every epoch; × the method's factor.</item>
/// <item>Evaluation: the test split (head forward on cached embeddings, or a backbone forward for lora), the bootstrap over
/// the test samples, a fixed per-cell overhead, and text prompts for CLIP usages.</item>
/// </list>
/// </summary>
public sealed class SweepCostModel
{
    private static readonly string[] AttributeNames = ["sex", "age", "race", "language", "skin-tone"];

    public SweepCostModel(CostCalibration calibration) => Calibration = calibration;

    public CostCalibration Calibration { get; }

    private static (T Entry, string Name) Pick<T>(IReadOnlyList<T> list, int i, Func<T, string> name) =>
        (list[i % list.Count], i < list.Count ? name(list[i]) : $"{name(list[i % list.Count])}~{i / list.Count + 1}");

    /// <summary>The grid's cells in submission order: dataset, model, usage, method, attribute, seed (innermost).</summary>
    public IReadOnlyList<SimCell> Cells(GridShape shape)
    {
        if (shape.Datasets < 1 || shape.Models < 1 || shape.Usages < 1 || shape.Methods < 1 || shape.Seeds < 1 || shape.Attributes < 1)
            throw new ArgumentException($"every grid dimension must be ≥ 1 ({shape})");
        if (shape.Usages > Calibration.Usages.Count)
            throw new ArgumentException($"--usages {shape.Usages}: the calibration knows {Calibration.Usages.Count} usages ({string.Join(", ", Calibration.Usages.Select(u => u.Name))})");
        if (shape.Methods > Calibration.Methods.Count)
            throw new ArgumentException($"--methods {shape.Methods}: the calibration knows {Calibration.Methods.Count} methods ({string.Join(", ", Calibration.Methods.Select(m => m.Name))})");
        if (shape.Cells > 10_000_000) throw new ArgumentException($"{shape}: more than 10,000,000 cells is beyond what this simulator is meant for");
        var cells = new List<SimCell>((int)shape.Cells);
        for (int d = 0; d < shape.Datasets; d++)
        {
            var dataset = Pick(Calibration.Datasets, d, x => x.Name).Name;
            for (int m = 0; m < shape.Models; m++)
            {
                var model = Pick(Calibration.Models, m, x => x.Name).Name;
                for (int u = 0; u < shape.Usages; u++)
                    for (int k = 0; k < shape.Methods; k++)
                        for (int a = 0; a < shape.Attributes; a++)
                        {
                            var attr = a < AttributeNames.Length ? AttributeNames[a] : $"attribute{a}";
                            for (int s = 0; s < shape.Seeds; s++)
                            {
                                var usage = Calibration.Usages[u].Name;
                                var method = Calibration.Methods[k].Name;
                                cells.Add(new SimCell($"{dataset}|{model}|{usage}|{method}|{attr}|{s}", dataset, model, usage, method, attr, s));
                            }
                        }
            }
        }
        return cells;
    }

    private DatasetCalibration Dataset(string name) =>
        Calibration.Datasets.FirstOrDefault(d => d.Name == BaseName(name)) ?? throw new ArgumentException($"dataset '{name}' is not in the calibration");

    private ModelCalibration Model(string name) =>
        Calibration.Models.FirstOrDefault(m => m.Name == BaseName(name)) ?? throw new ArgumentException($"model '{name}' is not in the calibration");

    private UsageCalibration Usage(string name) =>
        Calibration.Usages.FirstOrDefault(u => u.Name == name) ?? throw new ArgumentException($"usage '{name}' is not in the calibration");

    private MethodCalibration Method(string name) =>
        Calibration.Methods.FirstOrDefault(m => m.Name == name) ?? throw new ArgumentException($"method '{name}' is not in the calibration");

    private static string BaseName(string name) => name.Split('~')[0];

    /// <summary>GPU images/s of the model's backbone (forward).</summary>
    public double GpuImagesPerSecond(string model) => Model(model).CpuImagesPerSecond * Calibration.Gpu.Speedup;

    /// <summary>Seconds to embed every image of <paramref name="dataset"/> with <paramref name="model"/> (all splits).</summary>
    public double EmbeddingSeconds(string dataset, string model) => Dataset(dataset).Images / GpuImagesPerSecond(model);

    /// <summary>The embedding-cache entry a cell reads (dataset × model), or null when its usage does not use the cache.</summary>
    public string? CacheKey(SimCell cell) => Usage(cell.Usage).UsesEmbeddingCache ? $"{cell.Dataset}|{cell.Model}" : null;

    /// <summary>Seconds of the cell's own work on one GPU once its embeddings exist (training, evaluation, overhead).</summary>
    public double ComputeSeconds(SimCell cell)
    {
        var c = Calibration;
        var ds = Dataset(cell.Dataset);
        var usage = Usage(cell.Usage);
        double factor = Method(cell.Method).Factor;
        double images = ds.Images;
        double train = images * c.Splits.Train, val = images * c.Splits.Validation, test = images * c.Splits.Test;
        int epochs = c.Training.Epochs, batch = c.Training.BatchSize;
        double Batches(double n) => Math.Ceiling(n / batch);
        double headEval = c.Gpu.HeadStepSeconds * c.Gpu.HeadEvalFraction;

        double work = usage.Kind switch
        {
            "head" => factor * epochs * Batches(train) * c.Gpu.HeadStepSeconds + epochs * Batches(val) * headEval + Batches(test) * headEval,
            "zero-shot" => Batches(test) * headEval,
            "backbone" => (factor * epochs * train * c.Gpu.BackwardFactor + epochs * val + test) / GpuImagesPerSecond(cell.Model),
            _ => throw new InvalidOperationException($"usage kind '{usage.Kind}'"),
        };
        if (usage.Text || usage.Kind == "zero-shot") work += c.TextEmbeddingSeconds;
        double testSamples = ds.Samples * c.Splits.Test;
        work += testSamples * c.Evaluation.BootstrapResamples * c.Evaluation.SecondsPerSampleResample;
        return work + c.CellOverheadSeconds;
    }

    /// <summary>The simulator's jobs for a grid. Each job's cost hint is the model's expected device-seconds: its own work, plus the
    /// embedding for the first cell of each dataset × model that uses the cache (the one expected to compute it).</summary>
    public IReadOnlyList<SimJob> Jobs(GridShape shape) => Jobs(Cells(shape));

    public IReadOnlyList<SimJob> Jobs(IEnumerable<SimCell> cells)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var jobs = new List<SimJob>();
        foreach (var cell in cells)
        {
            var key = CacheKey(cell);
            double compute = ComputeSeconds(cell);
            double embed = key is null ? 0 : EmbeddingSeconds(cell.Dataset, cell.Model);
            double hint = compute + (key is not null && seen.Add(key) ? embed : 0);
            jobs.Add(new SimJob(cell.Id, cell.Label, compute, key, embed, hint));
        }
        return jobs;
    }
}
