using System.Text.Json.Nodes;

namespace FairMedFM.Models.Clip;

/// <summary>
/// The arguments of openai/CLIP's <c>CLIP(...)</c> constructor. <see cref="VisionLayers"/> holds one number for a
/// VisionTransformer image tower (its depth) or four for a ModifiedResNet (blocks per stage), exactly as the
/// Python constructor's int-or-tuple <c>vision_layers</c>; <see cref="VisionPatchSize"/> is null for ResNets.
/// </summary>
public sealed record ClipConfig(
    int EmbedDim,
    int ImageResolution,
    int[] VisionLayers,
    int VisionWidth,
    int? VisionPatchSize,
    int ContextLength,
    int VocabSize,
    int TransformerWidth,
    int TransformerHeads,
    int TransformerLayers)
{
    /// <summary>OpenAI CLIP ViT-B/32 (what <c>clip.load("ViT-B/32")</c> builds).</summary>
    public static ClipConfig ViTB32 { get; } = new(512, 224, [12], 768, 32, 77, 49408, 512, 8, 12);

    /// <summary>OpenAI CLIP ViT-B/16.</summary>
    public static ClipConfig ViTB16 { get; } = new(512, 224, [12], 768, 16, 77, 49408, 512, 8, 12);

    /// <summary>OpenAI CLIP ViT-L/14.</summary>
    public static ClipConfig ViTL14 { get; } = new(768, 224, [24], 1024, 14, 77, 49408, 768, 12, 12);

    /// <summary>OpenAI CLIP RN50.</summary>
    public static ClipConfig RN50 { get; } = new(1024, 224, [3, 4, 6, 3], 64, null, 77, 49408, 512, 8, 12);

    /// <summary>OpenAI CLIP RN101.</summary>
    public static ClipConfig RN101 { get; } = new(512, 224, [3, 4, 23, 3], 64, null, 77, 49408, 512, 8, 12);

    /// <summary>True for a VisionTransformer image tower, false for a ModifiedResNet.</summary>
    public bool IsVisionTransformer => VisionLayers.Length == 1;

    /// <summary>
    /// Attention heads of the image tower. openai/CLIP hard-codes <c>vision_width // 64</c> (ViT) and
    /// <c>vision_width * 32 // 64</c> (ResNet attention pool); set this only for checkpoints that differ.
    /// </summary>
    public int? VisionHeadsOverride { get; init; }

    public int VisionHeads => VisionHeadsOverride ?? (IsVisionTransformer ? VisionWidth / 64 : VisionWidth * 32 / 64);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first inconsistent field.</summary>
    public void Validate()
    {
        static void Need(bool ok, string msg) { if (!ok) throw new ArgumentException($"Invalid CLIP config: {msg}."); }
        Need(EmbedDim > 0, $"embed_dim = {EmbedDim} must be > 0");
        Need(ImageResolution > 0, $"image_resolution = {ImageResolution} must be > 0");
        Need(VisionLayers is { Length: 1 or 4 } && VisionLayers.All(n => n > 0),
             "vision_layers must be one positive depth (ViT) or four positive block counts (ModifiedResNet)");
        Need(VisionWidth > 0, $"vision_width = {VisionWidth} must be > 0");
        Need(ContextLength > 0 && VocabSize > 0, "context_length and vocab_size must be > 0");
        Need(TransformerWidth > 0 && TransformerLayers > 0, "transformer_width and transformer_layers must be > 0");
        Need(TransformerHeads > 0 && TransformerWidth % TransformerHeads == 0,
             $"transformer_heads = {TransformerHeads} must be > 0 and divide transformer_width = {TransformerWidth}");
        if (IsVisionTransformer)
        {
            Need(VisionPatchSize is > 0, "a ViT image tower needs vision_patch_size > 0");
            Need(ImageResolution % VisionPatchSize!.Value == 0,
                 $"image_resolution = {ImageResolution} must be a multiple of vision_patch_size = {VisionPatchSize}");
            Need(VisionHeads > 0 && VisionWidth % VisionHeads == 0,
                 $"vision heads = {VisionHeads} (vision_width // 64) must be > 0 and divide vision_width = {VisionWidth}");
        }
        else
        {
            Need(ImageResolution % 32 == 0, $"a ModifiedResNet needs image_resolution = {ImageResolution} to be a multiple of 32");
            Need(VisionWidth % 2 == 0, $"vision_width = {VisionWidth} must be even (the stem's first convs have width // 2)");
            Need(VisionHeads > 0 && VisionWidth * 32 % VisionHeads == 0,
                 $"attention-pool heads = {VisionHeads} must be > 0 and divide vision_width * 32 = {VisionWidth * 32}");
        }
    }

    /// <summary>
    /// Reads the Python constructor's keyword arguments (e.g. a fixture's <c>case.json["config"]</c>):
    /// embed_dim, image_resolution, vision_layers (int or list of 4), vision_width, vision_patch_size (int or null),
    /// context_length, vocab_size, transformer_width, transformer_heads, transformer_layers. Unknown keys are errors.
    /// </summary>
    public static ClipConfig FromJson(JsonNode node)
    {
        var o = node as JsonObject ?? throw new ArgumentException("A CLIP config must be a JSON object.");
        string[] known = ["embed_dim", "image_resolution", "vision_layers", "vision_width", "vision_patch_size",
                          "context_length", "vocab_size", "transformer_width", "transformer_heads", "transformer_layers"];
        foreach (var (k, _) in o)
            if (!known.Contains(k)) throw new ArgumentException($"Unknown CLIP config key '{k}' (known: {string.Join(", ", known)}).");
        int Int(string k) => o[k] is JsonValue v ? v.GetValue<int>() : throw new ArgumentException($"CLIP config: '{k}' is missing or not a number.");
        int[] layers = o["vision_layers"] switch
        {
            JsonArray a => a.Select(x => x!.GetValue<int>()).ToArray(),
            JsonValue v => [v.GetValue<int>()],
            _ => throw new ArgumentException("CLIP config: 'vision_layers' is missing."),
        };
        int? patch = o["vision_patch_size"] is JsonValue p ? p.GetValue<int>() : null;
        return new ClipConfig(Int("embed_dim"), Int("image_resolution"), layers, Int("vision_width"), patch,
                              Int("context_length"), Int("vocab_size"), Int("transformer_width"),
                              Int("transformer_heads"), Int("transformer_layers"));
    }

    /// <summary>
    /// What <c>clip.model.build_model(state_dict)</c> infers from tensor names and shapes. As there, text heads are
    /// <c>transformer_width // 64</c>; pass <paramref name="transformerHeads"/> for checkpoints whose text width is
    /// not a multiple of 64 (build_model would divide by zero or build the wrong attention).
    /// </summary>
    public static ClipConfig InferFromStateDict(IReadOnlyDictionary<string, long[]> shapes, int? transformerHeads = null)
    {
        long[] S(string key) => shapes.TryGetValue(key, out var s)
            ? s
            : throw new ArgumentException($"Cannot infer a CLIP config: the state dict has no '{key}' (is this an openai/CLIP checkpoint?).");

        int vitLayers = shapes.Keys.Count(k => k.StartsWith("visual.", StringComparison.Ordinal) && k.EndsWith(".attn.in_proj_weight", StringComparison.Ordinal));
        int imageResolution, visionWidth;
        int? patch;
        int[] visionLayers;
        if (shapes.ContainsKey("visual.proj"))
        {
            var conv = S("visual.conv1.weight");
            visionWidth = (int)conv[0];
            patch = (int)conv[^1];
            visionLayers = [vitLayers];
            long tokens = S("visual.positional_embedding")[0];
            int grid = (int)Math.Round(Math.Sqrt(tokens - 1));
            if (grid * grid + 1 != tokens)
                throw new ArgumentException($"visual.positional_embedding has {tokens} rows, not a square grid + 1.");
            imageResolution = patch.Value * grid;
        }
        else
        {
            visionLayers = new int[4];
            for (int b = 1; b <= 4; b++)
            {
                string prefix = $"visual.layer{b}.";
                visionLayers[b - 1] = shapes.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
                                                 .Select(k => k.Split('.')[2]).Distinct().Count();
            }
            visionWidth = (int)S("visual.layer1.0.conv1.weight")[0];
            long tokens = S("visual.attnpool.positional_embedding")[0];
            int outWidth = (int)Math.Round(Math.Sqrt(tokens - 1));
            if (outWidth * outWidth + 1 != tokens)
                throw new ArgumentException($"visual.attnpool.positional_embedding has {tokens} rows, not a square grid + 1.");
            patch = null;
            imageResolution = outWidth * 32;
        }

        int embedDim = (int)S("text_projection")[1];
        int contextLength = (int)S("positional_embedding")[0];
        int vocabSize = (int)S("token_embedding.weight")[0];
        int width = (int)S("ln_final.weight")[0];
        int heads = transformerHeads ?? width / 64;
        if (heads <= 0)
            throw new ArgumentException(
                $"Cannot infer the text heads: transformer_width = {width} is below 64, so build_model's width // 64 is 0. " +
                "Pass the number of heads explicitly (the checkpoint does not store it).");
        int layers = shapes.Keys.Where(k => k.StartsWith("transformer.resblocks.", StringComparison.Ordinal))
                                .Select(k => k.Split('.')[2]).Distinct().Count();
        return new ClipConfig(embedDim, imageResolution, visionLayers, visionWidth, patch, contextLength, vocabSize, width, heads, layers);
    }

    /// <summary>Keys that openai/CLIP checkpoints may carry besides the weights (build_model deletes them).</summary>
    public static IReadOnlyList<string> NonWeightKeys { get; } = ["input_resolution", "context_length", "vocab_size"];

    public bool Equals(ClipConfig? other) =>
        other is not null && EmbedDim == other.EmbedDim && ImageResolution == other.ImageResolution &&
        VisionLayers.AsSpan().SequenceEqual(other.VisionLayers) && VisionWidth == other.VisionWidth &&
        VisionPatchSize == other.VisionPatchSize && ContextLength == other.ContextLength && VocabSize == other.VocabSize &&
        TransformerWidth == other.TransformerWidth && TransformerHeads == other.TransformerHeads &&
        TransformerLayers == other.TransformerLayers && VisionHeads == other.VisionHeads;

    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(EmbedDim); h.Add(ImageResolution);
        foreach (var l in VisionLayers) h.Add(l);
        h.Add(VisionWidth); h.Add(VisionPatchSize); h.Add(ContextLength); h.Add(VocabSize);
        h.Add(TransformerWidth); h.Add(TransformerHeads); h.Add(TransformerLayers); h.Add(VisionHeads);
        return h.ToHashCode();
    }

    public override string ToString() =>
        $"ClipConfig(embed_dim={EmbedDim}, image_resolution={ImageResolution}, vision_layers=" +
        (IsVisionTransformer ? VisionLayers[0].ToString() : $"({string.Join(",", VisionLayers)})") +
        $", vision_width={VisionWidth}, vision_patch_size={(VisionPatchSize?.ToString() ?? "None")}, context_length={ContextLength}, " +
        $"vocab_size={VocabSize}, transformer_width={TransformerWidth}, transformer_heads={TransformerHeads}, " +
        $"transformer_layers={TransformerLayers}, vision_heads={VisionHeads})";
}
