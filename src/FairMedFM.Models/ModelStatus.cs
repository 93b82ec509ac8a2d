namespace FairMedFM.Models;

/// <summary>What `fairmedfm models list` says of a card: how its family was verified, and whether its weights are here.</summary>
public sealed record ModelAvailability(ModelCard Card, string Verification, string Weights, bool Available, string? WeightsPath);

public static class ModelStatus
{
    /// <summary>FairMedFM FMs with no port yet, and why: listed rather than shipped unverified.</summary>
    public static IReadOnlyList<(string Id, string Reason)> NotYetAvailable { get; } =
    [
        ("blip-vitb16", "BLIP (LAVIS blip_feature_extractor, ViT-B/16 + BERT): no golden fixture or independent reference runtime here to verify a port"),
        ("blip2", "BLIP-2 (LAVIS, EVA ViT-g/14 + Q-Former): no golden fixture or independent reference runtime here; EVA ViT-g is 1B parameters"),
    ];

    /// <summary>
    /// How each family's port was checked against the original implementation (golden fixtures in ../shared/golden,
    /// or an independent runtime on the same file). A family missing here is not verified and says so.
    /// </summary>
    public static string Verification(ModelCard card) => card.Family switch
    {
        _ when card.Id == OnnxResNetImporter.ModelId => "verified: = ONNX Runtime on the packaged ONNX (≤1e-4)",
        "resnet" => "verified: torchvision golden (resnet18/resnet50)",
        "clip" => "verified: openai/CLIP golden (clip_vit, clip_rn, tokenizer)",
        Vit.VitModelZoo.FamilyTimmVit => "verified: timm 1.0.3 golden (timm_vit_cls/map/avg)",
        Vit.VitModelZoo.FamilyDinoV2 => "verified: DINOv2 golden (dinov2_vit)",
        Swin.SwinModelZoo.FamilySwin => "verified: torchvision golden (swin, tiny config); HF/MedCLIP key map layout-checked" +
                                        (card.TextTower is null ? "" : "; text = BERT (= ONNX Runtime) in MedCLIP's layout"),
        Vit.VitModelZoo.FamilySamVit => "verified: segment-anything golden (sam_vit image encoder)",
        // No Hugging Face reference outputs can be had here: the key map is checked by round trips onto a golden-verified module.
        Hf.HfVisionModels.FamilyDinov2 => "layout-checked: HF key map onto the golden-verified DINOv2",
        Hf.HfVisionModels.FamilySiglipVision => "layout-checked: HF key map onto the golden-verified timm ViT; text tower = independent " +
                                                 "re-implementation fixture (tests/…/Fixtures/siglip_text), SentencePiece = sentencepiece 0.1.97",
        Hf.HfVisionModels.FamilyClipVision => "layout-checked: HF key map onto the golden-verified timm ViT",
        Hf.HfClipModel.Family => "layout-checked: HF CLIPModel key map onto the golden-verified openai/CLIP (both towers, = golden logits)",
        Contrastive.ContrastiveModels.FamilyOpenClipTimm => "layout-checked: open_clip key map onto the golden-verified timm ViT; " +
                                                            "text = BERT (= ONNX Runtime) in open_clip's layout",
        Onnx.OnnxImageEncoder.Family => "runs the user's ONNX file in ONNX Runtime (no port)",
        var f => $"not verified (family '{f}')",
    };

    /// <summary>For a two-tower card whose image weights are present: whether zero-shot's tokenizer files are there too.</summary>
    private static string TextFiles(ModelCard card, string? weightsDir)
    {
        if (card.TextTower is null) return "";
        if (card.TextTower == Contrastive.ContrastiveModels.TextTowerSiglip)
        {
            var (folder, _, _) = Hf.HfVisionModels.ResolveFolder(card, weightsDir);
            return File.Exists(Path.Combine(folder, Contrastive.ContrastiveModels.SpieceFile))
                ? "; zero-shot: spiece.model found" : $"; zero-shot needs {card.HfFolder}/{Contrastive.ContrastiveModels.SpieceFile}";
        }
        var text = Text.TextModelZoo.GetCard(card.TextTower);
        return File.Exists(Path.Combine(weightsDir!, text.Folder, text.VocabFile))
            ? $"; zero-shot: {text.VocabFile} found" : $"; zero-shot needs {text.Folder}/{text.VocabFile}";
    }

    /// <summary>Packaged, found in the weights folder (with its path), or missing (with the expected file name).</summary>
    public static ModelAvailability Check(ModelCard card, string? weightsDir)
    {
        var verification = Verification(card);
        if (card.WeightsFile is null && card.HfFolder is null) return new(card, verification, "packaged", true, null);
        try
        {
            if (card.HfFolder is not null)
            {
                var (folder, config, weights) = Hf.HfVisionModels.ResolveFolder(card, weightsDir);
                if (HfConfigProblem(card, config) is { } badConfig) return new(card, verification, "unusable: " + badConfig, false, null);
                if (WeightLoader.FileProblem(weights) is { } bad) return new(card, verification, "unusable: " + bad, false, null);
                return new(card, verification, "found: " + Path.GetFileName(folder) + "/" + TextFiles(card, weightsDir), true, weights);
            }
            var path = ModelZoo.ResolveWeightsFile(card, weightsDir);
            if (WeightLoader.FileProblem(path) is { } problem) return new(card, verification, "unusable: " + problem, false, null);
            return new(card, verification, "found: " + Path.GetFileName(path) + TextFiles(card, weightsDir), true, path);
        }
        catch (FileNotFoundException) when (card.HfFolder is not null)
        {
            return new(card, verification, $"missing: expected folder {card.HfFolder}/ with config.json and model.safetensors", false, null);
        }
        catch (FileNotFoundException)
        {
            return new(card, verification, ModelZoo.MissingWeights(card.WeightsFile!, card.WeightsFileAlternatives), false, null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // One bad file is that row's problem: `models list` goes on with the others.
            return new(card, verification, "unusable: " + TorchErrors.Clean(e.Message), false, null);
        }
    }

    /// <summary>Why an HF folder's config.json cannot configure the card's module (invalid JSON, a value of the wrong kind,
    /// an unsupported setting), read as a run would read it; null when it can.</summary>
    public static string? HfConfigProblem(ModelCard card, string configJson)
    {
        try
        {
            switch (card.Family)
            {
                case Hf.HfVisionModels.FamilyDinov2: Hf.HfVisionModels.Dinov2Config(configJson); break;
                case Hf.HfVisionModels.FamilySiglipVision: Hf.HfVisionModels.SiglipVisionConfig(configJson); break;
                case Hf.HfVisionModels.FamilyClipVision: Hf.HfVisionModels.ClipVisionConfig(configJson); break;
                case Hf.HfClipModel.Family: Hf.HfClipModel.ReadConfig(configJson); break;
            }
            return null;
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException or ArgumentException or InvalidOperationException or IOException)
        {
            return e.Message.Contains(configJson, StringComparison.Ordinal) ? e.Message : $"'{configJson}': {e.Message}";
        }
    }
}
