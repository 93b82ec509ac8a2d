using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Clip;

/// <summary>
/// openai/CLIP's <c>CLIP</c> module with its exact <c>state_dict()</c> key names: <c>visual.*</c> (a
/// <see cref="ClipVisionTransformer"/> or <see cref="ClipModifiedResNet"/>), <c>transformer.resblocks.N.*</c>,
/// <c>token_embedding.weight</c>, <c>positional_embedding</c>, <c>ln_final.*</c>, <c>text_projection</c>,
/// <c>logit_scale</c>. The text causal mask is built from the sequence length at run time (it is not a weight, as in
/// the Python module where it is a plain attribute). Float32 throughout unless the caller converts the module.
/// </summary>
public sealed class ClipModel : nn.Module<Tensor, Tensor, (Tensor LogitsPerImage, Tensor LogitsPerText)>
{
    private readonly nn.Module<Tensor, Tensor> visual;
    private readonly ClipTransformer transformer;
    private readonly Embedding token_embedding;
    private readonly Parameter positional_embedding;
    private readonly ClipLayerNorm ln_final;
    private readonly Parameter text_projection;
    private readonly Parameter logit_scale;

    public ClipConfig Config { get; }

    /// <summary>sha256 of the weights file loaded into this module (set by <see cref="ClipLoader"/>; null for random init).</summary>
    public string? WeightsHash { get; set; }

    public ClipModel(ClipConfig config, string name = "clip") : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        visual = config.IsVisionTransformer
            ? new ClipVisionTransformer("visual", config.ImageResolution, config.VisionPatchSize!.Value, config.VisionWidth,
                                        config.VisionLayers[0], config.VisionHeads, config.EmbedDim)
            : new ClipModifiedResNet("visual", config.VisionLayers, config.EmbedDim, config.VisionHeads,
                                     config.ImageResolution, config.VisionWidth);
        transformer = new ClipTransformer("transformer", config.TransformerWidth, config.TransformerLayers, config.TransformerHeads, causal: true);
        token_embedding = nn.Embedding(config.VocabSize, config.TransformerWidth);
        positional_embedding = nn.Parameter(empty(config.ContextLength, config.TransformerWidth));
        ln_final = new ClipLayerNorm("ln_final", config.TransformerWidth);
        text_projection = nn.Parameter(empty(config.TransformerWidth, config.EmbedDim));
        logit_scale = nn.Parameter(ones(Array.Empty<long>()).mul_(Math.Log(1 / 0.07)));
        RegisterComponents();

