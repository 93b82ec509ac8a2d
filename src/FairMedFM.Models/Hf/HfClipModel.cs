using System.Text.Json.Nodes;
using FairMedFM.Models.Clip;
using static TorchSharp.torch;

namespace FairMedFM.Models.Hf;

/// <summary>
/// transformers <c>CLIPModel</c> (vinid/plip, openai/clip-vit-*) ↔ openai/CLIP's <see cref="ClipModel"/>, both towers:
/// the two codes compute the same function (pre-LN residual blocks, quick GELU, LayerNorm eps 1e-5, CLS + ln_post +
/// projection on the image side, causal text transformer + ln_final + projection at the end-of-text token), so the
/// HF weights map onto the golden-verified openai port:
/// <list type="bullet">
/// <item><c>{vision,text}_model.encoder.layers.i.self_attn.{q,k,v}_proj</c> → <c>…resblocks.i.attn.in_proj_{weight,bias}</c> (rows q; k; v),
/// <c>out_proj</c> → <c>attn.out_proj</c>, <c>layer_norm1/2</c> → <c>ln_1/2</c>, <c>mlp.fc1/fc2</c> → <c>mlp.c_fc/c_proj</c>;</item>
/// <item><c>vision_model.embeddings.{class_embedding, patch_embedding, position_embedding}</c> → <c>visual.{class_embedding, conv1, positional_embedding}</c>,
/// <c>pre_layrnorm</c> (sic) → <c>visual.ln_pre</c>, <c>post_layernorm</c> → <c>visual.ln_post</c>,
/// <c>visual_projection.weight</c> [E, D] → <c>visual.proj</c> [D, E] (transposed: HF applies x·Wᵀ, openai x·P);</item>
/// <item><c>text_model.embeddings.{token_embedding, position_embedding}</c> → <c>token_embedding</c>, <c>positional_embedding</c>,
/// <c>final_layer_norm</c> → <c>ln_final</c>, <c>text_projection.weight</c> → <c>text_projection</c> (transposed), <c>logit_scale</c> kept.</item>
/// </list>
/// <c>position_ids</c> buffers are dropped. Text pooling follows HF: with <c>eos_token_id == 2</c> (configs written
/// before transformers 4.31) the argmax of the ids, as openai/CLIP; otherwise the first position holding eos_token_id
/// (<see cref="ClipModel.TextEosTokenId"/>).
/// </summary>
public static class HfClipModel
{
    public const string Family = "hf-clip";

    private static IEnumerable<HfKeyRule> Encoder(string hf, string ours)
    {
        string h = $"{hf}encoder.layers.{{i}}.", o = $"{ours}transformer.resblocks.{{i}}.";
        foreach (var p in new[] { "weight", "bias" })
            yield return new HfKeyRule([$"{h}self_attn.q_proj.{p}", $"{h}self_attn.k_proj.{p}", $"{h}self_attn.v_proj.{p}"], [1, 1, 1],
                                       [$"{o}attn.in_proj_{p}"], [1]);
        foreach (var r in HfKeyRule.Module($"{h}self_attn.out_proj", $"{o}attn.out_proj")
                     .Concat(HfKeyRule.Module($"{h}layer_norm1", $"{o}ln_1"))
                     .Concat(HfKeyRule.Module($"{h}mlp.fc1", $"{o}mlp.c_fc"))
                     .Concat(HfKeyRule.Module($"{h}mlp.fc2", $"{o}mlp.c_proj"))
                     .Concat(HfKeyRule.Module($"{h}layer_norm2", $"{o}ln_2")))
            yield return r;
    }

    private static Tensor T(Tensor t) => t.t();

