using FairMedFM.Models.Vit;
using FairMedFM.Models.Clip;
using static TorchSharp.torch;

namespace FairMedFM.Models;

/// <summary>What the engine needs to know about one encoder.</summary>
public sealed class ModelCard
{
    public string Id { get; init; } = "";
    public string Family { get; init; } = "";
    public ResNetConfig? ResNet { get; init; }

    /// <summary>Family "timm-vit": the timm VisionTransformer configuration.</summary>
    public VitConfig? Vit { get; init; }

    /// <summary>Family "dinov2": the DinoVisionTransformer configuration.</summary>
    public DinoV2Config? DinoV2 { get; init; }

    /// <summary>Family "sam-vit": the segment-anything ImageEncoderViT configuration.</summary>
    public SamVitConfig? SamVit { get; init; }

    /// <summary>The openai/CLIP architecture for family "clip" (the weights must match it exactly).</summary>
    public ClipConfig? Clip { get; init; }

    /// <summary>Family "swin": the Swin Transformer (v1) configuration of the image tower (MedCLIP).</summary>
    public Swin.SwinConfig? Swin { get; init; }

    public int FeatureDim { get; init; }
    public int ImageSize { get; init; }

    /// <summary>Expected file name in the weights dir (null: packaged with the build).</summary>
    public string? WeightsFile { get; init; }

    /// <summary>Other accepted file names, tried after <see cref="WeightsFile"/>.</summary>
    public IReadOnlyList<string> WeightsFileAlternatives { get; init; } = [];

    /// <summary>
    /// Hugging Face families (hf-*): the sub-folder of the weights dir holding the model as the hub has it
    /// (config.json + model.safetensors, pytorch_model.bin or a sharded *.index.json with its shards).
    /// </summary>
    public string? HfFolder { get; init; }

    /// <summary>Family "onnx": the ONNX file and the input/output it is run with (see <see cref="Onnx.OnnxImageEncoder.LoadCard"/>).</summary>
    public Onnx.OnnxEncoderSpec? Onnx { get; init; }

    /// <summary>Where the weights file can be obtained.</summary>
    public string? WeightsUrl { get; init; }

    /// <summary>
    /// "model-mean-image": BGR, 0–255, minus the model's per-pixel mean image (the packaged CNTK ResNet);
    /// "meanstd": RGB in [0,1], (x − Mean)/Std per channel; "dataset": the data set's own normalisation.
    /// </summary>
    public string NormalizationKind { get; init; } = "meanstd";

    public float[]? Mean { get; init; }
    public float[]? Std { get; init; }
    public string? License { get; init; }
    public string? Source { get; init; }

    /// <summary>
    /// Top-level key of the checkpoint that holds the state dict (e.g. "state_dict" for PubMedCLIP); documentation only,
    /// the loader unwraps the usual wrappers itself.
    /// </summary>
    public string? WeightsWrapperKey { get; init; }

    /// <summary>For image–text models: how FairMedFM scales cosine similarities into zero-shot logits.</summary>
    public ZeroShotLogitScale? ZeroShotLogitScale { get; init; }

    /// <summary>ResNet feature: "pooled" (the 512/2048-d average pool) or "head-l2" (the fc output, L2-normalised, as C2L).</summary>
    public string ResNetFeature { get; init; } = "pooled";

    /// <summary>Checkpoint key prefixes removed before matching (first match wins), e.g. C2L's "encoder.module.".</summary>
    public IReadOnlyList<string> StripKeyPrefixes { get; init; } = [];

    /// <summary>Checkpoint keys (after stripping) starting with these are dropped, e.g. MoCo's key encoder and queue.</summary>
    public IReadOnlyList<string> DropKeyPrefixes { get; init; } = [];

    /// <summary>
    /// FairMedFM's <c>lora_targets</c>: names of the Linear modules LoRA wraps, matched as PEFT does (a module whose
    /// full name equals a target or ends with "." + target). Null or empty: the model is not LoRA-eligible (FairMedFM:
    /// C2L, MoCoCXR, CLIP, PubMedCLIP, PLIP, SigLIP — "not a ViT-based model or not supported").
    /// </summary>
    public IReadOnlyList<string>? LoraTargets { get; init; }

    /// <summary>LoRA rank r (PEFT 0.11.1 default 8).</summary>
    public int LoraRank { get; init; } = 8;

    /// <summary>LoRA alpha; the update is scaled by alpha / r (PEFT default 8, so scale 1).</summary>
    public double LoraAlpha { get; init; } = 8;

