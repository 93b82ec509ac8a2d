using FairMedFM.Models.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Models.Sam;

/// <summary>
/// One promptable segmentation model: how to build it (an image-encoder factory plus the SAM v1 prompt encoder / mask
/// decoder of <see cref="Sam"/>), which checkpoint it loads and how, its input size and normalisation, where the weights
/// come from and under which licence. Any image encoder fits: a new SAM v1 variant (e.g. TinyViT for MobileSAM/TinySAM)
/// is one more card with its own <see cref="ImageEncoderFactory"/>.
/// </summary>
public sealed class SegModelCard
{
    public required string Id { get; init; }

    /// <summary>"sam-vit" (segment-anything ViT encoder), "sam-med2d" (ViT with SAM-Med2D adapters), …</summary>
    public required string Family { get; init; }

    /// <summary>Prompt encoder / mask decoder settings and the model input size.</summary>
    public required SamConfig Sam { get; init; }

    /// <summary>Builds the image encoder; the argument is its module name ("image_encoder" inside <see cref="SamModel"/>).</summary>
    public required Func<string, nn.Module<Tensor, Tensor>> ImageEncoderFactory { get; init; }

    /// <summary>The encoder's architecture in words (family and configuration).</summary>
    public required string Architecture { get; init; }

    /// <summary>The ViT configuration when the encoder is segment-anything's ViT (with or without adapters).</summary>
    public SamVitConfig? Vit { get; init; }

    /// <summary>Expected checkpoint file name in the weights folder.</summary>
    public required string WeightsFile { get; init; }

    public IReadOnlyList<string> WeightsFileAlternatives { get; init; } = [];

    /// <summary>What the checkpoint holds and how it is read (wrapper, key prefixes, size).</summary>
    public required string WeightsLayout { get; init; }

    public required string WeightsUrl { get; init; }

    /// <summary>
    /// The model's own input normalisation: "sam-pixel" = RGB 0–255, (x − pixel_mean) / pixel_std (<c>Sam.preprocess</c>);
    /// "minmax01" = per image (x − min) / max(max − min, 1e-8) to [0, 1] (MedSAM). FairMedFM's reference instead feeds
    /// every SAM its data set's ImageNet normalisation of BGR images (spec §2.6, B12); that belongs to the data layer.
    /// </summary>
    public required string NormalizationKind { get; init; }

    /// <summary>How the model's own pipeline resizes and normalises (for people reproducing its paper numbers).</summary>
    public required string NormalizationNote { get; init; }

    public required string License { get; init; }
    public required string Source { get; init; }

    /// <summary>How the port was checked (golden, layout only, …).</summary>
    public required string Verification { get; init; }

    public int ImageSize => Sam.ImgSize;

    /// <summary>Shape of one cached image embedding, C×h×w.</summary>
    public string EmbeddingShape => $"{Sam.PromptEmbedDim}×{Sam.ImageEmbeddingSize}×{Sam.ImageEmbeddingSize}";
}

/// <summary>A segmentation model loaded from its checkpoint (frozen, eval mode) with the file it came from.</summary>
public sealed record LoadedSegModel(SegModelCard Card, SamModel Model, string WeightsPath, string WeightsSha256) : IDisposable
{
    public void Dispose() => Model.Dispose();
}

/// <summary>What <c>fairmedfm models list</c> shows for a segmentation card.</summary>
public sealed record SegModelAvailability(SegModelCard Card, string Weights, bool Available, string? WeightsPath);

/// <summary>
/// The promptable segmentation FMs of FairMedFM (spec §3.3) as cards: SAM ViT-B/L/H, MedSAM, FT-SAM, SAM-Med2D, and
/// MobileSAM/TinySAM (TinyViT encoder + SAM decoder).
/// </summary>
public static class SegModelZoo
{
    public const string FamilySamVit = "sam-vit";
    public const string FamilySamMed2D = "sam-med2d";
    public const string FamilyTinyVit = "tinyvit-sam";

    public const string VerifiedSam =
        "verified: segment-anything golden (sam_vit, whole model, FairMedFM + official paths)";

