using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Vit;

/// <summary>
/// Constructor arguments of timm 1.0.3 <c>VisionTransformer</c> that this port supports. Defaults are timm's
/// (ViT-B/16 at 224, class token, 'token' pooling, 1000 classes, qkv bias, no layer scale).
/// </summary>
public sealed record VitConfig
{
    public int ImgSize { get; init; } = 224;
    public int PatchSize { get; init; } = 16;
    public int InChans { get; init; } = 3;
    public int NumClasses { get; init; } = 1000;

    /// <summary>"token" (class token), "avg" (mean of patch tokens), "map" (AttentionPoolLatent) or "" (none).</summary>
    public string GlobalPool { get; init; } = "token";

    public int EmbedDim { get; init; } = 768;
    public int Depth { get; init; } = 12;
    public int NumHeads { get; init; } = 12;
    public double MlpRatio { get; init; } = 4.0;
    public bool QkvBias { get; init; } = true;

    /// <summary>Layer-scale init (timm init_values); null = no ls1/ls2.</summary>
    public double? InitValues { get; init; }

    public bool ClassToken { get; init; } = true;

    /// <summary>timm fc_norm: null means (GlobalPool == "avg"). With fc_norm the final <c>norm</c> is Identity.</summary>
    public bool? FcNorm { get; init; }

    public bool UseFcNorm => FcNorm ?? GlobalPool == "avg";

    /// <summary>LayerNorm eps of every norm (timm's ViTs 1e-6; OpenAI CLIP 1e-5).</summary>
    public double LayerNormEps { get; init; } = VitOps.LayerNormEps;

    /// <summary>timm act_layer of the blocks' MLPs: "gelu" (exact), "gelu_tanh" (SigLIP) or "quick_gelu" (OpenAI CLIP).</summary>
    public string Activation { get; init; } = "gelu";

    /// <summary>
    /// Activation of the 'map' pool's MLP; null = <see cref="Activation"/> (as HF SigLIP's head and later timm, which
    /// passes act_layer to AttentionPoolLatent). Set "gelu" to reproduce a timm that builds the pool with its default
    /// exact GELU whatever act_layer is.
    /// </summary>
    public string? AttnPoolActivation { get; init; }

    /// <summary>MLP hidden width (blocks and 'map' pool); null = (long)(EmbedDim · MlpRatio). SigLIP So400m: 4304.</summary>
    public int? MlpHiddenDim { get; init; }

    /// <summary>timm pre_norm: a LayerNorm (<c>norm_pre</c>) after the position embedding, and no patch-embed bias (CLIP).</summary>
    public bool PreNorm { get; init; }

    /// <summary>Whether the classifier <c>head</c> has a bias (HF CLIP's visual_projection has none).</summary>
    public bool HeadBias { get; init; } = true;

    public long MlpHidden => MlpHiddenDim ?? (long)(EmbedDim * MlpRatio);
    public int GridSize => ImgSize / PatchSize;
    public int NumPatches => GridSize * GridSize;
    public int NumPrefixTokens => ClassToken ? 1 : 0;

    /// <summary>timm's default ViT-B/16 (what FairMedFM's MedMAE builds with <c>VisionTransformer()</c>).</summary>
    public static VitConfig VitBase16 { get; } = new();

    internal void Validate()
    {
        if (GlobalPool is not ("token" or "avg" or "map" or ""))
            throw new ArgumentException($"Unknown global_pool '{GlobalPool}' (expected token, avg, map or '').");
        if (GlobalPool == "token" && !ClassToken)
            throw new ArgumentException("global_pool 'token' needs a class token.");
        if (PatchSize <= 0 || ImgSize % PatchSize != 0)
            throw new ArgumentException($"img_size {ImgSize} must be a positive multiple of patch_size {PatchSize}.");
        if (EmbedDim % NumHeads != 0) throw new ArgumentException($"embed_dim {EmbedDim} not divisible by num_heads {NumHeads}.");
        if (Depth < 0 || NumClasses < 0) throw new ArgumentException("depth and num_classes must be >= 0.");
        VitOps.CheckActivation(Activation);
        if (AttnPoolActivation is not null) VitOps.CheckActivation(AttnPoolActivation);
    }
}

