using FairMedFM.Engine;
using FairMedFM.Models;

namespace FairMedFM.Engine.Tests;

/// <summary>Model cards from a JSON file (the silo's ModelCards setting): registered by id, bad files named with the reason.</summary>
public sealed class ModelCardFileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "fmfm-cards-" + Guid.NewGuid().ToString("N")[..8]);

    public ModelCardFileTests() => Directory.CreateDirectory(_dir);

    private string Write(string json)
    {
        var p = Path.Combine(_dir, Guid.NewGuid().ToString("N")[..6] + ".json");
        File.WriteAllText(p, json);
        return p;
    }

    private static string Vit(string id, string extra = "") => $$"""
        {"id": "{{id}}", "family": "timm-vit",
         "vit": {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4, "num_classes": 0, "global_pool": "token"},
         "feature_dim": 64, "image_size": 32, "weights_file": "tiny.safetensors" {{extra}}}
        """;

    [Fact]
    public void An_array_of_cards_registers_each_by_id_with_its_settings()
    {
        var id1 = "cardfile-a-" + Guid.NewGuid().ToString("N")[..6];
        var id2 = "cardfile-b-" + Guid.NewGuid().ToString("N")[..6];
        try
        {
            // Comments and trailing commas are allowed (hand-edited files).
            var ids = ModelCatalog.RegisterFile(Write($"[ // two small ViTs\n{Vit(id1)},\n{Vit(id2)},\n]"));
            Assert.Equal([id1, id2], ids);
            var card = ModelCatalog.Card(id1);
            Assert.Equal(("timm-vit", 64, 32, "tiny.safetensors"), (card.Family, card.FeatureDim, card.ImageSize, card.WeightsFile));
            Assert.Equal((8, 2), (card.Vit!.PatchSize, card.Vit.Depth));
            // A single object is a file of one card.
            Assert.Equal([id1], ModelCatalog.RegisterFile(Write(Vit(id1))));
        }
        finally { ModelCatalog.Unregister(id1); ModelCatalog.Unregister(id2); }
    }

    [Fact]
    public void Bad_files_fail_with_the_file_and_the_reason()
    {
        var missing = Path.Combine(_dir, "nope.json");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => ModelCatalog.RegisterFile(missing)).Message);

        var typo = Write(Vit("cardfile-typo", ", \"feature_dims\": 3"));
        var e = Assert.Throws<InvalidDataException>(() => ModelCatalog.RegisterFile(typo));
        Assert.Contains(typo, e.Message);
        Assert.Contains("feature_dims", e.Message);

        var zoo = ModelZoo.Cards[0].Id;
        e = Assert.Throws<InvalidDataException>(() => ModelCatalog.RegisterFile(Write(Vit(zoo))));
        Assert.Contains("zoo model", e.Message);

        e = Assert.Throws<InvalidDataException>(() => ModelCatalog.RegisterFile(Write("""[{"id": "cardfile-nodim", "family": "timm-vit", "image_size": 32}]""")));
        Assert.Contains("feature_dim", e.Message);

        e = Assert.Throws<InvalidDataException>(() => ModelCatalog.RegisterFile(Write("42")));
        Assert.Contains("expected a card object or an array", e.Message);
        Assert.Null(ModelCatalog.TryCard("cardfile-typo"));
        Assert.Null(ModelCatalog.TryCard("cardfile-nodim"));
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