    /// <summary>segment-anything's published ViT encoders (build_sam_vit_b/l/h): img 1024, patch 16, window 14, out 256.</summary>
    public static SamVitConfig VitB { get; } = SamVitConfig.SamVitB;
    public static SamVitConfig VitL { get; } = SamVitConfig.SamVitB with { EmbedDim = 1024, Depth = 24, NumHeads = 16, GlobalAttnIndexes = [5, 11, 17, 23] };
    public static SamVitConfig VitH { get; } = SamVitConfig.SamVitB with { EmbedDim = 1280, Depth = 32, NumHeads = 16, GlobalAttnIndexes = [7, 15, 23, 31] };

    /// <summary>SAM-Med2D / FT-SAM: the ViT-B layout built at 256 px (16×16 tokens).</summary>
    public static SamVitConfig VitB256 { get; } = SamVitConfig.SamVitB with { ImgSize = 256 };

    private const string SamLicense = "Apache-2.0 (facebookresearch/segment-anything code and SAM checkpoints)";
    private const string SamLayout = "bare state dict (torch.save of Sam.state_dict()): image_encoder.*, prompt_encoder.*, mask_decoder.*; loaded strictly";
    private const string SamPixelNote =
        "official SamPredictor: RGB uint8, ResizeLongestSide to 1024 (aspect kept), (x − [123.675, 116.28, 103.53]) / [58.395, 57.12, 57.375], " +
        "zero-pad bottom/right to 1024; masks = logits > 0 at the original size";
    private const string SamMed2DNote =
        "SAM-Med2D's SammedPredictor: (x − SAM pixel_mean) / pixel_std on the RGB image, then resized to 256×256 (albumentations " +
        "Resize, nearest, aspect not kept); prompts scaled to 256×256; mask decoder as SAM";

    private static SegModelCard SamCard(string id, string size, SamVitConfig vit, string file, string url) => new()
    {
        Id = id,
        Family = FamilySamVit,
        Sam = SamConfig.ForVit(vit),
        Vit = vit,
        ImageEncoderFactory = name => new SamImageEncoderViT(name, vit),
        Architecture = Describe($"SAM {size}", vit),
        WeightsFile = file,
        WeightsFileAlternatives = new[] { id + ".safetensors", id + ".pth" }.Where(n => n != file).ToList(),
        WeightsLayout = SamLayout,
        WeightsUrl = url,
        NormalizationKind = "sam-pixel",
        NormalizationNote = SamPixelNote,
        License = SamLicense,
        Source = "segment-anything sam_model_registry[\"vit_" + size[^1..].ToLowerInvariant() + "\"] (commit dca509f); FairMedFM --model SAM",
        Verification = VerifiedSam,
    };

    private static string Describe(string name, SamVitConfig v) =>
        $"{name}: ViT {v.EmbedDim} wide, {v.Depth} blocks × {v.NumHeads} heads, patch {v.PatchSize}, window {v.WindowSize}, " +
        $"global attention in blocks {string.Join(",", v.GlobalAttnIndexes)}, rel-pos, abs pos-embed at {v.ImgSize} px, neck → {v.OutChans}; " +
        "prompt encoder + two-way mask decoder (depth 2, mlp 2048, 8 heads, 3 masks + IoU)";