    /// <summary>The key map (HF names ↔ openai/CLIP names) of a ViT image tower.</summary>
    public static HfLayout Layout { get; } = new("HF CLIPModel → openai/CLIP",
        new[]
        {
            HfKeyRule.Rename("vision_model.embeddings.class_embedding", "visual.class_embedding"),
            HfKeyRule.Rename("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"),
            HfKeyRule.Rename("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"),
            HfKeyRule.Rename("visual_projection.weight", "visual.proj", T, T),
            HfKeyRule.Rename("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
            HfKeyRule.Rename("text_model.embeddings.position_embedding.weight", "positional_embedding"),
            HfKeyRule.Rename("text_projection.weight", "text_projection", T, T),
            HfKeyRule.Rename("logit_scale", "logit_scale"),
        }
        .Concat(HfKeyRule.Module("vision_model.pre_layrnorm", "visual.ln_pre"))
        .Concat(Encoder("vision_model.", "visual."))
        .Concat(HfKeyRule.Module("vision_model.post_layernorm", "visual.ln_post"))
        .Concat(Encoder("text_model.", ""))
        .Concat(HfKeyRule.Module("text_model.final_layer_norm", "ln_final")),
        k => k.EndsWith("position_ids", StringComparison.Ordinal));

    /// <summary>What config.json says beyond the <see cref="ClipConfig"/>: the text pooling token (null = argmax).</summary>
    public sealed record HfClipConfig(ClipConfig Clip, int? EosTokenId);

    private static JsonObject Section(JsonObject o, string name) =>
        o[name] as JsonObject ?? o[name + "_dict"] as JsonObject ?? new JsonObject();

    private static int Int(JsonObject o, string k, int d) => HfConfigJson.PositiveInt(o, k, d); // every int read here is a size or count
    private static double Dbl(JsonObject o, string k, double d) => HfConfigJson.Dbl(o, k, d);

    /// <summary>
    /// transformers CLIPConfig (config.json) → the openai/CLIP constructor arguments. Throws naming the file and the
    /// field for what openai/CLIP's module cannot express (a non-quick GELU, LayerNorm eps ≠ 1e-5, an MLP width other
    /// than 4 × hidden).
    /// </summary>
    public static HfClipConfig ReadConfig(string configJson) => HfConfigJson.Named(configJson, () => ReadConfigUnnamed(configJson));

    private static HfClipConfig ReadConfigUnnamed(string configJson)
    {
        var o = HfConfigJson.Read(configJson);
        var type = HfConfigJson.Str(o, "model_type");
        if (type is not (null or "clip")) throw new InvalidDataException($"'{configJson}': model_type '{type}' is not 'clip' (a full CLIPModel).");
        var v = Section(o, "vision_config");
        var t = Section(o, "text_config");
        foreach (var (sec, name, width) in new[] { (v, "vision_config", 768), (t, "text_config", 512) })
        {
            var act = HfConfigJson.Str(sec, "hidden_act", "quick_gelu");
            if (act != "quick_gelu") throw new NotSupportedException($"'{configJson}': {name}.hidden_act '{act}' (openai/CLIP's blocks use quick_gelu).");
            var eps = Dbl(sec, "layer_norm_eps", 1e-5);
            if (Math.Abs(eps - 1e-5) > 1e-12) throw new NotSupportedException($"'{configJson}': {name}.layer_norm_eps {eps} (openai/CLIP uses 1e-5).");
            int hidden = Int(sec, "hidden_size", width);
            int inter = Int(sec, "intermediate_size", 4 * hidden);
            if (inter != 4 * hidden) throw new NotSupportedException($"'{configJson}': {name}.intermediate_size {inter} ≠ 4 × hidden_size {hidden}.");
        }
        int vWidth = Int(v, "hidden_size", 768), vHeads = Int(v, "num_attention_heads", 12);
        HfConfigJson.CheckShapes(v, vWidth, vHeads, Int(v, "image_size", 224), Int(v, "patch_size", 32));
        HfConfigJson.CheckShapes(t, Int(t, "hidden_size", 512), Int(t, "num_attention_heads", 8));
        var clip = new ClipConfig(
            EmbedDim: Int(o, "projection_dim", 512),
            ImageResolution: Int(v, "image_size", 224),
            VisionLayers: [Int(v, "num_hidden_layers", 12)],
            VisionWidth: vWidth,
            VisionPatchSize: Int(v, "patch_size", 32),
            ContextLength: Int(t, "max_position_embeddings", 77),
            VocabSize: Int(t, "vocab_size", 49408),
            TransformerWidth: Int(t, "hidden_size", 512),
            TransformerHeads: Int(t, "num_attention_heads", 8),
            TransformerLayers: Int(t, "num_hidden_layers", 12))
        {
            VisionHeadsOverride = vHeads == vWidth / 64 ? null : vHeads,
        };
        clip.Validate();
        int? eos = HfConfigJson.IntOrNull(t, "eos_token_id");
        return new HfClipConfig(clip, eos is null or 2 ? null : eos);
    }

    /// <summary>Builds the openai/CLIP module for an HF CLIP folder and loads the checkpoint strictly through <see cref="Layout"/>.</summary>
    public static ClipModel Load(string configJson, string weightsPath)
    {
        var cfg = ReadConfig(configJson);
        var model = new ClipModel(cfg.Clip) { TextEosTokenId = cfg.EosTokenId };
        try
        {
            HfVisionModels.Load(model, Layout, weightsPath);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The encoder of an hf-clip card (PLIP): image feature = <c>get_image_features</c> (the projected CLS, 512, =
    /// openai <c>encode_image</c>), text = <c>get_text_features</c> with the CLIP BPE tokenizer (truncating at the
    /// context length as the HF tokenizer's truncation=True), exp(logit_scale) of the weights.
    /// </summary>
    public static ClipEncoder CreateEncoder(ModelCard card, string? weightsDir, Device? device = null)
    {
        var (folder, config, weights) = HfVisionModels.ResolveFolder(card, weightsDir);
        string hash = HfVisionModels.FolderHash(folder, weights);
        var model = Load(config, weights);
        try
        {
            if (model.EmbedDim != card.FeatureDim)
                throw new InvalidOperationException($"Card '{card.Id}' declares FeatureDim {card.FeatureDim} but '{config}' gives projection_dim {model.EmbedDim}.");
            if (model.Config.ImageResolution != card.ImageSize)
                throw new InvalidOperationException($"Card '{card.Id}' declares ImageSize {card.ImageSize} but '{config}' gives image_size {model.Config.ImageResolution}.");
            model.WeightsHash = hash;
            return new ClipEncoder(card.Id, model, ClipTokenizer.Default, hash, device) { TruncatePrompts = true };
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
