using FairMedFM.Models.Hf;
using FairMedFM.Models.Text;
using FairMedFM.Models.Vit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Contrastive;

/// <summary>
/// Builds FairMedFM's two-tower models as one encoder: the card's image feature (what the linear probe and the
/// embedding cache use) joined with its text tower and the checkpoint's logit constants, for clip-zs and clip-adapt.
/// <list type="bullet">
/// <item>BiomedCLIP (<see cref="FamilyOpenClipTimm"/>): open_clip timm ViT-B/16 image tower (<see cref="OpenClipTimmLayout"/>)
/// + the <c>biomedclip</c> BERT text card, both from <c>open_clip_pytorch_model.bin</c>; exp(logit_scale).</item>
/// <item>MedCLIP (family swin + <see cref="ModelCard.TextTower"/> <c>medclip-vit</c>): Swin-T + projection, the
/// Bio_ClinicalBERT text card, <c>logit_scale</c> of <c>pytorch_model.bin</c>.</item>
/// <item>SigLIP / MedSigLIP (hf-siglip-vision + <see cref="TextTowerSiglip"/>): the HF vision tower + <see cref="SiglipTextModel"/>
/// with <c>spiece.model</c>; exp(logit_scale) and logit_bias.</item>
/// <item>PLIP (<see cref="HfClipModel.Family"/>): the whole HF CLIPModel on openai/CLIP's module (<see cref="HfClipModel"/>).</item>
/// </list>
/// </summary>
public static class ContrastiveModels
{
    public const string FamilyOpenClipTimm = "openclip-timm";

    /// <summary><see cref="ModelCard.TextTower"/> of the SigLIP cards: HF SiglipTextModel from the card's HF folder.</summary>
    public const string TextTowerSiglip = "hf-siglip-text";

    public const string SpieceFile = "spiece.model";

    public static bool Handles(ModelCard card) =>
        card.Family is FamilyOpenClipTimm or HfClipModel.Family || card.TextTower is not null;

