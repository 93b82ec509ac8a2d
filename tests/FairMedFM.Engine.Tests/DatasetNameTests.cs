using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Reports;

namespace FairMedFM.Engine.Tests;

/// <summary>A dataset goes by its card's <c>name:</c> everywhere (failure lines, matrix, summary), not by its file name.</summary>
public class DatasetNameTests
{
    internal static IEnumerable<string> WithBadAge(int row)
    {
        var lines = TinyData.CsvLines.ToArray();
        int c = Array.IndexOf(TinyData.Header, "age");
        var cells = lines[row].Split(',');
        cells[c] = "unknown";
        lines[row] = string.Join(",", cells);
        return lines;
    }

    private static CellSpec Spec(string card) => new() { Dataset = card, Model = "m", Usage = "lp", Method = "erm", Attribute = "sex", Seed = 0 };

    [Fact]
    public void Label_and_failed_result_use_the_cards_name_field()
    {
        using var tmp = new TempDir();
        var a = Path.Combine(tmp.Sub("a"), "card.yaml");
        var b = Path.Combine(tmp.Sub("b"), "card.yaml");
        File.WriteAllText(a, "name: brain_mri\nmetadata_csv: x.csv\n");
        File.WriteAllText(b, "{\"name\": \"chest_ct\", \"metadata_csv\": \"x.csv\"}\n");
        Assert.StartsWith("brain_mri × m × lp", Spec(a).Label);
        Assert.StartsWith("chest_ct × m × lp", Spec(b).Label);
        var failed = CellResult.Failed(Spec(a), "boom", DateTimeOffset.UtcNow);
        Assert.Equal("brain_mri", failed.DatasetName);
        Assert.Equal("brain_mri", MatrixInput.From(failed with { DatasetName = null }).Dataset);
        Assert.Equal("brain_mri", ReportInput.DatasetName(failed with { DatasetName = null }));

        // Renaming the dataset in its card renames it everywhere, without a restart.
        File.WriteAllText(a, "name: brain_mri_v2\nmetadata_csv: x.csv\n");
        File.SetLastWriteTimeUtc(a, DateTime.UtcNow.AddMinutes(1));
        Assert.StartsWith("brain_mri_v2 ×", Spec(a).Label);
    }

    [Fact]
    public void File_stem_only_when_the_card_has_no_name_or_cannot_be_read()
    {
        using var tmp = new TempDir();
        var noName = tmp.File("card_no_name.yaml");
        File.WriteAllText(noName, "metadata_csv: x.csv\n");
        var broken = tmp.File("card_broken.yaml");
        File.WriteAllText(broken, "name: [unclosed\n  metadata_csv: x.csv\n");
        Assert.StartsWith("card_no_name ×", Spec(noName).Label);
        Assert.StartsWith("card_broken ×", Spec(broken).Label);
        Assert.StartsWith("card_missing ×", Spec(Path.Combine(tmp.Path, "card_missing.yaml")).Label);
    }

    [Fact]
    public void A_cell_failing_on_bad_metadata_is_named_by_its_card_in_the_failure_line_and_summary()
    {
        using var tmp = new TempDir();
        var card = TinyData.WriteCard(tmp.Sub("bad"), name: "tiny_bad", csvLines: WithBadAge(5));
        var renamed = Path.Combine(Path.GetDirectoryName(card)!, "card.yaml");
        File.Move(card, renamed);
        var r = new CellRunner(tmp.Workspace()).Run(Spec(renamed) with { Model = TinyData.Model });
        Assert.Equal("failed", r.Status);
        Assert.Equal("tiny_bad", r.DatasetName);
        Assert.StartsWith("tiny_bad × ", r.Spec.Label);
        var outDir = tmp.Sub("out");
        ResultWriter.Write(outDir, "g", [r]);
        var summary = File.ReadAllText(Path.Combine(outDir, "summary.md"));
        Assert.Contains("tiny_bad × ", summary);
        Assert.DoesNotContain("card × ", summary);
    }
}
