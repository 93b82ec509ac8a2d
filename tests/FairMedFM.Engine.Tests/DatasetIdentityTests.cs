using FairMedFM.Engine.Config;
using FairMedFM.Engine.Evaluation;
using FairMedFM.Engine.Reports;
using Xunit;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// Two datasets must never become one matrix row: two cards that share a <c>name:</c>, or one card listed under two spellings,
/// are refused when the grid is read, and where they still meet (a remote silo's cards, a sweep extended with other
/// settings) the matrix entry is undefined with the reason instead of an average whose spread reads as a spread over seeds.
/// </summary>
public sealed class DatasetIdentityTests
{
    private static string Card(string dir, string name)
    {
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, "card.yaml");
        File.WriteAllText(path, $"name: {name}\n");
        return path;
    }

    private static string Grid(TempDir tmp, params string[] datasets)
    {
        var path = tmp.File("grid.yaml");
        File.WriteAllText(path, "name: g\ndatasets: [" + string.Join(", ", datasets) + "]\nmodels: [resnet18]\nattributes: [sex]\n");
        return path;
    }

    [Fact]
    public void Two_cards_with_one_name_are_refused_naming_both()
    {
        using var tmp = new TempDir();
        Card(tmp.Sub("a"), "nih_small");
        Card(tmp.Sub("b"), "nih_small");
        Card(tmp.Sub("c"), "other");
        var e = Assert.Throws<ConfigException>(() => GridSpec.Load(Grid(tmp, "a/card.yaml", "c/card.yaml", "b/card.yaml")));
        Assert.Contains("'a/card.yaml' and 'b/card.yaml' are both named 'nih_small'", e.Message);
        Assert.Contains("give each card its own name", e.Message);
        // Distinct names load.
        Assert.Equal(2, GridSpec.Load(Grid(tmp, "a/card.yaml", "c/card.yaml")).Datasets.Count);
    }

    [Fact]
    public void One_card_under_two_spellings_is_refused()
    {
        using var tmp = new TempDir();
        Card(tmp.Sub("ok"), "ds");
        var e = Assert.Throws<ConfigException>(() => GridSpec.Load(Grid(tmp, "ok/card.yaml", "./ok/../ok/card.yaml")));
        Assert.Contains("more than once", e.Message);
        Assert.Contains("'./ok/../ok/card.yaml'", e.Message);
    }

    private static MatrixInput Input(string card, int seed, double auc) =>
        new("nih_small", "resnet18", "lp", "erm", "sex", seed, new Dictionary<string, Cells.MetricEntry> { ["overall-auc"] = new(auc) }, [], card);

    [Fact]
    public void The_matrix_never_averages_two_cards_that_share_a_name()
    {
        var slice = FairnessMatrix.Build([Input("/d/a/card.yaml", 0, 0.47), Input("/d/b/card.yaml", 0, 0.48)], "lp", "erm", "sex", "overall-auc");
        var cell = slice.Cells[("nih_small", "resnet18")];
        Assert.Null(cell.Mean);
        Assert.StartsWith("undefined (AmbiguousDataset: 2 dataset cards are named 'nih_small'", cell.Format());
        Assert.Contains("/d/b/card.yaml", cell.Format());
    }

    [Fact]
    public void The_matrix_never_averages_two_results_of_one_seed_even_without_card_paths()
    {
        var slice = FairnessMatrix.Build([Input(null!, 0, 0.47) with { Card = null }, Input(null!, 0, 0.48) with { Card = null }], "lp", "erm", "sex", "overall-auc");
        Assert.Contains("2 results for seed 0", slice.Cells[("nih_small", "resnet18")].Format());
        // Seeds of one card still aggregate as before.
        var ok = FairnessMatrix.Build([Input("/d/a/card.yaml", 0, 0.4), Input("/d/a/card.yaml", 1, 0.6)], "lp", "erm", "sex", "overall-auc");
        Assert.Equal("0.500 ± 0.141", ok.Cells[("nih_small", "resnet18")].Format());
    }

    [Fact]
    public void The_report_gives_no_interval_for_an_entry_that_mixes_two_datasets()
    {
        using var tmp = new TempDir();
        var dir = ReportFixture.Write(tmp.Sub("r"), withCis: true);
        // chest_b's cells renamed chest_a: two cards under one name, as in a sweep extended with a clashing card.
        var path = Path.Combine(dir, "results.json");
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsArray();
        foreach (var c in node.OfType<System.Text.Json.Nodes.JsonObject>())
            if ((string?)c["dataset_name"] == "chest_b") c["dataset_name"] = "chest_a";
        File.WriteAllText(path, node.ToJsonString());
        var model = ReportModel.Build(ReportInput.Load(dir), null);
        var m = model.Matrices.First(x => x.Metric.Key == "overall-auc");
        var cell = m.Cells[("chest_a", "fm-alpha")];
        Assert.StartsWith("undefined (AmbiguousDataset", cell.ValueText);
        Assert.Null(cell.Ci);
        Assert.Equal("no CI", cell.CiText);
        Assert.Equal(0, cell.CiSeeds);
    }

    [Fact]
    public void A_misspelt_model_id_gets_the_nearest_one()
    {
        var e = Assert.Throws<ArgumentException>(() => ModelCatalog.Card("resnet18-imagenet-cnkt"));
        Assert.Contains("unknown model 'resnet18-imagenet-cnkt' (did you mean 'resnet18-imagenet-cntk'?", e.Message);
        var s = Assert.Throws<ConfigException>(() => FairMedFM.Engine.Segmentation.SegModelCatalog.Get("otsu-treshold"));
        Assert.Contains("did you mean 'otsu-threshold'?", s.Message);
    }

    [Fact]
    public void Evaluate_flags_an_estimate_outside_its_interval_and_explains_it()
    {
        static EvaluatedMetric M(double v, double lo, double hi) => new(v, null, null, lo, hi, "LowerIsBetter", "gap");
        var g = new EvaluatedGroup("F", 10, 5, 5, new Dictionary<string, EvaluatedMetric>());
        EvaluationResult R(EvaluatedMetric m) => new("p.csv", "score", 20, 20, 0, 0, "default", "best-f1", 100, "percentile", 0.95, 0, false, null,
            [new EvaluatedAttribute("group", null, new Dictionary<string, EvaluatedMetric> { ["bce-gap"] = m }, g, [g], 0.5, "test")]);
        var outside = PredictionsEvaluator.ToText(R(M(0.0018, 0.0067, 0.3120)));
        Assert.Contains("0.0018 [0.0067, 0.3120] †", outside);
        Assert.Contains(MatrixCell.OutsideIntervalNote, outside);
        var inside = PredictionsEvaluator.ToText(R(M(0.1, 0.0067, 0.3120)));
        Assert.DoesNotContain("†", inside);
    }
}
