using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Vit;

/// <summary>
/// Constructor arguments of DINOv2's <c>DinoVisionTransformer</c> (facebookresearch/dinov2 @ 85a2460) with the hub
/// model's settings: MLP FFN, layer scale, no block chunking, bicubic pos-embed interpolation with offset 0.1.
/// </summary>
public sealed record DinoV2Config
{
    public int ImgSize { get; init; } = 518;
    public int PatchSize { get; init; } = 14;
    public int InChans { get; init; } = 3;
    public int EmbedDim { get; init; } = 768;
    public int Depth { get; init; } = 12;
    public int NumHeads { get; init; } = 12;
    public double MlpRatio { get; init; } = 4.0;
    public bool QkvBias { get; init; } = true;

    /// <summary>LayerScale init (hub models: 1e-5); null = no ls1/ls2.</summary>
    public double? InitValues { get; init; } = 1e-5;

    public int NumRegisterTokens { get; init; }

    /// <summary>0 → interpolate to an explicit size; otherwise scale_factor = ((w0 + offset)/M, (h0 + offset)/M).</summary>
    public double InterpolateOffset { get; init; } = 0.1;

    /// <summary>Only false (the hub setting) is supported: TorchSharp's interpolate has no antialias switch.</summary>
    public bool InterpolateAntialias { get; init; }

    public int GridSize => ImgSize / PatchSize;

    /// <summary>hub <c>dinov2_vitb14</c>: ViT-B/14 built at img_size 518 (pos-embed grid 37×37), layer scale 1e-5.</summary>
    public static DinoV2Config VitB14 { get; } = new();

    internal void Validate()
    {
        if (PatchSize <= 0 || ImgSize < PatchSize) throw new ArgumentException($"Bad img_size {ImgSize} / patch_size {PatchSize}.");
        if (EmbedDim % NumHeads != 0) throw new ArgumentException($"embed_dim {EmbedDim} not divisible by num_heads {NumHeads}.");
        if (InterpolateAntialias)
            throw new NotSupportedException("interpolate_antialias=True is not supported (hub DINOv2 models use False).");
        if (NumRegisterTokens < 0 || Depth < 0) throw new ArgumentException("depth and num_register_tokens must be >= 0.");
    }
}

/// <summary>
/// DINOv2 <c>DinoVisionTransformer</c> (dinov2/models/vision_transformer.py @ 85a2460) for inference: patch_embed.proj,
/// cls_token, pos_embed (with its class position), optional register_tokens, mask_token (kept for checkpoint
/// compatibility, unused without masks), blocks.N (norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1/fc2,
/// ls2.gamma), norm; head = Identity, so <c>forward</c> returns the normed class token.
/// </summary>
public sealed class DinoVisionTransformer : nn.Module<Tensor, Tensor>
{
    private readonly PatchEmbed patch_embed;
    private readonly Parameter cls_token;
    private readonly Parameter pos_embed;
    private readonly Parameter? register_tokens;
    private readonly ModuleList<VitBlock> blocks;
    private readonly LayerNorm norm;
    private readonly Parameter mask_token;

    public DinoV2Config Config { get; }
    public int FeatureDim => Config.EmbedDim;