        // openai/CLIP initialize_parameters (the text side; the towers initialise themselves).
        using var _ = no_grad();
        nn.init.normal_(token_embedding.weight!, 0, 0.02);
        nn.init.normal_(positional_embedding, 0, 0.01);
        nn.init.normal_(text_projection, 0, Math.Pow(config.TransformerWidth, -0.5));
        transformer.InitializeLikeClip();
    }

    public int EmbedDim => Config.EmbedDim;

    /// <summary>
    /// Text pooling: null (openai/CLIP, and HF CLIP configs with eos_token_id 2) reads the feature at the argmax of
    /// the ids; an id reads it at the first position holding that id (HF CLIPTextTransformer with a real
    /// eos_token_id). A row without that id is an error, not HF's silent position 0.
    /// </summary>
    public int? TextEosTokenId { get; set; }
    public IClipVisionTower Visual => (IClipVisionTower)visual;

    /// <summary>The learned temperature exp(logit_scale) (CLIP's multiplier of the cosine similarities).</summary>
    public double LogitScaleExp
    {
        get
        {
            using var _ = no_grad();
            using var e = logit_scale.detach().to(float32).exp();
            return e.item<float>();
        }
    }

    /// <summary><c>encode_image</c>: [N, 3, R, R] (normalised as CLIP's preprocess) → [N, embed_dim], not normalised.</summary>
    public Tensor EncodeImage(Tensor images) => Visual.Forward(images, null);

    /// <summary>
    /// <c>encode_text</c>: token ids [N, L] (int32 or int64, L ≤ context_length; <see cref="ClipTokenizer"/> gives
    /// L = 77) → [N, embed_dim], not normalised. The feature is read at the end-of-text token, found as the argmax of
    /// the ids (the EOT id is the largest in CLIP's vocabulary), exactly as openai/CLIP.
    /// </summary>
    public Tensor EncodeText(Tensor text) => EncodeText(text, null);

    private Tensor EncodeText(Tensor text, IDictionary<string, Tensor>? taps)
    {
        if (text.dim() != 2) throw new ArgumentException($"EncodeText expects token ids [N, L], got [{string.Join(",", text.shape)}].");
        if (text.shape[1] > Config.ContextLength)
            throw new ArgumentException($"Token rows of length {text.shape[1]} exceed the context length {Config.ContextLength}.");
        if (text.dtype is not (ScalarType.Int32 or ScalarType.Int64 or ScalarType.Int16 or ScalarType.Byte))
            throw new ArgumentException($"EncodeText expects integer token ids, got {text.dtype}.");
        using var scope = NewDisposeScope();
        var ids = text.to(int64).to(token_embedding.weight!.device);
        long n = ids.shape[0], l = ids.shape[1];
        var x = token_embedding.forward(ids);                                        // [N, L, D]
        x = x + positional_embedding.narrow(0, 0, l).to(x.dtype);
        x = x.permute(1, 0, 2);                                                       // NLD → LND
        x = transformer.Forward(x, taps, "text_");
        x = x.permute(1, 0, 2);                                                       // LND → NLD
        x = ln_final.forward(x);
        ClipVisionTransformer.Tap(taps, "text_ln_final_out", x);
        Tensor eot;
        if (TextEosTokenId is int eos)
        {
            var hit = ids.eq(eos);
            if (!hit.any(-1).all().item<bool>())
                throw new ArgumentException($"A token row holds no end-of-text id {eos}; the text feature is read at that token.");
            eot = hit.to(int32).argmax(-1);
        }
        else eot = ids.argmax(-1);
        x = x[arange(n, device: x.device), eot];                                      // [N, D]
        return x.matmul(text_projection.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>CLIP.forward</c>: logits_per_image [N_img, N_txt] = exp(logit_scale) · cos(image, text) and its transpose.
    /// </summary>
    public override (Tensor LogitsPerImage, Tensor LogitsPerText) forward(Tensor images, Tensor text)
    {
        using var scope = NewDisposeScope();
        var (lpi, lpt) = Logits(EncodeImage(images), EncodeText(text));
        return (lpi.MoveToOuterDisposeScope(), lpt.MoveToOuterDisposeScope());
    }

    private (Tensor, Tensor) Logits(Tensor imageFeatures, Tensor textFeatures)
    {
        var i = imageFeatures / imageFeatures.norm(1, keepdim: true);
        var t = textFeatures / textFeatures.norm(1, keepdim: true);
        var lpi = logit_scale.exp() * i.matmul(t.t());
        return (lpi, lpi.t());
    }

    /// <summary>
    /// Every output and intermediate that the golden fixtures store, under their names: image_embeds, text_embeds,
    /// logits_per_image, logits_per_text, logit_scale_exp, vision_* (tower taps, e.g. vision_conv1_out,
    /// vision_ln_pre_out_NLD, vision_block0_out_LND, vision_ln_post_cls or vision_stem_out, vision_layer1_out …
    /// vision_attnpool_out), text_block{i}_out_LND, text_ln_final_out. The tensors are detached from every dispose
    /// scope: the caller owns (disposes or attaches) them.
    /// </summary>
    public Dictionary<string, Tensor> ForwardIntermediates(Tensor images, Tensor text)
    {
        using var scope = NewDisposeScope();
        var vision = new Dictionary<string, Tensor>();
        var d = new Dictionary<string, Tensor>();
        var img = d["image_embeds"] = Visual.Forward(images, vision);
        foreach (var (k, v) in vision) d["vision_" + k] = v;
        var txt = d["text_embeds"] = EncodeText(text, d);
        var (lpi, lpt) = Logits(img, txt);
        d["logits_per_image"] = lpi;
        d["logits_per_text"] = lpt;
        d["logit_scale_exp"] = logit_scale.exp();
        foreach (var t in d.Values) t.DetachFromDisposeScope();
        return d;
    }

    internal static void CheckImage(Tensor x, int resolution)
    {
        if (x.dim() != 4 || x.shape[1] != 3)
            throw new ArgumentException($"CLIP image towers expect [N, 3, H, W], got [{string.Join(",", x.shape)}].");
        if (x.shape[2] != resolution || x.shape[3] != resolution)
            throw new ArgumentException(
                $"This CLIP image tower was built for {resolution}×{resolution} input (positional embeddings are not interpolated), got {x.shape[2]}×{x.shape[3]}.");
    }
}