    public static IReadOnlyList<SegModelCard> Cards { get; } =
    [
        SamCard("sam-vit-b", "ViT-B", VitB, "sam_vit_b_01ec64.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"),
        SamCard("sam-vit-l", "ViT-L", VitL, "sam_vit_l_0b3195.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth"),
        SamCard("sam-vit-h", "ViT-H", VitH, "sam_vit_h_4b8939.pth", "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth"),
        new SegModelCard
        {
            Id = "medsam-vit-b",
            Family = FamilySamVit,
            Sam = SamConfig.ForVit(VitB),
            Vit = VitB,
            ImageEncoderFactory = name => new SamImageEncoderViT(name, VitB),
            Architecture = Describe("MedSAM (SAM ViT-B fine-tuned on 1.5M medical image–mask pairs)", VitB),
            WeightsFile = "medsam_vit_b.pth",
            WeightsFileAlternatives = ["medsam-vit-b.safetensors", "medsam-vit-b.pth"],
            WeightsLayout = SamLayout,
            WeightsUrl = "bowang-lab/MedSAM README, 'Model checkpoint' (Google Drive folder; file medsam_vit_b.pth)",
            NormalizationKind = "minmax01",
            NormalizationNote = "MedSAM's own inference: 3-channel image resized to 1024×1024 (bicubic, aspect not kept), min–max to [0, 1] " +
                                "per image, no pixel mean/std, no padding; box prompts scaled to 1024; single-mask output, sigmoid > 0.5",
            License = "Apache-2.0 (bowang-lab/MedSAM)",
            Source = "MedSAM (Ma et al., Nature Communications 2024): segment-anything ViT-B layout; FairMedFM --model MedSAM runs it like SAM " +
                     "(multimask, argmax IoU)",
            Verification = VerifiedSam + " (same architecture; MedSAM's own weights not checked)",
        },
        new SegModelCard
        {
            Id = "ft-sam-vit-b",
            Family = FamilySamVit,
            Sam = SamConfig.ForVit(VitB256),
            Vit = VitB256,
            ImageEncoderFactory = name => new SamImageEncoderViT(name, VitB256),
            Architecture = Describe("FT-SAM (SAM ViT-B fine-tuned by SAM-Med2D's authors, no adapters)", VitB256),
            WeightsFile = "ft-sam_b.pth",
            WeightsFileAlternatives = ["ft-sam-vit-b.safetensors", "ft-sam-vit-b.pth"],
            WeightsLayout = "SAM-Med2D training checkpoint: {'model': state dict, 'optimizer': …} (the 'model' entry is read); SAM keys at 256 px " +
                            "(pos_embed [1,16,16,768], global rel-pos 31 rows, windowed 27); loaded strictly",
            WeightsUrl = "OpenGVLab/SAM-Med2D README, 'FT-SAM' checkpoint (Google Drive / Baidu links; file ft-sam_b.pth)",
            NormalizationKind = "sam-pixel",
            NormalizationNote = SamMed2DNote,
            License = "Apache-2.0 (OpenGVLab/SAM-Med2D)",
            Source = "SAM-Med2D repository's FT-SAM baseline; FairMedFM --model FT-SAM builds it with build_sammed2d, which crashes (B19)",
            Verification = VerifiedSam + " (same modules built at 256 px; FT-SAM's own weights not checked)",
        },
        new SegModelCard
        {
            Id = "sam-med2d-vit-b",
            Family = FamilySamMed2D,
            Sam = SamConfig.ForVit(VitB256),
            Vit = VitB256,
            ImageEncoderFactory = name => new SamMed2DImageEncoder(name, VitB256),
            Architecture = Describe("SAM-Med2D (SAM ViT-B with an adapter in every block)", VitB256) +
                           "; adapter per block: channel gate 768→192→768 + strided conv / transposed conv, LayerNorm",
            WeightsFile = "sam-med2d_b.pth",
            WeightsFileAlternatives = ["sam-med2d-vit-b.safetensors", "sam-med2d-vit-b.pth"],
            WeightsLayout = "SAM-Med2D training checkpoint: {'model': state dict, 'optimizer': …} (the 'model' entry is read); SAM keys at 256 px " +
                            "plus image_encoder.blocks.N.Adapter.{norm.weight, norm.bias, channel.0.weight, channel.2.weight, spatial.0.weight, " +
                            "spatial.2.weight}; loaded strictly (SAM-Med2D itself loads this entry non-strictly)",
            WeightsUrl = "OpenGVLab/SAM-Med2D README, 'SAM-Med2D' checkpoint (Google Drive / Baidu links; file sam-med2d_b.pth)",
            NormalizationKind = "sam-pixel",
            NormalizationNote = SamMed2DNote,
            License = "Apache-2.0 (OpenGVLab/SAM-Med2D)",
            Source = "SAM-Med2D (Cheng et al. 2023), segment_anything/modeling/image_encoder.py Adapter_Layer; FairMedFM --model SAMMed2D " +
                     "crashes at start-up (B19)",
            Verification = "layout-checked: adapter key names/shapes of sam-med2d_b.pth round-trip and change outputs; no SAM-Med2D reference " +
                           "output to compare with (the rest is the golden-verified SAM)",
        },
        TinyVitCard("mobilesam", "MobileSAM", TinyVitConfig.MobileSam, "mobile_sam.pt",
            "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
            "Apache-2.0 (ChaoningZhang/MobileSAM)",
            "MobileSAM (Zhang et al. 2023): SAM's prompt encoder and mask decoder with a distilled TinyViT-5M image encoder " +
            "(mobile_sam.build_sam_vit_t @ 34bbbfd); FairMedFM --model MobileSAM"),
        TinyVitCard("tinysam", "TinySAM", TinyVitConfig.TinySam, "tinysam.pth",
            "xinghaochen/TinySAM README, 'tinysam.pth' (GitHub release / Google Drive)",
            "Apache-2.0 (xinghaochen/TinySAM)",
            "TinySAM (Shu et al. 2023): TinyViT-5M encoder (tiny_vit_sam.py byte-identical to MobileSAM's) + SAM decoder, " +
            "full-stage distilled and quantisation-aware; FairMedFM --model TinySAM"),
    ];