    public DinoVisionTransformer(string name, DinoV2Config config) : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        long d = config.EmbedDim;
        patch_embed = new PatchEmbed("patch_embed", config.PatchSize, config.InChans, d);
        cls_token = new Parameter(zeros(1, 1, d));
        pos_embed = new Parameter(zeros(1, (long)config.GridSize * config.GridSize + 1, d));
        register_tokens = config.NumRegisterTokens > 0 ? new Parameter(zeros(1, config.NumRegisterTokens, d)) : null;
        blocks = nn.ModuleList(Enumerable.Range(0, config.Depth)
            .Select(i => new VitBlock($"{i}", d, config.NumHeads, config.MlpRatio, config.QkvBias, config.InitValues)).ToArray());
        norm = VitOps.Norm(d);
        mask_token = new Parameter(zeros(1, d));
        RegisterComponents();
    }

    /// <summary>
    /// DINOv2 <c>interpolate_pos_encoding(x, w, h)</c> for a token sequence <paramref name="tokens"/> ([B, 1 + N, D],
    /// class token first) from an image whose dim 2 is <paramref name="w"/> and dim 3 is <paramref name="h"/> pixels
    /// (the reference's names). Returns pos_embed itself when N equals the stored grid and w == h; otherwise the patch
    /// positions resampled with bicubic F.interpolate (align_corners=False, antialias=False) using
    /// scale_factor ((w0 + 0.1)/M, (h0 + 0.1)/M) — the factor, not the output size, drives the coordinate mapping.
    /// </summary>
    public Tensor InterpolatePosEncoding(Tensor tokens, long w, long h)
    {
        using var scope = NewDisposeScope();
        long npatch = tokens.shape[1] - 1;
        long n = pos_embed.shape[1] - 1;
        if (npatch == n && w == h) return pos_embed.alias().MoveToOuterDisposeScope();
        var pe = pos_embed.to(float32);
        var classPos = pe.select(1, 0);
        var patchPos = pe.narrow(1, 1, n);
        long dim = tokens.shape[^1];
        long w0 = w / Config.PatchSize, h0 = h / Config.PatchSize;
        long m = (long)Math.Sqrt(n);
        if (m * m != n) throw new InvalidOperationException($"pos_embed holds {n} patch positions, not a square grid.");
        var grid = patchPos.reshape(1, m, m, dim).permute(0, 3, 1, 2);
        Tensor resized = Config.InterpolateOffset != 0
            ? nn.functional.interpolate(grid,
                scale_factor: [(w0 + Config.InterpolateOffset) / m, (h0 + Config.InterpolateOffset) / m],
                mode: InterpolationMode.Bicubic, align_corners: false, recompute_scale_factor: false)
            : nn.functional.interpolate(grid, size: [w0, h0], mode: InterpolationMode.Bicubic, align_corners: false);
        if (resized.shape[2] != w0 || resized.shape[3] != h0)
            throw new InvalidOperationException($"Interpolated pos-embed grid {resized.shape[2]}×{resized.shape[3]} != {w0}×{h0}.");
        var patchOut = resized.permute(0, 2, 3, 1).reshape(1, -1, dim);
        return cat([classPos.unsqueeze(0), patchOut], 1).to(tokens.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// DINOv2 <c>prepare_tokens_with_masks(x)</c> (no masks): patch tokens, class token in front, interpolated
    /// pos-embed added, then register tokens (if any) inserted after the class token.
    /// </summary>
    public Tensor PrepareTokens(Tensor x)
    {
        CheckInput(x);
        using var scope = NewDisposeScope();
        long w = x.shape[2], h = x.shape[3];
        var t = patch_embed.forward(x);
        t = cat([cls_token.expand(t.shape[0], -1, -1), t], 1);
        t = t.add(InterpolatePosEncoding(t, w, h));
        if (register_tokens is not null)
            t = cat([t.narrow(1, 0, 1), register_tokens.expand(t.shape[0], -1, -1), t.narrow(1, 1, t.shape[1] - 1)], 1);
        return t.MoveToOuterDisposeScope();
    }

    public int Depth => blocks.Count;

    /// <summary>Runs block <paramref name="index"/> alone (parity checks of intermediates).</summary>
    public Tensor ForwardBlock(int index, Tensor x) => blocks[index].forward(x);

    /// <summary>The dictionary of DINOv2 <c>forward_features</c> (masks omitted); the caller owns the tensors.</summary>
    public sealed record Features(Tensor XNormClsToken, Tensor XNormRegTokens, Tensor XNormPatchTokens, Tensor XPrenorm) : IDisposable
    {
        public void Dispose()
        {
            XNormClsToken.Dispose();
            XNormRegTokens.Dispose();
            XNormPatchTokens.Dispose();
            XPrenorm.Dispose();
        }
    }

    /// <summary>DINOv2 <c>forward_features(x)</c>.</summary>
    public Features ForwardFeatures(Tensor x)
    {
        using var scope = NewDisposeScope();
        var t = PrepareTokens(x);
        foreach (var blk in blocks) t = blk.forward(t);
        var xn = norm.forward(t);
        int r = Config.NumRegisterTokens;
        var f = new Features(
            xn.select(1, 0),
            xn.narrow(1, 1, r),
            xn.narrow(1, 1 + r, xn.shape[1] - 1 - r),
            t);
        f.XNormClsToken.MoveToOuterDisposeScope();
        f.XNormRegTokens.MoveToOuterDisposeScope();
        f.XNormPatchTokens.MoveToOuterDisposeScope();
        f.XPrenorm.MoveToOuterDisposeScope();
        return f;
    }

    /// <summary>DINOv2 <c>model(x)</c> = head(x_norm_clstoken), head = Identity: FairMedFM's DINOv2 feature [B, D].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var t = PrepareTokens(x);
        foreach (var blk in blocks) t = blk.forward(t);
        // LayerNorm is per token, so normalising only the class token equals norm(x)[:, 0].
        return norm.forward(t.select(1, 0)).MoveToOuterDisposeScope();
    }

    private void CheckInput(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != Config.InChans)
            throw new ArgumentException($"DinoVisionTransformer expects [B,{Config.InChans},H,W], got {VitOps.Shape(x)}.");
        if (x.shape[2] % Config.PatchSize != 0 || x.shape[3] % Config.PatchSize != 0)
            throw new ArgumentException(
                $"Input image size {x.shape[2]}×{x.shape[3]} is not a multiple of the patch size {Config.PatchSize} (DINOv2 PatchEmbed asserts this).");
    }
}