    /// <summary>Dropout on the input of LoRA's A matrix (PEFT default 0).</summary>
    public double LoraDropout { get; init; }

    /// <summary>
    /// Two-tower models whose image tower is built by an image family: the text tower joined to it for zero-shot
    /// (<see cref="Contrastive.ContrastiveModels"/>): a <see cref="Text.TextModelZoo"/> id (BERT towers of BiomedCLIP and
    /// MedCLIP, from the same checkpoint) or <see cref="Contrastive.ContrastiveModels.TextTowerSiglip"/>. Null: image only
    /// (families that carry both towers themselves, clip and hf-clip, leave it null).
    /// </summary>
    public string? TextTower { get; init; }
}

/// <summary>
/// How zero-shot logits are scaled: <c>logits = scale · cos(image, text)</c> with scale = <see cref="Fixed"/> when
/// set, else <see cref="Multiplier"/> · exp(logit_scale) of the loaded weights.
/// </summary>
public sealed record ZeroShotLogitScale(double? Fixed, double Multiplier, string Note)
{
    public double Apply(double expLogitScale) => Fixed ?? Multiplier * expLogitScale;

    /// <summary>A constant added to every zero-shot logit (none for the CLIP cards).</summary>
    public double? FixedBias { get; init; }

    /// <summary>
    /// SigLIP-style: add the learned <c>logit_bias</c> of the loaded weights
    /// (<see cref="IContrastiveLogits.LogitBias"/>); FairMedFM: <c>exp(logit_scale) · cos + logit_bias</c>.
    /// </summary>
    public bool BiasFromWeights { get; init; }

    /// <summary>The additive term: <see cref="FixedBias"/>, else the weights' bias when <see cref="BiasFromWeights"/>, else 0.</summary>
    public double Bias(double? weightsBias) =>
        FixedBias ?? (BiasFromWeights
            ? weightsBias ?? throw new InvalidOperationException($"zero-shot logits need the model's logit_bias, but its text encoder reports none ({Note})")
            : 0.0);
}

public static class ModelZoo
{
    public static readonly float[] ImageNetMean = [0.485f, 0.456f, 0.406f];
    public static readonly float[] ImageNetStd = [0.229f, 0.224f, 0.225f];

    /// <summary>openai/CLIP's Normalize of <c>clip.load</c>'s preprocess.</summary>
    public static readonly float[] ClipMean = [0.48145466f, 0.4578275f, 0.40821073f];
    public static readonly float[] ClipStd = [0.26862954f, 0.26130258f, 0.27577711f];

    private const string TorchScriptHint =
        "OpenAI's .pt downloads are TorchScript archives; convert once with PyTorch: " +
        "python -c \"import torch; m = torch.jit.load('ViT-B-32.pt', map_location='cpu'); " +
        "torch.save({k: v.float() for k, v in m.state_dict().items()}, 'ViT-B-32.pth')\" and put ViT-B-32.pth in the weights folder.";