/// <summary>
/// timm 1.0.3 <c>AttentionPoolLatent</c> as built by VisionTransformer for global_pool='map' (SigLIP head): a learned
/// latent query attends over the tokens (q from the latent, k/v from the tokens; no q/k norm, no pos-embed), then
/// proj, then a residual MLP on the normed result: x = x + mlp(norm(x)); 'token' pooling of the single latent.
/// </summary>
public sealed class AttentionPoolLatent : nn.Module<Tensor, Tensor>, IAttentionKernel
{
    public bool UseFusedAttention { get; set; }

    private readonly Parameter latent;
    private readonly Linear q;
    private readonly Linear kv;
    private readonly Linear proj;
    private readonly LayerNorm norm;
    private readonly Mlp mlp;
    private readonly long _heads, _headDim;
    private readonly double _scale;

    public AttentionPoolLatent(string name, long embedDim, long numHeads, double mlpRatio = 4.0, bool qkvBias = true,
                               double eps = VitOps.LayerNormEps, string activation = "gelu", long? mlpHidden = null) : base(name)
    {
        if (embedDim % numHeads != 0) throw new ArgumentException($"embed_dim {embedDim} not divisible by num_heads {numHeads}.");
        _heads = numHeads;
        _headDim = embedDim / numHeads;
        _scale = Math.Pow(_headDim, -0.5);
        latent = new Parameter(zeros(1, 1, embedDim));
        q = nn.Linear(embedDim, embedDim, hasBias: qkvBias);
        kv = nn.Linear(embedDim, embedDim * 2, hasBias: qkvBias);
        proj = nn.Linear(embedDim, embedDim);
        norm = VitOps.Norm(embedDim, eps);
        mlp = new Mlp("mlp", embedDim, mlpHidden ?? (long)(embedDim * mlpRatio), activation: activation);
        RegisterComponents();
    }

    /// <summary>[B, N, C] → [B, C].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        long latentLen = latent.shape[1];
        var ql = q.forward(latent.expand(b, -1, -1)).reshape(b, latentLen, _heads, _headDim).transpose(1, 2);
        var kvt = kv.forward(x).reshape(b, n, 2, _heads, _headDim).permute(2, 0, 3, 1, 4);
        var y = VitOps.Attend(ql, kvt[0], kvt[1], _scale, UseFusedAttention);
        y = y.transpose(1, 2).reshape(b, latentLen, c);
        y = proj.forward(y);
        y = y.add(mlp.forward(norm.forward(y)));
        return y.select(1, 0).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// timm 1.0.3 <c>VisionTransformer</c> (timm/models/vision_transformer.py) for the configurations FairMedFM uses:
/// patch_embed.proj, cls_token, pos_embed (class token included, no_embed_class=False), blocks.N, norm / fc_norm,
/// attn_pool ('map'), head. <c>state_dict()</c> keys equal timm's, so timm/MAE checkpoints load by name.
/// Input size is fixed to <see cref="VitConfig.ImgSize"/> (timm's strict_img_size, no dynamic pos-embed).
/// </summary>
public sealed class VisionTransformer : nn.Module<Tensor, Tensor>
{
    private readonly PatchEmbed patch_embed;
    private readonly Parameter? cls_token;
    private readonly Parameter pos_embed;
    private readonly LayerNorm? norm_pre;
    private readonly ModuleList<VitBlock> blocks;
    private readonly LayerNorm? norm;
    private readonly AttentionPoolLatent? attn_pool;
    private readonly LayerNorm? fc_norm;
    private readonly Linear? head;

    public VitConfig Config { get; }

    /// <summary>Width of <see cref="ForwardHead"/> with preLogits (the pooled feature).</summary>
    public int FeatureDim => Config.EmbedDim;