    /// <summary>
    /// MobileSAM and TinySAM: a TinyViT image encoder (1024 px, 64×64×256 embedding) in front of SAM's own prompt encoder
    /// and mask decoder. The encoder is golden-verified (mobilesam_tinyvit), the decoder is SAM's (sam_vit golden).
    /// </summary>
    private static SegModelCard TinyVitCard(string id, string name, TinyVitConfig cfg, string file, string url, string license, string source) => new()
    {
        Id = id,
        Family = FamilyTinyVit,
        Sam = new SamConfig { ImgSize = cfg.ImgSize, ImageEmbeddingSize = cfg.ImgSize / 16, PromptEmbedDim = 256 },
        ImageEncoderFactory = n => new TinyViT(n, cfg),
        Architecture = $"{name}: TinyViT (stages {string.Join("/", cfg.EmbedDims)} wide, depths {string.Join("/", cfg.Depths)}, heads " +
                       $"{string.Join("/", cfg.NumHeads)}, windows {string.Join("/", cfg.WindowSizes)}) at {cfg.ImgSize} px, neck → 256; " +
                       "prompt encoder + two-way mask decoder (depth 2, mlp 2048, 8 heads, 3 masks + IoU)",
        WeightsFile = file,
        WeightsFileAlternatives = new[] { id + ".safetensors", id + ".pth" }.Where(n => n != file).ToList(),
        WeightsLayout = "bare state dict: image_encoder.* (TinyViT keys incl. the unused head/norm_head), prompt_encoder.*, mask_decoder.*; loaded strictly",
        WeightsUrl = url,
        NormalizationKind = "sam-pixel",
        NormalizationNote = SamPixelNote,
        License = license,
        Source = source,
        Verification = "verified: TinyViT encoder = mobilesam_tinyvit golden; prompt encoder/mask decoder = sam_vit golden (" + name + "'s own weights not checked)",
    };

    /// <summary>FairMedFM's other segmentation FMs, listed rather than shipped unverified.</summary>
    public static IReadOnlyList<(string Id, string Reason)> NotYetAvailable { get; } =
    [
        ("sam2-hiera", "SAM 2 (Hiera image encoder, memory attention, SAM2ImagePredictor): not ported; a different architecture from SAM v1 with no golden fixture here"),
        ("medsam2", "MedSAM2 (SAM 2.1 Hiera fine-tuned): needs the SAM 2 port; FairMedFM's wrapper also breaks normalised input (B20)"),
        ("sam-med3d", "SAM-Med3D (3D ViT, 3D prompts): not implemented in the FairMedFM reference either (only an empty SAM3DWrapper stub); the 3-D network is not ported and no golden fixture exists to verify a port against (3-D volumes do run, sliced, with the 2-D SAM family)"),
        ("fastsam3d", "FastSAM3D (distilled 3D ViT): not implemented in the FairMedFM reference; the 3-D network is not ported and no golden fixture exists to verify a port against (3-D volumes do run, sliced, with the 2-D SAM family)"),
        ("segvol", "SegVol (3D ViT + CLIP text prompts): not implemented in the FairMedFM reference; the 3-D network is not ported and no golden fixture exists to verify a port against (3-D volumes do run, sliced, with the 2-D SAM family)"),
    ];