    public static IImageEncoder CreateEncoder(ModelCard card, string? weightsDir, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(card);
        if (card.Family == HfClipModel.Family) return HfClipModel.CreateEncoder(card, weightsDir, device);
        var image = card.Family switch
        {
            FamilyOpenClipTimm => CreateOpenClipImage(card, weightsDir, device),
            _ when HfVisionModels.Handles(card) => HfVisionModels.CreateEncoder(card, weightsDir, device),
            Swin.SwinModelZoo.FamilySwin => Swin.SwinModelZoo.CreateEncoder(card, weightsDir, device),
            _ => throw new NotSupportedException($"Model '{card.Id}': family '{card.Family}' has no contrastive builder."),
        };
        if (card.TextTower is null) return image;
        try
        {
            return AdaptableContrastiveEncoder.Join(card.Id, image, () => CreateTextSide(card, weightsDir, device));
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    /// <summary>BiomedCLIP's image tower: <c>model.visual(x)</c> = Linear(768, 512, no bias) of the normed CLS token.</summary>
    public static IImageEncoder CreateOpenClipImage(ModelCard card, string? weightsDir, Device? device = null)
    {
        var cfg = card.Vit ?? throw new InvalidOperationException($"Card '{card.Id}' has no ViT config.");
        if (cfg.NumClasses != card.FeatureDim)
            throw new InvalidOperationException($"Card '{card.Id}': the projection width {cfg.NumClasses} differs from FeatureDim {card.FeatureDim}.");
        var path = ModelZoo.ResolveWeightsFile(card, weightsDir);
        var model = new VisionTransformer(card.Id, cfg);
        try
        {
            var sd = WeightLoader.ReadStateDict(path);
            try { OpenClipTimmLayout.Load(model, sd, path); }
            finally { foreach (var t in sd.Values) t.Dispose(); }
            return new VitImageEncoder<VisionTransformer>(card.Id, model, (m, x) => m.forward(x), card.FeatureDim, WeightLoader.FileSha256(path), device);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The text side of a card (built when zero-shot first needs it).</summary>
    public static TextSide CreateTextSide(ModelCard card, string? weightsDir, Device? device = null)
    {
        var tower = card.TextTower ?? throw new InvalidOperationException($"Card '{card.Id}' has no text tower.");
        if (tower == TextTowerSiglip) return CreateSiglipText(card, weightsDir, device);
        var textCard = TextModelZoo.GetCard(tower);
        var (_, weights, _) = TextModelZoo.ResolveFiles(textCard, weightsDir);
        var scale = ReadScalars(weights, ["logit_scale"], optional: [])["logit_scale"]!.Value;
        var enc = TextModelZoo.CreateEncoder(textCard, weightsDir, device);
        return new TextSide(new BertPromptEncoder(enc), Math.Exp(scale), null);
    }

    /// <summary>SigLIP's text tower from the card's HF folder: config.json text_config, the weights' text_model.*, spiece.model.</summary>
    public static TextSide CreateSiglipText(ModelCard card, string? weightsDir, Device? device = null)
    {
        var (folder, config, weights) = HfVisionModels.ResolveFolder(card, weightsDir);
        var spiece = Path.Combine(folder, SpieceFile);
        if (!File.Exists(spiece))
            throw new FileNotFoundException($"Text tower of model '{card.Id}': '{SpieceFile}' not found in '{folder}' (the tokenizer of the hub repository" +
                                            (card.WeightsUrl is null ? ")." : $" {card.WeightsUrl})."), spiece);
        var cfg = SiglipTextConfig.FromConfigJson(config);
        var tokenizer = new SiglipTokenizer(spiece, cfg.EosTokenId, cfg.PadTokenId);
        var model = new SiglipTextModel(card.Id + "-text", cfg);
        try
        {
            var sd = HfCheckpoint.Read(weights);
            double scale, bias;
            try
            {
                LoadSiglipText(model, sd, weights);
                var s = ReadScalars(sd, ["logit_scale", "logit_bias"], weights);
                (scale, bias) = (s["logit_scale"]!.Value, s["logit_bias"]!.Value);
            }
            finally { foreach (var t in sd.Values) t.Dispose(); }
            return new TextSide(new SiglipPromptEncoder(model, tokenizer, device), Math.Exp(scale), bias);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public const string SiglipTextMapName = "HF SiglipModel text_model.* (names kept; vision_model.*, logit_scale/bias and position_ids dropped)";

    /// <summary>Strict load of <c>text_model.*</c> of a SiglipModel (or a bare SiglipTextModel) checkpoint.</summary>
    public static WeightLoadReport LoadSiglipText(SiglipTextModel model, IReadOnlyDictionary<string, Tensor> checkpoint, string source) =>
        WeightLoader.LoadStateDict(model, checkpoint, new WeightLoadOptions
        {
            Strict = true,
            KeyMap = k => k.StartsWith("vision_model.", StringComparison.Ordinal) || k is "logit_scale" or "logit_bias" ||
                          k.EndsWith("position_ids", StringComparison.Ordinal) ? null : k,
        }, $"{source} [key map: {SiglipTextMapName}]");

    /// <summary>Scalars (one-element tensors) of a checkpoint file by key; a missing required key names the file and the key.</summary>
    public static Dictionary<string, double?> ReadScalars(string path, IReadOnlyList<string> required, IReadOnlyList<string> optional)
    {
        var sd = WeightLoader.ReadStateDict(path);
        try
        {
            var r = ReadScalars(sd, required, path);
            foreach (var k in optional) r[k] = sd.TryGetValue(k, out var t) ? Scalar(t, k, path) : null;
            return r;
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
    }

    public static Dictionary<string, double?> ReadScalars(IReadOnlyDictionary<string, Tensor> sd, IReadOnlyList<string> required, string source)
    {
        var r = new Dictionary<string, double?>(StringComparer.Ordinal);
        foreach (var k in required)
        {
            if (!sd.TryGetValue(k, out var t))
                throw new InvalidDataException($"'{source}' has no tensor '{k}', which zero-shot logits need.");
            r[k] = Scalar(t, k, source);
        }
        return r;
    }

    private static double Scalar(Tensor t, string key, string source)
    {
        if (t.numel() != 1) throw new InvalidDataException($"'{source}': '{key}' has shape [{string.Join(",", t.shape)}], expected one value.");
        var v = t.to(float64).reshape(1).item<double>();
        if (!double.IsFinite(v)) throw new InvalidDataException($"'{source}': '{key}' is {v}.");
        return v;
    }
}
