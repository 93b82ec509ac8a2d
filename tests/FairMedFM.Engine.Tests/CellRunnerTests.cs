using System.Globalization;
using FairMedFM.Data;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Embeddings;
using FairMedFM.Engine.Reports;

namespace FairMedFM.Engine.Tests;

/// <summary>One tiny card, one workspace and one finished cell (real ResNet on ~65 real images), shared by the class.</summary>
public sealed class TinyCellFixture : IDisposable
{
    public TempDir Tmp { get; } = new();
    public string Card { get; }
    public Workspace Workspace { get; }
    public CellRunner Runner { get; }
    public CellSpec Spec { get; }
    public CellResult First { get; }
    public long FirstForwards { get; }

    public static readonly TrainingConfig Training = new() { Epochs = 8, WarmupEpochs = 2, Blr = 1e-3, MinLr = 1e-5, WeightDecay = 0.05, BatchSize = 32 };

    public TinyCellFixture()
    {
        Card = TinyData.WriteCard(Tmp.Sub("card"));
        Workspace = Tmp.Workspace();
        Runner = new CellRunner(Workspace);
        Spec = new CellSpec
        {
            Dataset = Card, Model = TinyData.Model, Usage = "lp", Method = "erm", Attribute = "sex", Seed = 0, Training = Training,
        };
        long before = EmbeddingStore.BackboneForwardImages;
        First = Runner.Run(Spec);
        FirstForwards = EmbeddingStore.BackboneForwardImages - before;
    }

    public void Dispose() => Tmp.Dispose();
}

[Collection(BackboneCollection.Name)]
public sealed class CellRunnerTests(TinyCellFixture fx) : IClassFixture<TinyCellFixture>
{
    private CellResult R => fx.First;

    private static List<string[]> ReadPredictions(string path)
    {
        var lines = File.ReadAllLines(path);
        Assert.Equal("index,split,image,patient_id,label,prob,group", lines[0]);
        return lines.Skip(1).Select(l => l.Split(',')).ToList();
    }

    [Fact]
    public void A_cell_finishes_with_its_provenance()
    {
        Assert.True(R.Status == "done", R.Error);
        Assert.Null(R.Error);
        Assert.Equal(fx.Spec.CellId, R.CellId);
        Assert.Equal(fx.Spec, R.Spec);
        Assert.Equal("tiny_nih", R.DatasetName);
        var data = DatasetCatalog.Get(fx.Card);
        Assert.Equal(data.DataHash, R.DataHash);
        Assert.Matches("^[0-9a-f]{64}$", R.DataHash!);
        Assert.Matches("^[0-9a-f]{64}$", R.SplitHash!);
        Assert.Equal(ModelCatalog.WeightsHash(TinyData.Model, fx.Workspace), R.WeightsHash);
        Assert.Matches("^[0-9a-f]{64}$", R.WeightsHash!);
        Assert.Equal(Hashing.Of(fx.Spec), R.ConfigHash);
        Assert.NotNull(R.EmbeddingKey);
        Assert.False(R.EmbeddingCacheHit);
        Assert.True(fx.Runner.Embeddings.Contains(R.EmbeddingKey!));
        Assert.Equal(TinyCellFixture.Training.Epochs, R.History!.Count);
        Assert.InRange(R.SelectedEpoch!.Value, 0, TinyCellFixture.Training.Epochs - 1);
        Assert.True(R.FinishedUtc >= R.StartedUtc);
        // The stored copy is what a later run reads.
        var stored = fx.Runner.Results.TryGet(R.CellId)!;
        Assert.Equal(R.Summary!["overall-auc"], stored.Summary!["overall-auc"]);
        Assert.Equal(fx.Spec.CellId, stored.Spec.CellId);
    }

    [Fact]
    public void The_backbone_ran_once_per_image()
    {
        Assert.Equal(TinyData.Rows, fx.FirstForwards);
    }