    public static IReadOnlyList<ModelCard> Cards { get; } =
    [
        new ModelCard
        {
            Id = OnnxResNetImporter.ModelId,
            Family = "resnet",
            ResNet = ResNetConfig.CntkResNet18,
            FeatureDim = 512,
            ImageSize = 224,
            WeightsFile = null,
            NormalizationKind = "model-mean-image",
            License = "MIT (Microsoft.ML.DnnImageFeaturizer.ResNet18 NuGet package)",
            Source = "NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.24.0, tools/DnnImageModels/ResNet18Onnx/ResNet18.onnx " +
                     "(CNTK 2.6 ImageNet export; stages 2,2,2,3), converted to TorchSharp",
        },
        new ModelCard
        {
            Id = "resnet18",
            Family = "resnet",
            ResNet = ResNetConfig.ResNet18,
            FeatureDim = 512,
            ImageSize = 224,
            WeightsFile = "resnet18-f37072fd.pth",
            WeightsFileAlternatives = ["resnet18.safetensors", "resnet18.pth", "resnet18.pt", "resnet18.bin"],
            WeightsUrl = "https://download.pytorch.org/models/resnet18-f37072fd.pth",
            NormalizationKind = "meanstd",
            Mean = ImageNetMean,
            Std = ImageNetStd,
            License = "BSD-3-Clause (torchvision)",
            Source = "torchvision.models.resnet18, ResNet18_Weights.IMAGENET1K_V1",
        },
        new ModelCard
        {
            Id = "resnet50",
            Family = "resnet",
            ResNet = ResNetConfig.ResNet50,
            FeatureDim = 2048,
            ImageSize = 224,
            WeightsFile = "resnet50-0676ba61.pth",
            WeightsFileAlternatives = ["resnet50.safetensors", "resnet50.pth", "resnet50.pt", "resnet50.bin"],
            WeightsUrl = "https://download.pytorch.org/models/resnet50-0676ba61.pth",
            NormalizationKind = "meanstd",
            Mean = ImageNetMean,
            Std = ImageNetStd,
            License = "BSD-3-Clause (torchvision)",
            Source = "torchvision.models.resnet50, ResNet50_Weights.IMAGENET1K_V1",
        },
        new ModelCard
        {
            Id = "c2l-r18",
            Family = "resnet",
            ResNet = ResNetConfig.ResNet18 with { NumClasses = 128 },
            ResNetFeature = "head-l2",
            FeatureDim = 128,
            ImageSize = 224,
            WeightsFile = "res18_C2L.pth",
            WeightsFileAlternatives = ["c2l-r18.safetensors", "c2l-r18.pth"],
            WeightsWrapperKey = "model",
            StripKeyPrefixes = ["encoder.module.", "module."],
            WeightsUrl = "FairMedFM's pretrained.zip (C2L/res18_C2L.pth; C2L, MICCAI 2020)",
            NormalizationKind = "dataset",
            License = "see the C2L release",
            Source = "C2L ResNet-18 (comparing to learn, chest X-ray contrastive pre-training): AvgPool → fc 512→128 → L2 normalise " +
                     "(FairMedFM models/c2l.py; its config path case bug B21 does not apply: the file is looked up here by name)",
        },
        new ModelCard
        {
            Id = "mococxr-r18",
            Family = "resnet",
            ResNet = ResNetConfig.ResNet18 with { NumClasses = 0 },
            FeatureDim = 512,
            ImageSize = 224,
            WeightsFile = "r8w-00001-v2.pth.tar",
            WeightsFileAlternatives = ["mococxr-r18.safetensors", "mococxr-r18.pth"],
            WeightsWrapperKey = "state_dict",
            StripKeyPrefixes = ["module.encoder_q.", "encoder_q.", "module."],
            DropKeyPrefixes = ["fc.", "encoder_k.", "module.encoder_k.", "queue"],
            WeightsUrl = "FairMedFM's pretrained.zip (mococxr/r8w-00001-v2.pth.tar; MoCo-CXR, Stanford ML Group)",
            NormalizationKind = "dataset",
            License = "see the MoCo-CXR release",
            Source = "MoCo-CXR ResNet-18 query encoder. FairMedFM skips every key containing 'fc', so its 128-d feature is a " +
                     "randomly initialised projection (B23); here the feature is the trained backbone's 512-d pooled output and " +
                     "the MoCo head, key encoder and queue are dropped on purpose",
        },
        new ModelCard
        {
            Id = "dinov2-vitb14",
            Family = VitModelZoo.FamilyDinoV2,
            DinoV2 = DinoV2Config.VitB14,
            FeatureDim = 768,
            ImageSize = 224,
            WeightsFile = "dinov2_vitb14_pretrain.pth",
            WeightsFileAlternatives = ["dinov2-vitb14.safetensors", "dinov2-vitb14.pth"],
            WeightsUrl = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth",
            NormalizationKind = "meanstd",
            Mean = ImageNetMean,
            Std = ImageNetStd,
            License = "Apache-2.0 (facebookresearch/dinov2 code and weights)",
            LoraTargets = ["qkv"],
            Source = "torch.hub facebookresearch/dinov2 dinov2_vitb14 (ViT-B/14 built at 518 px, layer scale; fed 224 px, " +
                     "pos-embed bicubically interpolated 37×37 → 16×16); feature = normed CLS token (FairMedFM DINOv2)",
        },
        new ModelCard
        {
            Id = "medmae-vitb16",
            Family = VitModelZoo.FamilyTimmVit,
            Vit = VitConfig.VitBase16,
            FeatureDim = 768,
            ImageSize = 224,
            WeightsFile = "vit-b_CXR_0.5M_mae.pth",
            WeightsFileAlternatives = ["medmae-vitb16.safetensors", "medmae-vitb16.pth"],
            WeightsUrl = "https://github.com/lambert-x/medical_mae (also in FairMedFM's pretrained.zip as medmae/vit-b_CXR_0.5M_mae.pth)",
            // The pretraining statistics are not pinned by the spec or a fixture; FairMedFM itself normalises per data set.
            NormalizationKind = "dataset",
            License = "see lambert-x/medical_mae",
            LoraTargets = ["qkv"],
            Source = "MedMAE ViT-B/16 MAE-pretrained on 0.5M chest X-rays; timm VisionTransformer() defaults, feature = CLS " +
                     "token after the final norm (FairMedFM MedMAE, head → Identity)",
        },
        new ModelCard
        {
            Id = "lvmmed-vitb16",
            Family = VitModelZoo.FamilySamVit,
            SamVit = SamVitConfig.LvmMedVitB,
            FeatureDim = 768,
            ImageSize = 224,
            WeightsFile = "lvmmed_vit.pth",
            WeightsFileAlternatives = ["lvmmed-vitb16.safetensors", "lvmmed-vitb16.pth"],
            WeightsUrl = "https://github.com/duyhominhnguyen/LVM-Med (also in FairMedFM's pretrained.zip as LVMMed/lvmmed_vit.pth)",
            // As for MedMAE: no pinned pretraining statistics; FairMedFM normalises per data set.
            NormalizationKind = "dataset",
            License = "see duyhominhnguyen/LVM-Med",
            LoraTargets = ["qkv"],
            Source = "LVM-Med ViT-B/16: segment-anything ImageEncoderViT at the 1024 setting without absolute pos-embed, " +
                     "fed 224 px; feature = AdaptiveAvgPool2d(1) of the last block map (FairMedFM MedLVM, batch axis kept)",
        },
        new ModelCard
        {
            Id = "clip-vit-b32",
            Family = "clip",
            Clip = ClipConfig.ViTB32,
            FeatureDim = 512,
            ImageSize = 224,
            // What clip.load downloads; it is TorchScript, so a converted state dict (an alternative name) is needed.
            WeightsFile = "ViT-B-32.pt",
            WeightsFileAlternatives = ["ViT-B-32.safetensors", "ViT-B-32.pth", "clip-vit-b32.safetensors", "clip-vit-b32.pth"],
            WeightsUrl = "https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt" +
                         " (TorchScript: " + TorchScriptHint + ")",
            NormalizationKind = "meanstd",
            Mean = ClipMean,
            Std = ClipStd,
            License = "MIT (openai/CLIP)",
            Source = "openai/CLIP clip.load(\"ViT-B/32\") (commit a1d0717 as pinned by FairMedFM); image feature = encode_image",
            ZeroShotLogitScale = new ZeroShotLogitScale(100.0, 1.0,
                "FairMedFM models/clip.py: logits = 100 · cos (OpenAI's trained logit_scale is ln 100, so the same)"),
        },
        new ModelCard
        {
            Id = "pubmedclip-vit-b32",
            Family = "clip",
            Clip = ClipConfig.ViTB32,
            FeatureDim = 512,
            ImageSize = 224,
            WeightsFile = "PubMedCLIP_ViT32.pth",
            WeightsFileAlternatives = ["pubmedclip-vit-b32.safetensors", "pubmedclip-vit-b32.pth"],
            WeightsWrapperKey = "state_dict",
            WeightsUrl = "https://1drv.ms/u/s!ApXgPqe9kykTgn9wfsfX8JN0kjo-?e=dheCuW (the PubMedCLIP authors' OneDrive; " +
                         "also mirrored at https://huggingface.co/sarahESL/PubMedCLIP)",
            NormalizationKind = "meanstd",
            Mean = ClipMean,
            Std = ClipStd,
            License = "MIT (sarahESL/PubMedCLIP; fine-tuned from openai/CLIP, MIT)",
            Source = "PubMedCLIP ViT-B/32 (CLIP fine-tuned on ROCO), a torch.save({'state_dict': ...}) checkpoint loaded " +
                     "into clip.load(\"ViT-B/32\") as FairMedFM models/pubmed_clip.py does",
            ZeroShotLogitScale = new ZeroShotLogitScale(null, Math.Exp(0.01) / Math.Exp(0.07),
                "FairMedFM models/pubmed_clip.py quirk: logits = e^0.01 / e^0.07 · exp(logit_scale) · cos = e^-0.06 · exp(logit_scale) · cos"),
        },
        new ModelCard
        {
            Id = "rad-dino",
            Family = Hf.HfVisionModels.FamilyDinov2,
            DinoV2 = DinoV2Config.VitB14 with { InitValues = 1.0, InterpolateOffset = 0 },
            FeatureDim = 768,
            ImageSize = 224,
            HfFolder = "rad-dino",
            WeightsUrl = "https://huggingface.co/microsoft/rad-dino (config.json, model.safetensors)",
            // FairMedFM feeds 224 px normalised per data set (RAD-DINO's own processor resizes to 518).
            NormalizationKind = "dataset",
            License = "see the microsoft/rad-dino model card",
            // FairMedFM's lora_targets for RAD-DINO (HF names); the port fuses them into qkv, adapted by thirds.
            LoraTargets = ["query", "key", "value"],
            Source = "transformers Dinov2Model microsoft/rad-dino (ViT-B/14 at 518, layer scale) → DinoVisionTransformer via the HF key " +
                     "map (query/key/value fused, layer_scale → ls.gamma); fed 224 px, position embeddings resampled by output size as " +
                     "transformers does; feature = pooler_output (layernormed CLS)",
        },
        new ModelCard
        {
            Id = "siglip-base",
            Family = Hf.HfVisionModels.FamilySiglipVision,
            Vit = new VitConfig { ImgSize = 224, PatchSize = 16, EmbedDim = 768, Depth = 12, NumHeads = 12, MlpHiddenDim = 3072,
                                  ClassToken = false, GlobalPool = "map", FcNorm = false, NumClasses = 0, Activation = "gelu_tanh" },
            FeatureDim = 768,
            ImageSize = 224,
            HfFolder = "siglip-base",
            WeightsUrl = "https://huggingface.co/google/siglip-base-patch16-224 (config.json, model.safetensors)",
            NormalizationKind = "meanstd",
            Mean = [0.5f, 0.5f, 0.5f],
            Std = [0.5f, 0.5f, 0.5f],
            License = "Apache-2.0 (google/siglip-base-patch16-224)",
            Source = "transformers SiglipModel google/siglip-base-patch16-224 vision tower → timm VisionTransformer (no class token, " +
                     "'map' pooling, tanh GELU) via the HF key map; feature = get_image_features (the MAP head's pooled output); " +
                     "text tower = SiglipTextModel (HF names) with spiece.model, last-token pooling + head",
            TextTower = Contrastive.ContrastiveModels.TextTowerSiglip,
            ZeroShotLogitScale = new ZeroShotLogitScale(null, 1.0,
                "FairMedFM models/siglip.py: logits = exp(logit_scale) · cos + logit_bias (P(y=1) = softmax over the two prompts, §3.2)")
            { BiasFromWeights = true },
        },
        new ModelCard
        {
            Id = "medsiglip-448",
            Family = Hf.HfVisionModels.FamilySiglipVision,
            Vit = new VitConfig { ImgSize = 448, PatchSize = 14, EmbedDim = 1152, Depth = 27, NumHeads = 16, MlpHiddenDim = 4304,
                                  ClassToken = false, GlobalPool = "map", FcNorm = false, NumClasses = 0, Activation = "gelu_tanh" },
            FeatureDim = 1152,
            // The model's own size: FairMedFM feeds it 224 px (B17), which transformers rejects without
            // interpolate_pos_encoding; here images are resized to 448.
            ImageSize = 448,
            HfFolder = "medsiglip-448",
            WeightsUrl = "https://huggingface.co/google/medsiglip-448 (gated: accept the Health AI Developer Foundations terms; " +
                         "config.json, model.safetensors)",
            NormalizationKind = "meanstd",
            Mean = [0.5f, 0.5f, 0.5f],
            Std = [0.5f, 0.5f, 0.5f],
            License = "Health AI Developer Foundations terms of use (google/medsiglip-448)",
            Source = "transformers SiglipModel google/medsiglip-448 vision tower (So400m/14 at 448) → timm VisionTransformer via the HF " +
                     "key map; feature = get_image_features; text tower = SiglipTextModel from the same folder (config.json text_config, spiece.model)",
            TextTower = Contrastive.ContrastiveModels.TextTowerSiglip,
            ZeroShotLogitScale = new ZeroShotLogitScale(null, 1.0,
                "FairMedFM models/medsiglip.py: logits = exp(logit_scale) · cos + logit_bias (P(y=1) = softmax over the two prompts, §3.2)")
            { BiasFromWeights = true },
        },
        new ModelCard
        {
            Id = "plip",
            Family = Hf.HfClipModel.Family,
            FeatureDim = 512,
            ImageSize = 224,
            HfFolder = "plip",
            WeightsUrl = "https://huggingface.co/vinid/plip (config.json, pytorch_model.bin or model.safetensors)",
            NormalizationKind = "meanstd",
            Mean = [0.48145466f, 0.4578275f, 0.40821073f],
            Std = [0.26862954f, 0.26130258f, 0.27577711f],
            License = "see the vinid/plip model card",
            Source = "transformers CLIPModel vinid/plip (ViT-B/32), both towers → openai/CLIP's module via the HF key map (q/k/v → in_proj, " +
                     "projections transposed); feature = get_image_features (512, the joint space, as PLIP's own linear probing); FairMedFM " +
                     "declares 768 but its wrapper returns the ModelOutput itself (B16), so its PLIP probe never ran; text = get_text_features " +
                     "with the CLIP BPE tokenizer",
            ZeroShotLogitScale = new ZeroShotLogitScale(null, 1.0,
                "CLIPModel.logits_per_image: exp(logit_scale) · cos (FairMedFM's PLIP forward_clip feeds features as token ids, B16)"),
        },
        new ModelCard
        {
            Id = "medclip-vit",
            Family = Swin.SwinModelZoo.FamilySwin,
            Swin = Swin.SwinConfig.SwinT,
            FeatureDim = 512,
            ImageSize = 224,
            // MedCLIP's from_pretrained unpacks medclip-vit-pretrain.zip into a folder holding pytorch_model.bin
            // (vision_model.* and text_model.*); FairMedFM's pretrained.zip has the same folder medclip-vit/.
            WeightsFile = "medclip-vit/pytorch_model.bin",
            WeightsFileAlternatives = ["medclip-vit/model.safetensors", "medclip-vit.safetensors", "medclip-vit.bin"],
            WeightsUrl = "MedCLIP's release medclip-vit-pretrain.zip (medclip 0.0.3 constants.PRETRAIN_URL_VIT; also in " +
                         "FairMedFM's pretrained.zip as medclip-vit/): unzip so that medclip-vit/pytorch_model.bin is in the weights folder",
            // MedCLIP's own processor normalises grey images with one mean/std (not pinned by the spec here);
            // FairMedFM normalises every model per data set, as done here.
            NormalizationKind = "dataset",
            License = "see RyanWangZf/MedCLIP (weights: MedCLIP release)",
            // FairMedFM's lora_targets for MedCLIP (HF names); the port fuses them into qkv, adapted by thirds.
            LoraTargets = ["query", "key", "value"],
            Source = "medclip 0.0.3 MedCLIPVisionModelViT: HF SwinModel microsoft/swin-tiny-patch4-window7-224 (vision_model.model.*) " +
                     "→ torchvision-layout SwinTransformer via the HF key map (query/key/value fused), + projection_head " +
                     "Linear(768, 512, no bias); feature = projection_head(pooler_output), not L2-normalised (FairMedFM vision_model(x)); " +
                     "text tower = the medclip-vit text card (Bio_ClinicalBERT + projection) from the same pytorch_model.bin",
            TextTower = "medclip-vit",
            ZeroShotLogitScale = new ZeroShotLogitScale(null, 1.0,
                "FairMedFM models/medclip.py: logits = exp(logit_scale) · norm(img) · norm(T)ᵀ (logit_scale of pytorch_model.bin)"),
        },
        new ModelCard
        {
            Id = "biomedclip",
            Family = Contrastive.ContrastiveModels.FamilyOpenClipTimm,
            Vit = Contrastive.OpenClipTimmLayout.BiomedClipVit,
            FeatureDim = 512,
            ImageSize = 224,
            // The hub repository's files, in the folder the biomedclip text card reads too (vocab.txt beside it).
            WeightsFile = "biomedclip/open_clip_pytorch_model.bin",
            WeightsFileAlternatives = ["biomedclip/open_clip_model.safetensors", "biomedclip/open_clip_pytorch_model.safetensors"],
            WeightsUrl = "https://huggingface.co/microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 (open_clip_pytorch_model.bin; " +
                         "for zero-shot also vocab.txt from microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract in the same folder)",
            // open_clip_config.json preprocess_cfg: OpenAI CLIP mean/std.
            NormalizationKind = "meanstd",
            Mean = ClipMean,
            Std = ClipStd,
            License = "MIT (BiomedCLIP), see the model card",
            LoraTargets = ["qkv"],
            Source = "open_clip hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224: image tower = open_clip TimmModel " +
                     "(vit_base_patch16_224, timm_pool '', timm_proj linear, no bias) → timm VisionTransformer via the open_clip key map " +
                     "(visual.trunk.* → *, visual.head.proj → head); feature = model.visual(x) (512); text tower = the biomedclip text card",
            TextTower = "biomedclip",
            ZeroShotLogitScale = new ZeroShotLogitScale(null, 1.0,
                "FairMedFM models/biomedclip.py: logits = exp(logit_scale) · norm(img) · norm(T)ᵀ"),
        },
    ];