    public static SegModelCard GetCard(string id) =>
        Cards.FirstOrDefault(c => string.Equals(c.Id, id, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException(NotYetAvailable.FirstOrDefault(n => string.Equals(n.Id, id, StringComparison.OrdinalIgnoreCase)) is { Id: not null } n
            ? $"Segmentation model '{id}' is not available yet: {n.Reason}."
            : $"Unknown segmentation model '{id}'. Known: {string.Join(", ", Cards.Select(c => c.Id))}.", nameof(id));

    /// <summary>The weights file of <paramref name="card"/> in <paramref name="weightsDir"/> (same rules and errors as the classification zoo).</summary>
    public static string ResolveWeightsFile(SegModelCard card, string? weightsDir) =>
        ModelZoo.ResolveWeightsFile(AsWeightsCard(card), weightsDir);

    /// <summary>The card's model with freshly initialised weights (for layout checks and tests).</summary>
    public static SamModel Build(SegModelCard card, string name = "sam")
    {
        ArgumentNullException.ThrowIfNull(card);
        var encoder = card.ImageEncoderFactory("image_encoder");
        try { return new SamModel(name, encoder, card.Sam); }
        catch { encoder.Dispose(); throw; }
    }

    /// <summary>
    /// The card's model loaded strictly from its checkpoint in <paramref name="weightsDir"/> (the file is found before
    /// anything full-size is built), frozen in eval mode on <paramref name="device"/>.
    /// </summary>
    public static LoadedSegModel Create(SegModelCard card, string? weightsDir, Device? device = null)
    {
        var path = ResolveWeightsFile(card, weightsDir);
        var model = Build(card);
        try
        {
            model.LoadCheckpoint(path);
            model.to(device ?? CPU);
            model.eval();
            foreach (var p in model.parameters()) p.requires_grad = false;
            return new LoadedSegModel(card, model, path, WeightLoader.FileSha256(path));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Found (with its path), missing (with the expected file names) or unusable, for each card.</summary>
    public static IReadOnlyList<SegModelAvailability> Status(string? weightsDir) => Cards.Select(c => Check(c, weightsDir)).ToList();

    public static SegModelAvailability Check(SegModelCard card, string? weightsDir)
    {
        try
        {
            var path = ResolveWeightsFile(card, weightsDir);
            if (WeightLoader.FileProblem(path) is { } problem) return new(card, "unusable: " + problem, false, null);
            return new(card, "found: " + Path.GetFileName(path), true, path);
        }
        catch (FileNotFoundException)
        {
            return new(card, ModelZoo.MissingWeights(card.WeightsFile, card.WeightsFileAlternatives), false, null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // One bad file is that row's problem: `models list` goes on with the others.
            return new(card, "unusable: " + TorchErrors.Clean(e.Message), false, null);
        }
    }

    /// <summary>
    /// The card's own normalisation of images [B, 3, H, W] in RGB 0–255 (no resizing, no padding): "sam-pixel" →
    /// (x − pixel_mean) / pixel_std; "minmax01" → per image (x − min) / max(max − min, 1e-8).
    /// </summary>
    public static Tensor Normalize(SegModelCard card, Tensor rgb255)
    {
        ArgumentNullException.ThrowIfNull(card);
        if (rgb255.dim() != 4 || rgb255.shape[1] != 3)
            throw new ArgumentException($"expected [B, 3, H, W] RGB 0–255, got [{string.Join(", ", rgb255.shape)}].", nameof(rgb255));
        using var scope = NewDisposeScope();
        var x = rgb255.to(float32);
        Tensor y;
        switch (card.NormalizationKind)
        {
            case "sam-pixel":
                var mean = tensor(card.Sam.PixelMean.ToArray(), device: x.device).view(1, 3, 1, 1);
                var std = tensor(card.Sam.PixelStd.ToArray(), device: x.device).view(1, 3, 1, 1);
                y = x.sub(mean).div(std);
                break;
            case "minmax01":
                long b = x.shape[0];
                var flat = x.reshape(b, -1);
                var min = flat.amin([1], keepdim: true);
                var range = flat.amax([1], keepdim: true).sub(min).clamp_min(1e-8);
                y = flat.sub(min).div(range).view_as(x);
                break;
            default:
                throw new NotSupportedException($"Card '{card.Id}': unknown normalisation '{card.NormalizationKind}'.");
        }
        return y.MoveToOuterDisposeScope();
    }

    private static ModelCard AsWeightsCard(SegModelCard card) => new()
    {
        Id = card.Id,
        Family = card.Family,
        WeightsFile = card.WeightsFile,
        WeightsFileAlternatives = card.WeightsFileAlternatives,
        WeightsUrl = card.WeightsUrl,
        ImageSize = card.ImageSize,
    };
}