    [Fact]
    public void Split_sizes_threshold_and_groups_add_up()
    {
        var sizes = R.Sizes!;
        Assert.Equal(TinyData.Rows, sizes.Train + sizes.Validation + sizes.Test);
        Assert.InRange(sizes.Train, (int)(0.45 * TinyData.Rows), (int)(0.75 * TinyData.Rows));
        Assert.True(sizes.Validation >= 5 && sizes.Test >= 5, $"sizes {sizes}");

        Assert.Equal("validation", R.ThresholdChosenOn);
        Assert.InRange(R.Threshold!.Value, 0.0, 1.0);

        Assert.Equal(new[] { "F", "M" }, R.Groups!.Select(g => g.Group).Order());
        Assert.Equal(sizes.Test, R.Groups!.Sum(g => g.N));
        Assert.All(R.Groups!, g => Assert.Equal(g.N, g.Positives + g.Negatives));
        Assert.All(R.Groups!, g => Assert.True(g.Positives > 0 && g.Negatives > 0, $"group {g.Group} lacks a class: {g}"));
        Assert.Equal(sizes.Test, R.Overall!.N);
        Assert.Equal(R.Overall.Positives, R.Groups!.Sum(g => g.Positives));
    }

    [Fact]
    public void Summary_has_FairMedFM_metrics()
    {
        foreach (var key in ResultWriter.HeadlineMetrics)
            Assert.True(R.Summary!.ContainsKey(key), $"summary lacks {key}; has {string.Join(", ", R.Summary!.Keys)}");
        var auc = R.Summary!["overall-auc"];
        Assert.NotNull(auc.Value);
        Assert.InRange(auc.Value!.Value, 0.0, 1.0);
        Assert.InRange(R.Summary["eod"].Value!.Value, 0.0, 1.0);
        Assert.True(R.Summary["auc-gap"].Value >= 0);
        // Per-group values agree with the summary: the gap is max − min of the group AUCs.
        var groupAucs = R.Groups!.Select(g => g.Values["auc"].Value!.Value).ToList();
        Assert.Equal(groupAucs.Max() - groupAucs.Min(), R.Summary["auc-gap"].Value!.Value, 9);
        Assert.Equal(groupAucs.Min(), R.Summary["worst-auc"].Value!.Value, 9);
    }

    [Fact]
    public void Predictions_file_has_one_row_per_validation_and_test_sample()
    {
        Assert.True(File.Exists(R.PredictionsFile));
        var rows = ReadPredictions(R.PredictionsFile!);
        Assert.Equal(R.Sizes!.Validation + R.Sizes.Test, rows.Count);
        Assert.Equal(R.Sizes.Validation, rows.Count(r => r[1] == "validation"));
        Assert.Equal(R.Sizes.Test, rows.Count(r => r[1] == "test"));
        Assert.Equal(rows.Count, rows.Select(r => r[0]).Distinct().Count());

        var data = DatasetCatalog.Get(fx.Card);
        foreach (var r in rows)
        {
            var s = data.Samples[int.Parse(r[0], CultureInfo.InvariantCulture)];
            Assert.Equal(s.RelativePath, r[2]);
            Assert.Equal(s.PatientId, r[3]);
            Assert.Equal(s.Label.ToString(CultureInfo.InvariantCulture), r[4]);
            Assert.InRange(float.Parse(r[5], CultureInfo.InvariantCulture), 0f, 1f);
            Assert.Equal(s.Groups["sex"], r[6]);
        }
        // Patient-level split: no patient in both validation and test.
        var valPatients = rows.Where(r => r[1] == "validation").Select(r => r[3]).ToHashSet();
        Assert.DoesNotContain(rows.Where(r => r[1] == "test"), r => valPatients.Contains(r[3]));
        // Test labels in the file match the per-group counts of the result.
        Assert.Equal(R.Overall!.Positives, rows.Count(r => r[1] == "test" && r[4] == "1"));
    }