    /// <summary>`models list`'s status of a card whose weights are not there: "missing: expected a.pth (or a.safetensors)",
    /// each accepted name once (a card may list its main file among the alternatives).</summary>
    public static string MissingWeights(string main, IEnumerable<string> alternatives)
    {
        var others = alternatives.Where(n => !string.Equals(n, main, StringComparison.Ordinal)).Distinct(StringComparer.Ordinal).ToList();
        return $"missing: expected {main}" + (others.Count > 0 ? $" (or {string.Join(", ", others)})" : "");
    }

    public static ModelCard GetCard(string modelId) =>
        Cards.FirstOrDefault(c => string.Equals(c.Id, modelId, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown model '{modelId}'. Known: {string.Join(", ", Cards.Select(c => c.Id))}.", nameof(modelId));

    /// <summary>FAIRMEDFM_CACHE, else ~/.cache/fairmedfm/models.</summary>
    public static string DefaultCacheDir =>
        Environment.GetEnvironmentVariable("FAIRMEDFM_CACHE") is { Length: > 0 } c
            ? c
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "fairmedfm", "models");

    /// <summary>
    /// The weights file for a card in <paramref name="weightsDir"/>: the first of <see cref="ModelCard.WeightsFile"/>
    /// and its alternatives that exists and is not a TorchScript archive. Throws a FileNotFoundException naming what was
    /// expected, or an InvalidDataException when only TorchScript files (OpenAI's .pt downloads) are there.
    /// </summary>
    public static string ResolveWeightsFile(ModelCard card, string? weightsDir)
    {
        if (card.WeightsFile is null) throw new InvalidOperationException($"Model '{card.Id}' has packaged weights.");
        var names = new[] { card.WeightsFile }.Concat(card.WeightsFileAlternatives).Distinct(StringComparer.Ordinal).ToList();
        var torchScript = new List<string>();
        if (!string.IsNullOrEmpty(weightsDir))
            foreach (var n in names)
            {
                var p = Path.Combine(weightsDir, n);
                if (!File.Exists(p)) continue;
                if (WeightLoader.IsTorchScriptArchive(p)) { torchScript.Add(p); continue; }
                return p;
            }
        if (torchScript.Count > 0)
        {
            var file = Path.GetFileName(torchScript[0]);
            var output = names.FirstOrDefault(n => n.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
                         ?? Path.GetFileNameWithoutExtension(file) + ".safetensors";
            throw new InvalidDataException(
                $"Weights for model '{card.Id}': '{torchScript[0]}' is a TorchScript archive, not a state dict. " +
                $"Put a state dict (.safetensors or torch.save .pth) named {string.Join(" or ", names.Where(n => n != file).Take(2))} " +
                $"in '{weightsDir}'. {WeightLoader.TorchScriptConversion(file, output)}");
        }
        string where = string.IsNullOrEmpty(weightsDir) ? "no weights dir was given" : $"weights dir '{weightsDir}'";
        throw new FileNotFoundException(
            $"Weights for model '{card.Id}' not found ({where}). Expected '{card.WeightsFile}'" +
            (names.Count > 1 ? $" (or {string.Join(", ", names.Skip(1))})" : "") +
            (card.WeightsUrl is null ? "." : $"; download it from {card.WeightsUrl}."),
            string.IsNullOrEmpty(weightsDir) ? card.WeightsFile : Path.Combine(weightsDir, card.WeightsFile));
    }

    public static IImageEncoder CreateEncoder(string modelId, string? weightsDir, string cacheDir) =>
        CreateEncoder(modelId, weightsDir, cacheDir, device: null);

    public static IImageEncoder CreateEncoder(string modelId, string? weightsDir, string cacheDir, Device? device)
        => CreateEncoder(ResolveCard(modelId, weightsDir), weightsDir, cacheDir, device);

    /// <summary>
    /// A built-in card, else a user's ONNX card <c>&lt;weightsDir&gt;/&lt;id&gt;/onnx-card.json</c> (an FM exported to ONNX
    /// that has no port here).
    /// </summary>
    public static ModelCard ResolveCard(string modelId, string? weightsDir)
    {
        var builtIn = Cards.FirstOrDefault(c => string.Equals(c.Id, modelId, StringComparison.OrdinalIgnoreCase));
        if (builtIn is not null) return builtIn;
        if (!string.IsNullOrEmpty(weightsDir) && modelId.IndexOfAny(['/', '\\']) < 0 && modelId is not ("." or ".."))
        {
            var cardPath = Path.Combine(weightsDir, modelId, Onnx.OnnxImageEncoder.CardFileName);
            if (File.Exists(cardPath))
            {
                var card = Onnx.OnnxImageEncoder.LoadCard(cardPath, weightsDir);
                if (!string.Equals(card.Id, modelId, StringComparison.OrdinalIgnoreCase))
                    throw new InvalidDataException($"'{cardPath}' declares id '{card.Id}', not '{modelId}'.");
                return card;
            }
        }
        return GetCard(modelId);
    }

    /// <summary>
    /// The encoder of <paramref name="card"/> (a zoo card or one built by the caller, e.g. a small configuration or a local CLIP variant).
    /// Weights are looked up first, so a missing file fails before any full-size module is built.
    /// </summary>
    public static IImageEncoder CreateEncoder(ModelCard card, string? weightsDir, string cacheDir, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(card);
        if (Contrastive.ContrastiveModels.Handles(card)) return Contrastive.ContrastiveModels.CreateEncoder(card, weightsDir, device);
        if (Hf.HfVisionModels.Handles(card)) return Hf.HfVisionModels.CreateEncoder(card, weightsDir, device);
        if (Onnx.OnnxImageEncoder.Handles(card)) return Onnx.OnnxImageEncoder.Create(card, weightsDir, device);
        if (VitModelZoo.Handles(card)) return VitModelZoo.CreateEncoder(card, weightsDir, device);
        if (Swin.SwinModelZoo.Handles(card)) return Swin.SwinModelZoo.CreateEncoder(card, weightsDir, device);
        if (card.Family == "clip") return ClipEncoder.FromCard(card, weightsDir, device);
        if (card.Id == OnnxResNetImporter.ModelId)
        {
            var m = OnnxResNetImporter.LoadCntkResNet18(PackagedModels.ResNet18OnnxPath, cacheDir);
            return new ResNetImageEncoder(card.Id, m, m.WeightsHash!, device);
        }
        if (card.ResNet is null) throw new NotSupportedException($"Model '{card.Id}' has no encoder implementation here.");
        var path = ResolveWeightsFile(card, weightsDir);
        var model = new ResNet(card.Id, card.ResNet);
        try
        {
            WeightLoader.Load(model, path, new WeightLoadOptions
            {
                StripPrefixes = card.StripKeyPrefixes,
                KeyMap = card.DropKeyPrefixes.Count == 0 ? null : k => card.DropKeyPrefixes.Any(k.StartsWith) ? null : k,
            });
            model.WeightsHash = WeightLoader.FileSha256(path);
            return new ResNetImageEncoder(card.Id, model, model.WeightsHash, device, l2HeadFeature: card.ResNetFeature == "head-l2");
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}

/// <summary>Turns RGB images in [0,1] into what a card's model expects.</summary>
public static class ImageNormalization
{
    private static readonly Lazy<float[]> CntkMeanImage =
        new(() => OnnxResNetImporter.ReadPreprocessMeanImage(PackagedModels.ResNetPreprocessOnnxPath));

    /// <summary>
    /// [B,3,H,W] RGB in [0,1] → model input. "model-mean-image": channels reversed to BGR, ×255, minus the
    /// packaged mean image (needs H = W = 224); "meanstd": (x − Mean)/Std; "dataset": unchanged.
    /// </summary>
    public static Tensor Apply(ModelCard card, Tensor rgb01)
    {
        if (rgb01.dim() != 4 || rgb01.shape[1] != 3)
            throw new ArgumentException($"Expected [B,3,H,W], got [{string.Join(",", rgb01.shape)}].", nameof(rgb01));
        using var scope = NewDisposeScope();
        var x = rgb01.to(float32);
        Tensor y;
        switch (card.NormalizationKind)
        {
            case "model-mean-image":
                if (x.shape[2] != 224 || x.shape[3] != 224)
                    throw new ArgumentException($"Model '{card.Id}' needs 224×224 input for its mean image.");
                using (var mean = tensor(CntkMeanImage.Value, [1, 3, 224, 224]))
                    y = x.flip(1).mul(255f).sub_(mean.to(x.device));
                break;
            case "meanstd":
                var m = tensor(card.Mean ?? throw new InvalidOperationException($"Card '{card.Id}' has no Mean.")).to(x.device).view(1, 3, 1, 1);
                var s = tensor(card.Std ?? throw new InvalidOperationException($"Card '{card.Id}' has no Std.")).to(x.device).view(1, 3, 1, 1);
                y = x.sub(m).div_(s);
                break;
            case "dataset":
                y = x.alias();
                break;
            default:
                throw new NotSupportedException($"Unknown normalization '{card.NormalizationKind}'.");
        }
        return y.MoveToOuterDisposeScope();
    }
}
