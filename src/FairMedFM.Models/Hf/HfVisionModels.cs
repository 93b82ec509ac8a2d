using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using FairMedFM.Models.Vit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Hf;

/// <summary>
/// Vision towers in Hugging Face layout (config.json + weights, sharded or not) built on the modules already ported:
/// HF Dinov2 → <see cref="DinoVisionTransformer"/>, HF SigLIP and CLIP vision towers → timm <see cref="VisionTransformer"/>.
/// </summary>
public static class HfVisionModels
{
    public const string FamilyDinov2 = "hf-dinov2";
    public const string FamilySiglipVision = "hf-siglip-vision";
    public const string FamilyClipVision = "hf-clip-vision";

    public static bool Handles(ModelCard card) => card.Family is FamilyDinov2 or FamilySiglipVision or FamilyClipVision;

    public static HfLayout LayoutOf(string family) => family switch
    {
        FamilyDinov2 => HfKeyMaps.Dinov2,
        FamilySiglipVision => HfKeyMaps.SiglipVision,
        FamilyClipVision => HfKeyMaps.ClipVision,
        _ => throw new NotSupportedException($"'{family}' is not a Hugging Face vision family."),
    };

    // ---- config.json ----

    private static JsonObject ReadJson(string path) => HfConfigJson.Read(path);

    private static JsonObject VisionSection(JsonObject o, string twoTowerType, string visionType, string source)
    {
        var t = HfConfigJson.Str(o, "model_type");
        if (t == twoTowerType) return o["vision_config"] as JsonObject ?? new JsonObject();
        if (t == visionType || t is null) return o;
        throw new InvalidDataException($"'{source}': model_type '{t}' is neither '{twoTowerType}' nor '{visionType}'.");
    }

    private static int Int(JsonObject o, string k, int d) => HfConfigJson.PositiveInt(o, k, d); // every int read here is a size or count
    private static double Dbl(JsonObject o, string k, double d) => HfConfigJson.Dbl(o, k, d);
    private static string Str(JsonObject o, string k, string d) => HfConfigJson.Str(o, k, d);

    /// <summary>transformers Dinov2Config → the DINOv2 module's config (HF interpolates by output size: offset 0).</summary>
    public static DinoV2Config Dinov2Config(string configJson) => HfConfigJson.Named(configJson, () => ReadDinov2Config(configJson));

    private static DinoV2Config ReadDinov2Config(string configJson)
    {
        var o = ReadJson(configJson);
        var t = Str(o, "model_type", "dinov2");
        if (t != "dinov2") throw new InvalidDataException($"'{configJson}': model_type '{t}' is not 'dinov2'.");
        if (HfConfigJson.Bool(o, "use_swiglu_ffn") == true)
            throw new NotSupportedException($"'{configJson}': use_swiglu_ffn (giant DINOv2) is not supported.");
        if (Str(o, "hidden_act", "gelu") != "gelu") throw new NotSupportedException($"'{configJson}': hidden_act must be gelu.");
        if (Math.Abs(Dbl(o, "layer_norm_eps", 1e-6) - VitOps.LayerNormEps) > 1e-12)
            throw new NotSupportedException($"'{configJson}': layer_norm_eps {Dbl(o, "layer_norm_eps", 1e-6)} (the DINOv2 module uses 1e-6).");
        var c = new DinoV2Config
        {
            ImgSize = Int(o, "image_size", 518),
            PatchSize = Int(o, "patch_size", 14),
            InChans = Int(o, "num_channels", 3),
            EmbedDim = Int(o, "hidden_size", 768),
            Depth = Int(o, "num_hidden_layers", 12),
            NumHeads = Int(o, "num_attention_heads", 12),
            MlpRatio = Dbl(o, "mlp_ratio", 4.0),
            QkvBias = HfConfigJson.Bool(o, "qkv_bias") ?? true,
            InitValues = Dbl(o, "layerscale_value", 1.0),
            InterpolateOffset = 0, // transformers ≥ 4.4x: F.interpolate(size=(h/p, w/p), bicubic, align_corners=False)
        };
        HfConfigJson.CheckShapes(o, c.EmbedDim, c.NumHeads, c.ImgSize, c.PatchSize);
        return c;
    }

