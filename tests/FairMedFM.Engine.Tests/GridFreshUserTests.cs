using FairMedFM.Engine.Config;

namespace FairMedFM.Engine.Tests;

/// <summary>Grid mistakes a fresh user made: each refused with the key, line and column, in the grid's words.</summary>
public class GridFreshUserTests
{
    private const string Minimal = "name: g\ndatasets: [card.yaml]\nmodels: [m]\nattributes: [sex]\n";

    private static ConfigException Invalid(string text, string source = "g.yaml") =>
        Assert.Throws<ConfigException>(() => GridSpec.Parse(text, source).Validate(source));

    [Fact]
    public void A_tab_in_the_indentation_is_named_at_its_line()
    {
        var yaml = Minimal + "usages: [lp]\nnormalization: model\nmetrics:\n  bootstrap: 0\ntraining:\n\tepochs: 5\n";
        Assert.Equal("\tepochs: 5", yaml.Split('\n')[9]);
        var e = Invalid(yaml, "tab.yaml");
        Assert.StartsWith("tab.yaml: line 10, column 1: a tab in the indentation", e.Message);
    }

    [Theory]
    [InlineData("{\"name\": \"g\", \"datasets\": [\"c.yaml\"], \"models\": [\"m\"], \"attributes\": [\"sex\"], \"seeds\": [0, \"1\"]}", "g.json", "seeds: '1' is quoted text; write an integer without quotes")]
    [InlineData(Minimal + "seeds: [0, '1']\n", "g.yaml", "line 5, column 12: seeds: '1' is quoted text; write an integer without quotes")]
    [InlineData(Minimal + "training:\n  epochs: \"5\"\n", "g.yaml", "line 6, column 11: training.epochs: '5' is quoted text")]
    [InlineData(Minimal + "split: {train: '0.6'}\n", "g.yaml", "split.train: '0.6' is quoted text; write a number without quotes")]
    [InlineData(Minimal + "training: {fixed_lr: \"true\"}\n", "g.yaml", "training.fixed_lr: 'true' is quoted text; write true or false without quotes")]
    [InlineData(Minimal + "seeds: [99999999999]\n", "g.yaml", "seeds: '99999999999' is out of range (from -2147483648 to 2147483647)")]
    public void A_quoted_number_is_refused_with_key_line_and_column(string text, string source, string expected)
    {
        var e = Invalid(text, source);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("../../ubescape", "path separator")]
    [InlineData("..", "contains '..'")]
    [InlineData("a\\\\b", "path separator")]
    [InlineData("\"bad name\"", "is not a safe folder name")]
    [InlineData("\"-x\"", "is not a safe folder name")]
    public void A_name_that_is_not_one_plain_folder_is_refused(string name, string expected)
    {
        var e = Invalid($"datasets: [card.yaml]\nmodels: [m]\nattributes: [sex]\nname: {name}\n");
        Assert.StartsWith("g.yaml: line 4, column 7: name: ", e.Message);
        Assert.Contains(expected, e.Message);
        // A grid built in code is held to the same rule.
        var g = GridSpec.Parse(Minimal, "g.yaml");
        g.Name = "../x";
        Assert.Contains("path separator", Assert.Throws<ConfigException>(() => g.Validate("g.yaml")).Message);
    }

    [Fact]
    public void A_plain_name_with_dots_and_dashes_is_fine()
    {
        var g = GridSpec.Parse("name: seg-demo_v1.2\ndatasets: [card.yaml]\nmodels: [m]\nattributes: [sex]\n", "g.yaml");
        g.Validate("g.yaml");
        Assert.Equal("seg-demo_v1.2", g.Name);
    }

    [Theory]
    [InlineData("usages: [seg-bbox, seg-box]", "line 5, column 20: usages: usage 'seg-box' is not available (available: lp, clip-zs, clip-adapt, lora, ", "did you mean 'seg-bbox'?")]
    [InlineData("normalization: modle", "line 5, column 16: normalization: normalization 'modle' is not one of: model, dataset", "did you mean 'model'?")]
    [InlineData("metrics:\n  ci: bcaa", "line 6, column 7: metrics.ci: metrics.ci 'bcaa' is not one of: percentile, bca", "did you mean 'bca'?")]
    [InlineData("training:\n  optimizer: adam", "line 6, column 14: training.optimizer: training.optimizer 'adam' is not one of: sgd, adamw", "did you mean 'adamw'?")]
    [InlineData("metrics:\n  threshold: youdn", "line 6, column 14: metrics.threshold: metrics.threshold 'youdn' is not one of", "did you mean 'youden'?")]
    public void A_catalogue_value_is_refused_where_it_stands_with_the_nearest_choice(string extra, string expected, string hint)
    {
        var e = Invalid(Minimal + extra + "\n");
        Assert.Contains("g.yaml: " + expected, e.Message);
        Assert.EndsWith(hint, e.Message);
    }
}