    [Fact]
    public void A_second_run_returns_the_stored_result_without_forwards()
    {
        long before = EmbeddingStore.BackboneForwardImages;
        var again = fx.Runner.Run(fx.Spec);
        Assert.Equal(before, EmbeddingStore.BackboneForwardImages);
        Assert.Equal("done", again.Status);
        Assert.Equal(R.FinishedUtc, again.FinishedUtc); // the stored result, not a recomputation
        Assert.Equal(R.Summary!["overall-auc"], again.Summary!["overall-auc"]);

        // A new runner over the same workspace (a restart) also reuses it.
        var restarted = new CellRunner(fx.Workspace).Run(fx.Spec);
        Assert.Equal(R.FinishedUtc, restarted.FinishedUtc);
        Assert.Equal(before, EmbeddingStore.BackboneForwardImages);
    }

    [Fact]
    public void Recomputing_a_cell_gives_the_same_numbers()
    {
        // Another workspace sharing only the embeddings: the head is retrained from scratch with the same seed.
        var ws = new Workspace(fx.Tmp.Sub("recompute"), null);
        var runner = new CellRunner(ws);
        var emb = fx.Runner.Embeddings.TryLoad(R.EmbeddingKey!)!;
        var again = runner.RunWithEmbeddings(fx.Spec, emb);
        Assert.Equal("done", again.Status);
        Assert.NotEqual(R.FinishedUtc, again.FinishedUtc);
        Assert.Equal(R.SplitHash, again.SplitHash);
        Assert.Equal(R.SelectedEpoch, again.SelectedEpoch);
        Assert.Equal(R.Threshold, again.Threshold);
        foreach (var (k, v) in R.Summary!) Assert.Equal(v, again.Summary![k]);
        Assert.Equal(File.ReadAllText(R.PredictionsFile!), File.ReadAllText(again.PredictionsFile!));
    }

    [Fact]
    public void Reference_mode_chooses_the_threshold_on_test()
    {
        var spec = fx.Spec with { Metrics = new MetricsConfig { Mode = "reference" } };
        Assert.NotEqual(fx.Spec.CellId, spec.CellId);
        long before = EmbeddingStore.BackboneForwardImages;
        var r = fx.Runner.Run(spec);
        Assert.True(r.Status == "done", r.Error);
        Assert.Equal("test", r.ThresholdChosenOn);
        Assert.Equal(before, EmbeddingStore.BackboneForwardImages);
        Assert.True(r.EmbeddingCacheHit);
        // Same head (same seed and data), other threshold rule: AUC (threshold-free) agrees.
        Assert.Equal(R.Summary!["overall-auc"].Value!.Value, r.Summary!["overall-auc"].Value!.Value, 12);
    }

    [Fact]
    public void Other_attributes_and_seeds_reuse_the_embeddings()
    {
        long before = EmbeddingStore.BackboneForwardImages;
        var age = fx.Runner.Run(fx.Spec with { Attribute = "age60" });
        var inter = fx.Runner.Run(fx.Spec with { Attribute = "sex_x_age60", Seed = 1 });
        Assert.Equal(before, EmbeddingStore.BackboneForwardImages);
        Assert.True(age.Status == "done", age.Error);
        Assert.True(inter.Status == "done", inter.Error);
        Assert.Equal(R.EmbeddingKey, age.EmbeddingKey);
        Assert.True(age.EmbeddingCacheHit);
        Assert.Equal(new[] { "60+", "<60" }, age.Groups!.Select(g => g.Group).Order(StringComparer.Ordinal));
        Assert.All(inter.Groups!, g => Assert.Contains("|", g.Group));
        Assert.Equal(inter.Sizes!.Test, inter.Groups!.Sum(g => g.N));
        Assert.NotEqual(R.SplitHash, inter.SplitHash);
    }

    [Fact]
    public void A_damaged_result_file_is_recomputed()
    {
        var spec = fx.Spec with { Seed = 5 };
        var first = fx.Runner.Run(spec);
        Assert.Equal("done", first.Status);
        File.WriteAllText(fx.Runner.Results.PathFor(spec.CellId), "{ not json");
        Assert.Null(fx.Runner.Results.TryGet(spec.CellId));
        var again = fx.Runner.Run(spec);
        Assert.Equal("done", again.Status);
        Assert.NotEqual(first.FinishedUtc, again.FinishedUtc);
        Assert.Equal(first.Summary!["overall-auc"], again.Summary!["overall-auc"]);
    }
}
