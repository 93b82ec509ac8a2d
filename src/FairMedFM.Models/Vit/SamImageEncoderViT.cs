using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Vit;

/// <summary>
/// Constructor arguments of segment-anything's <c>ImageEncoderViT</c> (@ dca509f). Defaults are SAM ViT-B
/// (<c>build_sam_vit_b</c>): 1024 px, patch 16, 768 wide, 12 blocks of 12 heads, window 14, global attention in
/// blocks 2, 5, 8, 11, decomposed relative positions, absolute pos-embed, neck to 256 channels.
/// </summary>
public sealed record SamVitConfig
{
    public int ImgSize { get; init; } = 1024;
    public int PatchSize { get; init; } = 16;
    public int InChans { get; init; } = 3;
    public int EmbedDim { get; init; } = 768;
    public int Depth { get; init; } = 12;
    public int NumHeads { get; init; } = 12;
    public double MlpRatio { get; init; } = 4.0;
    public int OutChans { get; init; } = 256;
    public bool QkvBias { get; init; } = true;
    public bool UseAbsPos { get; init; } = true;
    public bool UseRelPos { get; init; } = true;

    /// <summary>Window size of the non-global blocks (0 = every block global).</summary>
    public int WindowSize { get; init; } = 14;

    public IReadOnlyList<int> GlobalAttnIndexes { get; init; } = [2, 5, 8, 11];

    public int GridSize => ImgSize / PatchSize;

    /// <summary>SAM ViT-B image encoder (sam_vit_b).</summary>
    public static SamVitConfig SamVitB { get; } = new();

    /// <summary>
    /// LVM-Med's ViT-B/16 (FairMedFM <c>MedLVM</c>): the SAM ViT-B encoder at the 1024 setting without absolute
    /// pos-embed (so it runs at any multiple of 16; FairMedFM feeds 224 px → 14×14 tokens, global blocks then
    /// interpolate their 127-entry rel-pos tables to 27).
    /// </summary>
    public static SamVitConfig LvmMedVitB { get; } = new() { UseAbsPos = false };

    // Records compare lists by reference; compare the global block indexes by value.
    public bool Equals(SamVitConfig? other) =>
        other is not null && ImgSize == other.ImgSize && PatchSize == other.PatchSize && InChans == other.InChans &&
        EmbedDim == other.EmbedDim && Depth == other.Depth && NumHeads == other.NumHeads && MlpRatio == other.MlpRatio &&
        OutChans == other.OutChans && QkvBias == other.QkvBias && UseAbsPos == other.UseAbsPos &&
        UseRelPos == other.UseRelPos && WindowSize == other.WindowSize && GlobalAttnIndexes.SequenceEqual(other.GlobalAttnIndexes);

    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(ImgSize); h.Add(PatchSize); h.Add(EmbedDim); h.Add(Depth); h.Add(NumHeads); h.Add(OutChans);
        h.Add(UseAbsPos); h.Add(UseRelPos); h.Add(WindowSize);
        foreach (var i in GlobalAttnIndexes) h.Add(i);
        return h.ToHashCode();
    }

    internal void Validate()
    {
        if (PatchSize <= 0 || ImgSize % PatchSize != 0)
            throw new ArgumentException($"img_size {ImgSize} must be a positive multiple of patch_size {PatchSize}.");
        if (EmbedDim % NumHeads != 0) throw new ArgumentException($"embed_dim {EmbedDim} not divisible by num_heads {NumHeads}.");
        if (WindowSize < 0 || Depth < 0 || OutChans <= 0) throw new ArgumentException("window_size, depth must be >= 0 and out_chans > 0.");
        foreach (var i in GlobalAttnIndexes)
            if (i < 0 || i >= Depth) throw new ArgumentException($"global_attn_index {i} outside 0..{Depth - 1}.");
    }
}

