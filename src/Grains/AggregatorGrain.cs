using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Reports;

namespace FairMedFM.Grains;

[GenerateSerializer, Alias("fairmedfm.AggregatorState")]
public sealed class AggregatorState
{
    [Id(0)] public Dictionary<string, CellSummary> Cells { get; set; } = new();
}

public sealed class AggregatorGrain(
    [PersistentState("matrix", FairMedFMSilo.StorageName)] IPersistentState<AggregatorState> state) : Grain, IAggregatorGrain
{
    public async Task Report(CellSummary cell)
    {
        using var activity = FairMedFM.Engine.Telemetry.Source.StartActivity("aggregation");
        activity?.SetTag("fairmedfm.cell_id", cell.CellId);
        activity?.SetTag("fairmedfm.aggregator", this.GetPrimaryKeyString());
        state.State.Cells[cell.CellId] = cell; // a re-reported cell replaces itself: reports are idempotent
        await state.WriteStateAsync();
    }

    public Task<IReadOnlyList<CellSummary>> GetCells() =>
        Task.FromResult<IReadOnlyList<CellSummary>>(state.State.Cells.Values.OrderBy(c => c.CellId, StringComparer.Ordinal).ToList());

    public Task<MatrixView> GetMatrix(string usage, string method, string attribute, string metric) =>
        Task.FromResult(Slice(Inputs(), usage, method, attribute, metric));

    public Task<IReadOnlyList<MatrixView>> Query(MatrixQuery q)
    {
        var inputs = Inputs();
        var done = state.State.Cells.Values.Where(c => c.Phase == JobPhase.Done).ToList();
        var slices = done.Select(c => (c.Usage, c.Method, c.Attribute)).Distinct()
            .Where(s => (q.Usage is null || s.Usage == q.Usage) && (q.Method is null || s.Method == q.Method) && (q.Attribute is null || s.Attribute == q.Attribute))
            .OrderBy(s => s.Usage, StringComparer.Ordinal).ThenBy(s => s.Method, StringComparer.Ordinal).ThenBy(s => s.Attribute, StringComparer.Ordinal);
        var metrics = q.Metric is { } m ? new[] { m } : done.SelectMany(c => c.Metrics.Keys).Distinct().Order(StringComparer.Ordinal).ToArray();
        var views = new List<MatrixView>();
        foreach (var (usage, method, attribute) in slices)
            foreach (var metric in metrics)
                views.Add(Slice(inputs, usage, method, attribute, metric));
        return Task.FromResult<IReadOnlyList<MatrixView>>(views);
    }

    public async Task<CellDrillDown?> GetCell(string cellId, int offset, int limit)
    {
        var matches = state.State.Cells.Values.Where(c => c.CellId.StartsWith(cellId, StringComparison.Ordinal)).ToList();
        if (matches.Count != 1) return matches.Count == 0 ? null : throw new ArgumentException($"cell id prefix '{cellId}' matches {matches.Count} cells");
        var cell = matches[0];
        if (cell.ResultFile is null) return new CellDrillDown(cell, 0, Array.Empty<PredictionRow>(), "the cell has no stored result");
        var predictions = Path.Combine(Path.GetDirectoryName(cell.ResultFile)!, cell.CellId + ".predictions.csv");
        if (!File.Exists(predictions))
            return new CellDrillDown(cell, 0, Array.Empty<PredictionRow>(), cell.Phase == JobPhase.Done ? $"predictions file {predictions} is not readable from this silo" : "the cell did not finish");
        // One read of the file: a segmentation cell's records also give the generic rows (split "all", label 1 = scored,
        // the sample's Dice in the probability column, NaN when skipped).
        var (rows, seg) = await Task.Run(() =>
        {
            var bytes = File.ReadAllBytes(predictions);
            var s = ReadSegSamples(bytes);
            return (s is null ? ReadPredictions(bytes, predictions)
                : s.Select(r => new PredictionRow(r.Index, "all", r.SampleId, r.PatientId, r.Status == "scored" ? 1 : 0,
                    r.Status == "scored" && r.Dice is { } d ? d : double.NaN, r.Group)).ToList(), s);
        });
        int skip = Math.Max(0, offset), take = Math.Clamp(limit, 0, 100_000);
        return new CellDrillDown(cell, rows.Count, rows.Skip(skip).Take(take).ToList(), null, seg?.Skip(skip).Take(take).ToList());
    }

    public async Task<string?> GetResultJson(string cellId)
    {
        if (!state.State.Cells.TryGetValue(cellId, out var cell) || cell.ResultFile is not { } file) return null;
        try { return await File.ReadAllTextAsync(file); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    private static readonly CsvHelper.CsvReaderOptions PredictionsCsv = new()
        { Separator = ',', HasHeader = true, MalformedData = CsvHelper.CsvMalformedDataHandling.Throw, SkipEmptyLines = true };

    /// <summary>A segmentation cell's per-sample records (SegmentationCells' predictions.csv); null for a classification cell's file.</summary>
    public static List<SegSampleRow>? ReadSegSamples(byte[] csv)
    {
        using var reader = CsvHelper.CsvReader.Create(csv, PredictionsCsv);
        var header = reader.Headers.Select(h => h.Trim()).ToList();
        if (!header.Contains("sample_id") || !header.Contains("dice")) return null;
        int Col(string name) => header.IndexOf(name);
        var ci = System.Globalization.CultureInfo.InvariantCulture;
        int index = Col("index"), id = Col("sample_id"), patient = Col("patient_id"), group = Col("group"), promptType = Col("prompt_type"), prompt = Col("prompt"),
            status = Col("status"), skip = Col("skip_reason"), dice = Col("dice"), iou = Col("iou"), hd95 = Col("hd95"), hd95Undefined = Col("hd95_undefined");
        var rows = new List<SegSampleRow>();
        while (reader.Read())
        {
            string G(int c) => c < 0 ? "" : reader.GetString(c) ?? "";
            double? D(int c) => double.TryParse(G(c), System.Globalization.NumberStyles.Float, ci, out var v) && double.IsFinite(v) ? v : null;
            string? S(int c) => G(c) is { Length: > 0 } t ? t : null;
            var promptText = string.Join(" ", new[] { G(promptType), G(prompt) }.Where(t => t.Length > 0));
            rows.Add(new SegSampleRow(int.TryParse(G(index), ci, out var i) ? i : rows.Count, G(id), G(patient), G(group), promptText,
                G(status), S(skip), D(dice), D(iou), D(hd95), S(hd95Undefined)));
        }
        return rows;
    }

    /// <summary>The engine's predictions file: index,split,image,patient_id,label,prob,group (quoted fields as CellRunner writes them).</summary>
    public static List<PredictionRow> ReadPredictions(byte[] csv, string path)
    {
        var rows = new List<PredictionRow>();
        using var reader = CsvHelper.CsvReader.Create(csv, PredictionsCsv);
        var header = reader.Headers.Select(h => h.Trim()).ToList();
        int Col(string name) => header.IndexOf(name) is var i and >= 0 ? i : throw new InvalidDataException($"{path}: no '{name}' column");
        var ci = System.Globalization.CultureInfo.InvariantCulture;
        int index = Col("index"), split = Col("split"), image = Col("image"), patient = Col("patient_id"), label = Col("label"), prob = Col("prob"), group = Col("group");
        while (reader.Read())
        {
            string F(int c) => reader.GetString(c) ?? "";
            rows.Add(new PredictionRow(int.Parse(F(index), ci), F(split), F(image), F(patient), int.Parse(F(label), ci), double.Parse(F(prob), ci), F(group)));
        }
        return rows;
    }

    private List<MatrixInput> Inputs() =>
        state.State.Cells.Values.Where(c => c.Phase == JobPhase.Done).Select(c => new MatrixInput(c.Dataset, c.Model, c.Usage, c.Method, c.Attribute, c.Seed,
            c.Metrics.ToDictionary(kv => kv.Key, kv => new MetricEntry(kv.Value.Value, kv.Value.Undefined, Lower: kv.Value.Lower, Upper: kv.Value.Upper,
                Detail: kv.Value.NoIntervalOnePatient ? MetricEntry.NoIntervalOnePatientDetail : null)),
            c.Groups.Select(g => new GroupSize(g.Group, g.N, g.Positives, g.Negatives)).ToList(), c.Card)).ToList();

    private static MatrixView Slice(List<MatrixInput> inputs, string usage, string method, string attribute, string metric)
    {
        var slice = FairnessMatrix.Build(inputs, usage, method, attribute, metric);
        var cells = slice.Cells.Values.Select(c => new MatrixCellDto(c.Dataset, c.Model, c.Mean, c.Std, c.Seeds, c.UndefinedSeeds, c.UndefinedReasons,
            c.GroupSizes.Select(g => new GroupSizeDto(g.Group, g.N, g.Positives, g.Negatives)).ToList(), c.Format())).ToList();
        return new MatrixView(usage, method, attribute, metric, slice.Datasets, slice.Models, cells);
    }
}
