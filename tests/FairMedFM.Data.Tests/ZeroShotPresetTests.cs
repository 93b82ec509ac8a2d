namespace FairMedFM.Data.Tests;

/// <summary>FairMedFM's per-data-set zero-shot prompts (spec §3.2) as card presets.</summary>
public class ZeroShotPresetTests
{
    private static DatasetCard Load(TempDir t, string zeroShot)
    {
        var card = TestData.SmallDataset(t.Path, TestData.SmallCard + zeroShot);
        return DatasetCard.Load(card);
    }

    [Theory]
    [InlineData("CXP", "a chest X-ray of a diseased", "a chest X-ray of a normal")]
    [InlineData("mimic_cxr", "a chest X-ray of a diseased", "a chest X-ray of a normal")]
    [InlineData("HAM10000", "a photo of a benign lesion", "a photo of a malignant lesion")]
    [InlineData("PAPILA", "a fundus image of a normal", "a fundus image of a glaucoma")]
    [InlineData("FairVLMed10k", "a scanning laser ophthalmoscope fundus image of a normal", "a scanning laser ophthalmoscope fundus image of a glaucoma")]
    [InlineData("GF3300", "a photo of a normal", "a photo of a glaucoma")]
    [InlineData("BREST", "a fundus image of a normal", "a fundus image of a retinopathy")]
    [InlineData("COVID_CT_MD", "a computed tomography of a normal", "a computed tomography of a pneumonia")]
    [InlineData("ADNI", "a brain MRI of normal", "a brain MRI of Alzheimer's disease")]
    public void A_preset_gives_FairMedFMs_prompts_class_0_then_class_1(string preset, string p0, string p1)
    {
        using var t = new TempDir();
        var card = Load(t, $"zero_shot:\n  preset: {preset}\n");
        Assert.Equal(new[] { p0, p1 }, card.ZeroShot!.Prompts());
        Assert.Equal(9, ZeroShotSpec.FairMedFMPresets.Count);
    }

    [Fact]
    public void Explicit_fields_override_the_preset()
    {
        using var t = new TempDir();
        var card = Load(t, "zero_shot:\n  preset: CXP\n  class_names: [\"normal\", \"abnormal\"]\n");
        Assert.Equal(new[] { "a chest X-ray of a normal", "a chest X-ray of a abnormal" }, card.ZeroShot!.Prompts());
    }

    [Fact]
    public void An_unknown_preset_or_a_card_with_neither_preset_nor_fields_names_the_field()
    {
        using var t = new TempDir();
        var e = Assert.Throws<DataException>(() => Load(t, "zero_shot:\n  preset: CheXpert\n"));
        Assert.Equal("zero_shot.preset", e.Field);
        Assert.Contains("CXP", e.Message);
        using var t2 = new TempDir();
        e = Assert.Throws<DataException>(() => Load(t2, "zero_shot:\n  class_names: [a, b]\n"));
        Assert.Equal("zero_shot.text_template", e.Field);
    }
}