    /// <summary>SiglipConfig / SiglipVisionConfig → timm VisionTransformer config (no class token, 'map' pooling, tanh GELU).</summary>
    public static VitConfig SiglipVisionConfig(string configJson) => HfConfigJson.Named(configJson, () => ReadSiglipVisionConfig(configJson));

    private static VitConfig ReadSiglipVisionConfig(string configJson)
    {
        var v = VisionSection(ReadJson(configJson), "siglip", "siglip_vision_model", configJson);
        var act = Str(v, "hidden_act", "gelu_pytorch_tanh");
        if (act is not ("gelu_pytorch_tanh" or "gelu")) throw new NotSupportedException($"'{configJson}': hidden_act '{act}'.");
        var c = new VitConfig
        {
            ImgSize = Int(v, "image_size", 224),
            PatchSize = Int(v, "patch_size", 16),
            InChans = Int(v, "num_channels", 3),
            EmbedDim = Int(v, "hidden_size", 768),
            Depth = Int(v, "num_hidden_layers", 12),
            NumHeads = Int(v, "num_attention_heads", 12),
            MlpHiddenDim = Int(v, "intermediate_size", 3072),
            LayerNormEps = Dbl(v, "layer_norm_eps", 1e-6),
            Activation = act == "gelu" ? "gelu" : "gelu_tanh",
            ClassToken = false,
            GlobalPool = HfConfigJson.Bool(v, "vision_use_head") == false ? "" : "map",
            FcNorm = false,
            NumClasses = 0,
        };
        HfConfigJson.CheckShapes(v, c.EmbedDim, c.NumHeads, c.ImgSize, c.PatchSize);
        return c;
    }

    /// <summary>CLIPConfig / CLIPVisionConfig(+projection_dim) → timm VisionTransformer config (pre-norm, CLS, bias-free head).</summary>
    public static VitConfig ClipVisionConfig(string configJson) => HfConfigJson.Named(configJson, () => ReadClipVisionConfig(configJson));

    private static VitConfig ReadClipVisionConfig(string configJson)
    {
        var o = ReadJson(configJson);
        var v = VisionSection(o, "clip", "clip_vision_model", configJson);
        var act = Str(v, "hidden_act", "quick_gelu");
        if (act is not ("quick_gelu" or "gelu")) throw new NotSupportedException($"'{configJson}': hidden_act '{act}'.");
        int proj = HfConfigJson.IntOrNull(o, "projection_dim") ?? Int(v, "projection_dim", 512);
        var c = new VitConfig
        {
            ImgSize = Int(v, "image_size", 224),
            PatchSize = Int(v, "patch_size", 32),
            InChans = Int(v, "num_channels", 3),
            EmbedDim = Int(v, "hidden_size", 768),
            Depth = Int(v, "num_hidden_layers", 12),
            NumHeads = Int(v, "num_attention_heads", 12),
            MlpHiddenDim = Int(v, "intermediate_size", 3072),
            LayerNormEps = Dbl(v, "layer_norm_eps", 1e-5),
            Activation = act,
            PreNorm = true,
            ClassToken = true,
            GlobalPool = "token",
            NumClasses = proj,
            HeadBias = false,
        };
        HfConfigJson.CheckShapes(v, c.EmbedDim, c.NumHeads, c.ImgSize, c.PatchSize);
        return c;
    }

    // ---- loading ----

    /// <summary>The model folder of a card, its config.json and weights file (or index); a FileNotFoundException naming what is expected.</summary>
    public static (string Folder, string Config, string Weights) ResolveFolder(ModelCard card, string? weightsDir)
    {
        var sub = card.HfFolder ?? throw new InvalidOperationException($"Card '{card.Id}' has no HfFolder.");
        var folder = string.IsNullOrEmpty(weightsDir) ? sub : Path.Combine(weightsDir, sub);
        var config = Path.Combine(folder, "config.json");
        var weights = string.IsNullOrEmpty(weightsDir) ? null : HfCheckpoint.Find(folder);
        if (weights is null || !File.Exists(config))
            throw new FileNotFoundException(
                $"Weights for model '{card.Id}' not found ({(string.IsNullOrEmpty(weightsDir) ? "no weights dir was given" : $"folder '{folder}'")}). " +
                $"Expected the Hugging Face files config.json and {string.Join(" or ", HfCheckpoint.WeightFileNames)} (with its shards)" +
                (card.WeightsUrl is null ? "." : $"; download them from {card.WeightsUrl}."), Path.Combine(folder, "config.json"));
        return (folder, config, weights);
    }