    public VisionTransformer(string name, VitConfig config) : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        long d = config.EmbedDim;
        double eps = config.LayerNormEps;
        // timm: bias=not pre_norm ("disable bias if pre-norm is used (e.g. CLIP)").
        patch_embed = new PatchEmbed("patch_embed", config.PatchSize, config.InChans, d, bias: !config.PreNorm);
        cls_token = config.ClassToken ? new Parameter(zeros(1, 1, d)) : null;
        pos_embed = new Parameter(zeros(1, config.NumPatches + config.NumPrefixTokens, d));
        norm_pre = config.PreNorm ? VitOps.Norm(d, eps) : null;
        blocks = nn.ModuleList(Enumerable.Range(0, config.Depth)
            .Select(i => new VitBlock($"{i}", d, config.NumHeads, config.MlpRatio, config.QkvBias, config.InitValues,
                                      eps, config.Activation, config.MlpHidden)).ToArray());
        norm = config.UseFcNorm ? null : VitOps.Norm(d, eps);
        attn_pool = config.GlobalPool == "map"
            ? new AttentionPoolLatent("attn_pool", d, config.NumHeads, config.MlpRatio, eps: eps,
                                      activation: config.AttnPoolActivation ?? config.Activation, mlpHidden: config.MlpHidden)
            : null;
        fc_norm = config.UseFcNorm ? VitOps.Norm(d, eps) : null;
        head = config.NumClasses > 0 ? nn.Linear(d, config.NumClasses, hasBias: config.HeadBias) : null;
        RegisterComponents();
    }

    /// <summary>timm <c>patch_embed(x)</c>: [B, N, D].</summary>
    public Tensor EmbedPatches(Tensor x)
    {
        CheckInput(x);
        return patch_embed.forward(x);
    }

    /// <summary>timm <c>_pos_embed</c>: prefix (class) token concatenated in front, then pos_embed added.</summary>
    public Tensor AddPosEmbed(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var x = tokens;
        if (cls_token is not null) x = cat([cls_token.expand(x.shape[0], -1, -1), x], 1);
        return x.add(pos_embed).MoveToOuterDisposeScope();
    }

    /// <summary>Number of transformer blocks.</summary>
    public int Depth => blocks.Count;

    /// <summary>Runs block <paramref name="index"/> alone (for parity checks of intermediates).</summary>
    public Tensor ForwardBlock(int index, Tensor x) => blocks[index].forward(x);

    /// <summary>timm <c>forward_features</c>: tokens after the final norm (Identity with fc_norm) [B, prefix + N, D].</summary>
    public Tensor ForwardFeatures(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = AddPosEmbed(EmbedPatches(x));
        if (norm_pre is not null) y = norm_pre.forward(y);
        foreach (var blk in blocks) y = blk.forward(y);
        if (norm is not null) y = norm.forward(y);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// timm <c>forward_head</c>: attn_pool ('map'), mean of the patch tokens ('avg'), or the class token ('token'),
    /// then fc_norm; with <paramref name="preLogits"/> the pooled feature [B, D], else head logits [B, NumClasses]
    /// (the pooled feature when there is no head, as timm's Identity head).
    /// </summary>
    public Tensor ForwardHead(Tensor features, bool preLogits = false)
    {
        using var scope = NewDisposeScope();
        Tensor x;
        if (attn_pool is not null) x = attn_pool.forward(features);
        else if (Config.GlobalPool == "avg") x = features.narrow(1, Config.NumPrefixTokens, features.shape[1] - Config.NumPrefixTokens).mean([1]);
        else if (Config.GlobalPool.Length > 0) x = features.select(1, 0);
        else x = features.alias();
        if (fc_norm is not null) x = fc_norm.forward(x);
        if (!preLogits && head is not null) x = head.forward(x);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>The attention-pool output of a 'map' model (timm <c>model.attn_pool(features)</c>).</summary>
    public Tensor AttentionPool(Tensor features) =>
        (attn_pool ?? throw new InvalidOperationException("This VisionTransformer has no attention pool (global_pool != 'map').")).forward(features);

    /// <summary>The pooled feature FairMedFM uses (forward_head with pre_logits=True) [B, D].</summary>
    public Tensor ForwardPooled(Tensor x)
    {
        using var scope = NewDisposeScope();
        return ForwardHead(ForwardFeatures(x), preLogits: true).MoveToOuterDisposeScope();
    }

    /// <summary>timm <c>model(x)</c> = forward_head(forward_features(x)).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return ForwardHead(ForwardFeatures(x)).MoveToOuterDisposeScope();
    }

    private void CheckInput(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != Config.InChans)
            throw new ArgumentException($"VisionTransformer expects [B,{Config.InChans},H,W], got {VitOps.Shape(x)}.");
        if (x.shape[2] != Config.ImgSize || x.shape[3] != Config.ImgSize)
            throw new ArgumentException(
                $"Input size ({x.shape[2]}*{x.shape[3]}) doesn't match model ({Config.ImgSize}*{Config.ImgSize}) (timm strict_img_size).");
    }
}