/// <summary>segment-anything <c>LayerNorm2d</c>: LayerNorm over the channel axis of [B, C, H, W] (eps 1e-6).</summary>
public sealed class LayerNorm2d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly double _eps;

    public LayerNorm2d(string name, long numChannels, double eps = 1e-6) : base(name)
    {
        weight = new Parameter(ones(numChannels));
        bias = new Parameter(zeros(numChannels));
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var u = x.mean([1], keepdim: true);
        var xc = x.sub(u);
        var s = xc.pow(2).mean([1], keepdim: true);
        var y = xc.div(s.add(_eps).sqrt());
        return weight.view(-1, 1, 1).mul(y).add(bias.view(-1, 1, 1)).MoveToOuterDisposeScope();
    }
}

/// <summary>segment-anything <c>MLPBlock</c>: lin1 → GELU → lin2.</summary>
public sealed class SamMlpBlock : nn.Module<Tensor, Tensor>
{
    private readonly Linear lin1;
    private readonly Linear lin2;

    public SamMlpBlock(string name, long embeddingDim, long mlpDim) : base(name)
    {
        lin1 = nn.Linear(embeddingDim, mlpDim);
        lin2 = nn.Linear(mlpDim, embeddingDim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return lin2.forward(nn.functional.gelu(lin1.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>Decomposed relative-position helpers of segment-anything's image_encoder.py.</summary>
public static class SamRelPos
{
    /// <summary>
    /// <c>get_rel_pos(q_size, k_size, rel_pos)</c>: the table (linearly resampled to 2·max(q,k) − 1 rows with
    /// F.interpolate(mode="linear", align_corners=False) when its length differs) gathered at the relative
    /// coordinates → [q_size, k_size, C].
    /// </summary>
    public static Tensor GetRelPos(int qSize, int kSize, Tensor relPos)
    {
        using var scope = NewDisposeScope();
        int maxRelDist = 2 * Math.Max(qSize, kSize) - 1;
        Tensor resized;
        if (relPos.shape[0] != maxRelDist)
        {
            resized = nn.functional.interpolate(relPos.reshape(1, relPos.shape[0], -1).permute(0, 2, 1),
                size: [maxRelDist], mode: InterpolationMode.Linear, align_corners: false);
            resized = resized.reshape(-1, maxRelDist).permute(1, 0);
        }
        else resized = relPos;

        // Coordinates as the reference computes them: float32 products, then truncation (.long()).
        float qScale = (float)Math.Max((double)kSize / qSize, 1.0), kScale = (float)Math.Max((double)qSize / kSize, 1.0);
        var idx = new long[qSize * kSize];
        for (int i = 0; i < qSize; i++)
            for (int j = 0; j < kSize; j++)
                idx[i * kSize + j] = (long)(i * qScale - j * kScale + (kSize - 1) * kScale);
        using var index = tensor(idx, device: relPos.device);
        return resized.index_select(0, index).view(qSize, kSize, -1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>add_decomposed_rel_pos</c>: attn [B·heads, qh·qw, kh·kw] plus einsum(q, Rh) over rows and einsum(q, Rw) over
    /// columns, where q [B·heads, qh·qw, C] is the unscaled query.
    /// </summary>
    public static Tensor AddDecomposedRelPos(Tensor attn, Tensor q, Tensor relPosH, Tensor relPosW, (int H, int W) qSize, (int H, int W) kSize)
    {
        using var scope = NewDisposeScope();
        var rh = GetRelPos(qSize.H, kSize.H, relPosH);
        var rw = GetRelPos(qSize.W, kSize.W, relPosW);
        long b = q.shape[0], dim = q.shape[2];
        var rq = q.reshape(b, qSize.H, qSize.W, dim);
        var relH = einsum("bhwc,hkc->bhwk", rq, rh);
        var relW = einsum("bhwc,wkc->bhwk", rq, rw);
        var a = attn.view(b, qSize.H, qSize.W, kSize.H, kSize.W)
            .add(relH.unsqueeze(-1))
            .add(relW.unsqueeze(-2));
        return a.view(b, (long)qSize.H * qSize.W, (long)kSize.H * kSize.W).MoveToOuterDisposeScope();
    }

    /// <summary><c>window_partition</c>: [B, H, W, C] zero-padded to multiples of the window → [B·nW, ws, ws, C].</summary>
    public static (Tensor Windows, (int Hp, int Wp) PadHw) WindowPartition(Tensor x, int windowSize)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], c = x.shape[3];
        int h = (int)x.shape[1], w = (int)x.shape[2];
        int padH = (windowSize - h % windowSize) % windowSize, padW = (windowSize - w % windowSize) % windowSize;
        if (padH > 0 || padW > 0) x = nn.functional.pad(x, [0, 0, 0, padW, 0, padH]);
        int hp = h + padH, wp = w + padW;
        var windows = x.view(b, hp / windowSize, windowSize, wp / windowSize, windowSize, c)
            .permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, windowSize, windowSize, c);
        return (windows.MoveToOuterDisposeScope(), (hp, wp));
    }

    /// <summary><c>window_unpartition</c>: back to [B, Hp, Wp, C], then the padding cropped to [B, H, W, C].</summary>
    public static Tensor WindowUnpartition(Tensor windows, int windowSize, (int Hp, int Wp) padHw, (int H, int W) hw)
    {
        using var scope = NewDisposeScope();
        var (hp, wp) = padHw;
        long b = windows.shape[0] / ((long)hp * wp / windowSize / windowSize);
        var x = windows.view(b, hp / windowSize, wp / windowSize, windowSize, windowSize, -1)
            .permute(0, 1, 3, 2, 4, 5).contiguous().view(b, hp, wp, -1);
        if (hp > hw.H || wp > hw.W) x = x.narrow(1, 0, hw.H).narrow(2, 0, hw.W).contiguous();
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// segment-anything image-encoder <c>Attention</c>: qkv, proj, and (with use_rel_pos) the rel_pos_h / rel_pos_w tables
/// sized for its input (the window, or the whole token grid for global blocks). Operates on [B, H, W, C].
/// </summary>
public sealed class SamAttention : nn.Module<Tensor, Tensor>, IAttentionKernel
{
    // Declared as a plain module so that adapters (LoRA's LoraLinear) can replace it: see ModuleSurgery.
    private nn.Module<Tensor, Tensor> qkv;
    private readonly Linear proj;
    private readonly Parameter? rel_pos_h;
    private readonly Parameter? rel_pos_w;
    private readonly long _heads;
    private readonly double _scale;

    /// <summary>
    /// The fused kernel is used only without relative positions (a rel-pos bias would have to be materialised as an
    /// additive mask anyway); with rel-pos the explicit reference path always runs.
    /// </summary>
    public bool UseFusedAttention { get; set; }

    public SamAttention(string name, long dim, long numHeads, bool qkvBias, bool useRelPos, (int H, int W) inputSize) : base(name)
    {
        _heads = numHeads;
        _scale = Math.Pow(dim / numHeads, -0.5);
        qkv = nn.Linear(dim, dim * 3, hasBias: qkvBias);
        proj = nn.Linear(dim, dim);
        if (useRelPos)
        {
            rel_pos_h = new Parameter(zeros(2 * inputSize.H - 1, dim / numHeads));
            rel_pos_w = new Parameter(zeros(2 * inputSize.W - 1, dim / numHeads));
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], c = x.shape[3];
        int h = (int)x.shape[1], w = (int)x.shape[2];
        // qkv: (3, B·heads, H·W, head_dim)
        var t = qkv.forward(x).reshape(b, (long)h * w, 3, _heads, -1).permute(2, 0, 3, 1, 4).reshape(3, b * _heads, (long)h * w, -1);
        Tensor q = t[0], k = t[1], v = t[2];
        Tensor y;
        if (rel_pos_h is null && UseFusedAttention)
            y = nn.functional.scaled_dot_product_attention(q, k, v);
        else
        {
            var attn = q.mul(_scale).matmul(k.transpose(-2, -1));
            if (rel_pos_h is not null)
                attn = SamRelPos.AddDecomposedRelPos(attn, q, rel_pos_h, rel_pos_w!, (h, w), (h, w));
            y = attn.softmax(-1).matmul(v);
        }
        y = y.view(b, _heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, c);
        return proj.forward(y).MoveToOuterDisposeScope();
    }
}

/// <summary>segment-anything image-encoder <c>Block</c>: windowed (with padding) or global attention, then the MLP.</summary>
public sealed class SamBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly SamAttention attn;
    private readonly LayerNorm norm2;
    private readonly SamMlpBlock mlp;

    public int WindowSize { get; }

    public SamBlock(string name, long dim, long numHeads, double mlpRatio, bool qkvBias, bool useRelPos, int windowSize, (int H, int W) inputSize)
        : base(name)
    {
        WindowSize = windowSize;
        norm1 = VitOps.Norm(dim);
        attn = new SamAttention("attn", dim, numHeads, qkvBias, useRelPos, windowSize == 0 ? inputSize : (windowSize, windowSize));
        norm2 = VitOps.Norm(dim);
        mlp = new SamMlpBlock("mlp", dim, (long)(dim * mlpRatio));
        RegisterComponents();
    }

    /// <summary>[B, H, W, C] → [B, H, W, C].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var shortcut = x;
        var y = norm1.forward(x);
        if (WindowSize > 0)
        {
            int h = (int)y.shape[1], w = (int)y.shape[2];
            var (windows, padHw) = SamRelPos.WindowPartition(y, WindowSize);
            y = SamRelPos.WindowUnpartition(attn.forward(windows), WindowSize, padHw, (h, w));
        }
        else y = attn.forward(y);
        y = shortcut.add(y);
        return y.add(mlp.forward(norm2.forward(y))).MoveToOuterDisposeScope();
    }
}

/// <summary>segment-anything <c>PatchEmbed</c>: the stride-p conv <c>proj</c>, output NHWC [B, H/p, W/p, D].</summary>
public sealed class SamPatchEmbed : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d proj;

    public SamPatchEmbed(string name, int patchSize, long inChans, long embedDim) : base(name)
    {
        proj = nn.Conv2d(inChans, embedDim, patchSize, stride: patchSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return proj.forward(x).permute(0, 2, 3, 1).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// segment-anything <c>ImageEncoderViT</c> (modeling/image_encoder.py @ dca509f): patch_embed.proj, pos_embed
/// (absolute, optional, [1, S/p, S/p, D]), blocks.N (norm1, attn.qkv, attn.proj, attn.rel_pos_h/w, norm2,
/// mlp.lin1/lin2), neck (0: conv1×1 no bias, 1: LayerNorm2d, 2: conv3×3 no bias, 3: LayerNorm2d). The same encoder
/// is LVM-Med's ViT-B (<see cref="SamVitConfig.LvmMedVitB"/>), whose classification feature is
/// <see cref="ForwardPooled"/>.
/// </summary>
public sealed class SamImageEncoderViT : nn.Module<Tensor, Tensor>
{
    private readonly SamPatchEmbed patch_embed;
    private readonly Parameter? pos_embed;
    private readonly ModuleList<SamBlock> blocks;
    private readonly Sequential neck;

    public SamVitConfig Config { get; }

    /// <summary>Width of the pooled block feature (<see cref="ForwardPooled"/>): the embedding width.</summary>
    public int FeatureDim => Config.EmbedDim;

    public SamImageEncoderViT(string name, SamVitConfig config) : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        long d = config.EmbedDim;
        int g = config.GridSize;
        patch_embed = new SamPatchEmbed("patch_embed", config.PatchSize, config.InChans, d);
        pos_embed = config.UseAbsPos ? new Parameter(zeros(1, g, g, d)) : null;
        var globals = config.GlobalAttnIndexes.ToHashSet();
        blocks = nn.ModuleList(Enumerable.Range(0, config.Depth)
            .Select(i => new SamBlock($"{i}", d, config.NumHeads, config.MlpRatio, config.QkvBias, config.UseRelPos,
                                      globals.Contains(i) ? 0 : config.WindowSize, (g, g)))
            .ToArray());
        neck = nn.Sequential(
            ("0", nn.Conv2d(d, config.OutChans, 1, bias: false)),
            ("1", new LayerNorm2d("1", config.OutChans)),
            ("2", nn.Conv2d(config.OutChans, config.OutChans, 3, padding: 1, bias: false)),
            ("3", new LayerNorm2d("3", config.OutChans)));
        RegisterComponents();
    }

    /// <summary><c>patch_embed(x)</c>: NHWC [B, H/p, W/p, D].</summary>
    public Tensor EmbedPatches(Tensor x)
    {
        CheckInput(x);
        return patch_embed.forward(x);
    }

    public int Depth => blocks.Count;

    /// <summary>Runs block <paramref name="index"/> alone on NHWC tokens.</summary>
    public Tensor ForwardBlock(int index, Tensor x) => blocks[index].forward(x);

    /// <summary>patch_embed, + pos_embed, all blocks: the last block's NHWC map [B, H/p, W/p, D] (before the neck).</summary>
    public Tensor ForwardBlocks(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = EmbedPatches(x);
        if (pos_embed is not null) y = y.add(pos_embed);
        foreach (var blk in blocks) y = blk.forward(y);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>The neck on an NHWC block map → [B, OutChans, H/p, W/p].</summary>
    public Tensor Neck(Tensor blocksOut)
    {
        using var scope = NewDisposeScope();
        return neck.forward(blocksOut.permute(0, 3, 1, 2)).MoveToOuterDisposeScope();
    }

    /// <summary>SAM's <c>image_encoder(x)</c>: the image embeddings [B, OutChans, H/p, W/p].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return Neck(ForwardBlocks(x)).MoveToOuterDisposeScope();
    }

    /// <summary>Key prefix of the image encoder inside a full SAM checkpoint (<c>sam_vit_b_01ec64.pth</c> etc.).</summary>
    public const string SamCheckpointPrefix = "image_encoder.";

    /// <summary>
    /// Loads the image encoder out of a full SAM state dict (or a file of the encoder alone): keys under
    /// <see cref="SamCheckpointPrefix"/> are stripped and loaded strictly — nothing is copied unless they cover the
    /// encoder exactly, and a mismatch throws <see cref="WeightLoadException"/>. The prompt-encoder and mask-decoder
    /// keys are not silently dropped: they come back in <see cref="WeightLoadReport.Unexpected"/>.
    /// </summary>
    public WeightLoadReport LoadFromSamCheckpoint(string path)
    {
        var sd = WeightLoader.ReadStateDict(path);
        try
        {
            bool prefixed = sd.Keys.Any(k => k.StartsWith(SamCheckpointPrefix, StringComparison.Ordinal));
            var others = prefixed
                ? sd.Keys.Where(k => !k.StartsWith(SamCheckpointPrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList()
                : [];
            var report = WeightLoader.LoadStateDict(this, sd, new WeightLoadOptions
            {
                Strict = true,
                KeyMap = k => !prefixed ? k : k.StartsWith(SamCheckpointPrefix, StringComparison.Ordinal) ? k[SamCheckpointPrefix.Length..] : null,
            }, path);
            return report with { Unexpected = others };
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    /// <summary>
    /// LVM-Med's classification feature (FairMedFM <c>MedLVM.forward</c>): AdaptiveAvgPool2d(1) over the last block's
    /// map [B, D, h, w] (the neck unused) → [B, D]. Unlike the reference's <c>torch.squeeze</c> (B24), the batch axis
    /// is kept when B = 1.
    /// </summary>
    public Tensor ForwardPooled(Tensor x)
    {
        using var scope = NewDisposeScope();
        var map = ForwardBlocks(x).permute(0, 3, 1, 2);
        return nn.functional.adaptive_avg_pool2d(map, 1).flatten(1).MoveToOuterDisposeScope();
    }

    private void CheckInput(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != Config.InChans)
            throw new ArgumentException($"ImageEncoderViT expects [B,{Config.InChans},H,W], got {VitOps.Shape(x)}.");
        if (x.shape[2] < Config.PatchSize || x.shape[3] < Config.PatchSize)
            throw new ArgumentException($"Input {x.shape[2]}×{x.shape[3]} is smaller than one {Config.PatchSize}-px patch.");
        if (pos_embed is not null && (x.shape[2] != Config.ImgSize || x.shape[3] != Config.ImgSize))
            throw new ArgumentException(
                $"This encoder has an absolute pos-embed for {Config.ImgSize}×{Config.ImgSize} input and got {x.shape[2]}×{x.shape[3]} " +
                "(segment-anything adds it without interpolation; build without UseAbsPos to run other sizes).");
    }
}