    /// <summary>Loads an HF checkpoint (any of the layouts above) into <paramref name="module"/> through the layout's key map.</summary>
    public static WeightLoadReport Load(nn.Module module, HfLayout layout, string weightsPath, bool strict = true)
    {
        var hf = HfCheckpoint.Read(weightsPath);
        try
        {
            var mapped = layout.FromHf(hf);
            try
            {
                return WeightLoader.LoadStateDict(module, mapped, new WeightLoadOptions { Strict = strict }, $"{weightsPath} [key map: {layout.Name}]");
            }
            finally
            {
                foreach (var t in mapped.Values) t.Dispose();
            }
        }
        finally
        {
            foreach (var t in hf.Values) t.Dispose();
        }
    }

    /// <summary>The module's state dict under the HF layout's names and shapes (new tensors the caller disposes).</summary>
    public static Dictionary<string, Tensor> Export(nn.Module module, HfLayout layout) =>
        layout.ToHf(module.state_dict());

    /// <summary>sha256 over the folder's config.json and weight files (name and content of each, sorted).</summary>
    public static string FolderHash(string folder, string weightsPath)
    {
        var files = new List<string> { Path.Combine(folder, "config.json"), weightsPath };
        if (weightsPath.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase))
            files.AddRange(HfCheckpoint.ReadIndex(weightsPath).Values.Distinct().Select(s => Path.Combine(folder, s)));
        var sb = new StringBuilder();
        foreach (var f in files.Distinct().OrderBy(f => Path.GetFileName(f), StringComparer.Ordinal))
            if (!File.Exists(f))
                throw new FileNotFoundException(f == weightsPath || Path.GetFileName(f) == "config.json"
                    ? $"'{f}' is missing." : $"Shard '{Path.GetFileName(f)}' named by '{weightsPath}' is missing.", f);
            else sb.Append(Path.GetFileName(f)).Append(':').Append(WeightLoader.FileSha256(f)).Append('\n');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }

    /// <summary>
    /// The encoder of an hf-* card: rad-dino → pooler_output (the layernormed CLS); SigLIP → get_image_features
    /// (the MAP head's output); CLIP/PLIP → pooler_output (post_layernorm of the CLS, 768, the feat_dim FairMedFM
    /// declares) — the projected image_embeds are <see cref="VisionTransformer.forward"/>.
    /// </summary>
    public static IImageEncoder CreateEncoder(ModelCard card, string? weightsDir, Device? device = null)
    {
        var (folder, config, weights) = ResolveFolder(card, weightsDir);
        string hash = FolderHash(folder, weights);
        switch (card.Family)
        {
            case FamilyDinov2:
            {
                var cfg = Dinov2Config(config);
                var m = new DinoVisionTransformer(card.Id, cfg);
                return Build(card, m, cfg.EmbedDim, hash, device, () => Load(m, HfKeyMaps.Dinov2, weights), (mm, x) => mm.forward(x));
            }
            case FamilySiglipVision:
            {
                var cfg = SiglipVisionConfig(config);
                var m = new VisionTransformer(card.Id, cfg);
                return Build(card, m, cfg.EmbedDim, hash, device, () => Load(m, HfKeyMaps.SiglipVision, weights), (mm, x) => mm.ForwardPooled(x));
            }
            case FamilyClipVision:
            {
                var cfg = ClipVisionConfig(config);
                var m = new VisionTransformer(card.Id, cfg);
                return Build(card, m, cfg.EmbedDim, hash, device, () => Load(m, HfKeyMaps.ClipVision, weights), (mm, x) => mm.ForwardPooled(x));
            }
            default:
                throw new NotSupportedException($"Model '{card.Id}' (family '{card.Family}') is not a Hugging Face vision card.");
        }
    }

    private static IImageEncoder Build<TModel>(ModelCard card, TModel model, int featureDim, string hash, Device? device,
                                               Func<WeightLoadReport> load, Func<TModel, Tensor, Tensor> features) where TModel : nn.Module
    {
        try
        {
            if (featureDim != card.FeatureDim)
                throw new InvalidOperationException($"Card '{card.Id}' declares FeatureDim {card.FeatureDim} but config.json gives {featureDim}.");
            load();
            return new VitImageEncoder<TModel>(card.Id, model, features, featureDim, hash, device);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
