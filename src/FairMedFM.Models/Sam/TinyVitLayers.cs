using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Sam;

// Building blocks of MobileSAM's tiny_vit_sam.py (ChaoningZhang/MobileSAM @ 34bbbfd). Field names are the checkpoint
// key names, so RegisterComponents() yields exactly the reference's state-dict keys. Activations are exact (erf) GELU,
// LayerNorm eps 1e-5 (nn.LayerNorm's default), BatchNorm eps 1e-5. Classes carry a TinyVit prefix so they cannot
// collide with SAM's own modules in this namespace.

/// <summary>
/// <c>Conv2d_BN</c>: conv (no bias) <c>c</c> then BatchNorm2d <c>bn</c>. In eval mode the BatchNorm uses its
/// running statistics, as every fixture and SAM inference do.
/// </summary>
public sealed class TinyVitConv2dBN : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d c;
    private readonly BatchNorm2d bn;

    public TinyVitConv2dBN(string name, long inChannels, long outChannels, long kernelSize = 1, long stride = 1, long padding = 0,
                           long groups = 1, double bnWeightInit = 1.0) : base(name)
    {
        c = nn.Conv2d(inChannels, outChannels, kernelSize, stride: stride, padding: padding, groups: groups, bias: false);
        bn = nn.BatchNorm2d(outChannels);
        using (no_grad()) bn.weight!.fill_(bnWeightInit);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return bn.forward(c.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary><c>PatchEmbed</c>: <c>seq</c> = Conv2d_BN(in, D/2, 3, s2) → GELU → Conv2d_BN(D/2, D, 3, s2): [B, D, H/4, W/4].</summary>
public sealed class TinyVitPatchEmbed : nn.Module<Tensor, Tensor>
{
    private readonly Sequential seq;

    public TinyVitPatchEmbed(string name, long inChans, long embedDim) : base(name)
    {
        seq = nn.Sequential(
            ("0", new TinyVitConv2dBN("0", inChans, embedDim / 2, 3, 2, 1)),
            ("1", nn.GELU()),
            ("2", new TinyVitConv2dBN("2", embedDim / 2, embedDim, 3, 2, 1)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => seq.forward(x);
}

/// <summary>
/// <c>MBConv</c> (NCHW in and out): 1×1 expand → GELU → depthwise 3×3 → GELU → 1×1 project (its BatchNorm weight
/// initialised to 0) → + input → GELU.
/// </summary>
public sealed class TinyVitMBConv : nn.Module<Tensor, Tensor>
{
    private readonly TinyVitConv2dBN conv1;
    private readonly TinyVitConv2dBN conv2;
    private readonly TinyVitConv2dBN conv3;

    public TinyVitMBConv(string name, long inChans, long outChans, double expandRatio) : base(name)
    {
        if (inChans != outChans)
            throw new ArgumentException($"MBConv adds its input back, so in_chans ({inChans}) must equal out_chans ({outChans}).");
        long hidden = (long)(inChans * expandRatio);
        conv1 = new TinyVitConv2dBN("conv1", inChans, hidden, 1);
        conv2 = new TinyVitConv2dBN("conv2", hidden, hidden, 3, 1, 1, groups: hidden);
        conv3 = new TinyVitConv2dBN("conv3", hidden, outChans, 1, bnWeightInit: 0.0);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = nn.functional.gelu(conv1.forward(x));
        y = nn.functional.gelu(conv2.forward(y));
        y = conv3.forward(y).add(x);
        return nn.functional.gelu(y).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// <c>PatchMerging</c>: tokens [B, H·W, C] (viewed as the stage's H×W grid) or a map [B, C, H, W] → 1×1 conv →
/// GELU → depthwise 3×3 (stride 2, or 1 when the output width is 320/448/576, see
/// <see cref="TinyVitConfig.MergeStride"/>) → GELU → 1×1 conv → tokens [B, H'·W', out].
/// </summary>
public sealed class TinyVitPatchMerging : nn.Module<Tensor, Tensor>
{
    private readonly TinyVitConv2dBN conv1;
    private readonly TinyVitConv2dBN conv2;
    private readonly TinyVitConv2dBN conv3;
    private readonly (int H, int W) _resolution;

    public TinyVitPatchMerging(string name, (int H, int W) inputResolution, long dim, long outDim) : base(name)
    {
        _resolution = inputResolution;
        conv1 = new TinyVitConv2dBN("conv1", dim, outDim, 1, 1, 0);
        conv2 = new TinyVitConv2dBN("conv2", outDim, outDim, 3, TinyVitConfig.MergeStride((int)outDim), 1, groups: outDim);
        conv3 = new TinyVitConv2dBN("conv3", outDim, outDim, 1, 1, 0);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (x.dim() == 3)
        {
            var (h, w) = _resolution;
            if (x.shape[1] != (long)h * w)
                throw new ArgumentException($"PatchMerging {name}: expected {h}×{w} = {h * w} tokens, got {x.shape[1]}.");
            x = x.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2);
        }
        var y = nn.functional.gelu(conv1.forward(x));
        y = nn.functional.gelu(conv2.forward(y));
        y = conv3.forward(y);
        return y.flatten(2).transpose(1, 2).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// <c>ConvLayer</c> (stage 0): MBConv <c>blocks</c> on the NCHW map, then the optional <c>downsample</c>
/// (PatchMerging → tokens).
/// </summary>
public sealed class TinyVitConvLayer : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<TinyVitMBConv> blocks;
    private readonly TinyVitPatchMerging? downsample;

    public TinyVitConvLayer(string name, long dim, (int H, int W) inputResolution, int depth, long? outDim, double expandRatio) : base(name)
    {
        blocks = nn.ModuleList(Enumerable.Range(0, depth).Select(i => new TinyVitMBConv($"{i}", dim, dim, expandRatio)).ToArray());
        downsample = outDim is { } o ? new TinyVitPatchMerging("downsample", inputResolution, dim, o) : null;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var b in blocks) x = b.forward(x);
        if (downsample is not null) x = downsample.forward(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary><c>Mlp</c> of the TinyViT block: its own LayerNorm <c>norm</c>, then fc1 → GELU → fc2.</summary>
public sealed class TinyVitMlp : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Linear fc1;
    private readonly Linear fc2;

    public TinyVitMlp(string name, long inFeatures, long hiddenFeatures) : base(name)
    {
        norm = nn.LayerNorm(inFeatures);
        fc1 = nn.Linear(inFeatures, hiddenFeatures);
        fc2 = nn.Linear(hiddenFeatures, inFeatures);
        TinyVitInit.Linear(fc1);
        TinyVitInit.Linear(fc2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(nn.functional.gelu(fc1.forward(norm.forward(x)))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// TinyViT <c>Attention</c> over a window of R×R tokens [B, N = R², C]: its own LayerNorm <c>norm</c>, <c>qkv</c>
/// laid out per head as [q | k | v] (split key_dim, key_dim, d after viewing as [B, N, heads, −1] — not the
/// [3, heads, d] layout of timm), <c>softmax(q·kᵀ·scale + bias)·v</c>, <c>proj</c>. The bias is the learned
/// <c>attention_biases</c> [heads, #offsets] gathered by the non-persistent <c>attention_bias_idxs</c> [N, N]: one
/// entry per distinct (|Δrow|, |Δcol|) offset, numbered in order of first appearance.
/// </summary>
/// <remarks>
/// The reference caches the gathered bias as <c>self.ab</c> when <c>.eval()</c> is called and uses that copy in eval
/// mode, so weights loaded after <c>.eval()</c> (as <c>build_sam_vit_t</c> does) only take effect at the next
/// <c>.eval()</c>. This port gathers from the live parameter on every forward: the output equals the reference's after
/// an <c>.eval()</c> that follows the weight load (the fixtures' order, and MobileSAM's documented usage).
/// </remarks>
public sealed class TinyVitAttention : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Linear qkv;
    private readonly Linear proj;
    private readonly Parameter attention_biases;
    private readonly long _heads;
    private readonly long _keyDim;
    private readonly long _d;
    private readonly long _n;
    private readonly double _scale;

    public TinyVitAttention(string name, long dim, long keyDim, long numHeads, double attnRatio, (int H, int W) resolution) : base(name)
    {
        _heads = numHeads;
        _keyDim = keyDim;
        _scale = Math.Pow(keyDim, -0.5);
        _d = (long)(attnRatio * keyDim);
        long dh = _d * numHeads;
        norm = nn.LayerNorm(dim);
        qkv = nn.Linear(dim, dh + 2 * keyDim * numHeads);
        proj = nn.Linear(dh, dim);
        TinyVitInit.Linear(qkv);
        TinyVitInit.Linear(proj);
        var (idxs, offsets) = AttentionBiasIndexes(resolution.H, resolution.W);
        _n = (long)resolution.H * resolution.W;
        attention_biases = new Parameter(zeros(numHeads, offsets));
        RegisterComponents();
        // Not in the state dict (persistent=False in the reference), but moved with the module like any buffer. Not a
        // Tensor field: RegisterComponents would register a field as a persistent buffer.
        register_buffer("attention_bias_idxs", tensor(idxs).view(_n, _n), persistent: false);
    }

    /// <summary>
    /// The reference's offset table for an H×W window: for every ordered pair of points (row-major), the index of
    /// (|Δrow|, |Δcol|) in the order each offset first appears. Returns the N·N indexes and the number of offsets.
    /// </summary>
    public static (long[] Indexes, int Offsets) AttentionBiasIndexes(int h, int w)
    {
        int n = h * w;
        var seen = new Dictionary<(int, int), int>();
        var idxs = new long[(long)n * n];
        for (int p1 = 0; p1 < n; p1++)
            for (int p2 = 0; p2 < n; p2++)
            {
                var off = (Math.Abs(p1 / w - p2 / w), Math.Abs(p1 % w - p2 % w));
                if (!seen.TryGetValue(off, out int id)) seen[off] = id = seen.Count;
                idxs[(long)p1 * n + p2] = id;
            }
        return (idxs, seen.Count);
    }

    /// <summary><c>attention_biases[:, attention_bias_idxs]</c>: [heads, N, N].</summary>
    public Tensor AttentionBias()
    {
        using var scope = NewDisposeScope();
        return attention_biases.index_select(1, IndexOn(attention_biases.device)).view(_heads, _n, _n).MoveToOuterDisposeScope();
    }

    // TorchSharp 0.107's Module.to(device) moves only persistent buffers (named_buffers skips non-persistent ones), so
    // the index table is copied to the parameter's device here, once per device. A tuple field: RegisterComponents
    // registers Tensor-typed fields as (persistent) buffers.
    private (Device? Device, Tensor? Index) _indexOnDevice;

    private Tensor IndexOn(Device device)
    {
        static bool Same(Device a, Device b) => a.type == b.type && a.index == b.index;
        var idx = get_buffer("attention_bias_idxs")!;
        if (Same(idx.device, device)) return idx.flatten();
        if (_indexOnDevice is { Index: { } cached, Device: { } d } && Same(d, device)) return cached;
        _indexOnDevice.Index?.Dispose();
        var moved = idx.flatten().to(device);
        moved.DetachFromDisposeScope();
        _indexOnDevice = (device, moved);
        return moved;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _indexOnDevice.Index?.Dispose();
            _indexOnDevice = default;
        }
        base.Dispose(disposing);
    }

    public override Tensor forward(Tensor x)
    {
        long b = x.shape[0], n = x.shape[1];
        if (n != _n) throw new ArgumentException($"Attention {name}: built for windows of {_n} tokens, got {n}.");
        using var scope = NewDisposeScope();
        var t = qkv.forward(norm.forward(x)).view(b, n, _heads, -1);
        var parts = t.split([_keyDim, _keyDim, _d], 3);
        var q = parts[0].permute(0, 2, 1, 3);
        var k = parts[1].permute(0, 2, 1, 3);
        var v = parts[2].permute(0, 2, 1, 3);
        var attn = q.matmul(k.transpose(-2, -1)).mul(_scale).add(AttentionBias());
        var y = attn.softmax(-1).matmul(v).transpose(1, 2).reshape(b, n, _d * _heads);
        return proj.forward(y).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// <c>TinyViTBlock</c> on tokens [B, H·W, C] of its stage's fixed H×W grid: x + window attention (the grid
/// zero-padded at bottom/right to window multiples, padded tokens attended to as the reference does, then cropped),
/// then the depthwise <c>local_conv</c> (Conv2d_BN, no activation) on the map, then x + MLP.
/// </summary>
public sealed class TinyVitBlock : nn.Module<Tensor, Tensor>
{
    private readonly TinyVitAttention attn;
    private readonly TinyVitMlp mlp;
    private readonly TinyVitConv2dBN local_conv;
    private readonly (int H, int W) _resolution;
    private readonly int _window;

    public TinyVitBlock(string name, long dim, (int H, int W) inputResolution, long numHeads, int windowSize, double mlpRatio,
                        int localConvSize) : base(name)
    {
        if (windowSize <= 0) throw new ArgumentException("window_size must be greater than 0.");
        if (dim % numHeads != 0) throw new ArgumentException($"dim {dim} must be divisible by num_heads {numHeads}.");
        _resolution = inputResolution;
        _window = windowSize;
        attn = new TinyVitAttention("attn", dim, dim / numHeads, numHeads, 1.0, (windowSize, windowSize));
        mlp = new TinyVitMlp("mlp", dim, (long)(dim * mlpRatio));
        local_conv = new TinyVitConv2dBN("local_conv", dim, dim, localConvSize, 1, localConvSize / 2, groups: dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var (h, w) = _resolution;
        long b = x.shape[0], l = x.shape[1], c = x.shape[2];
        if (l != (long)h * w) throw new ArgumentException($"TinyViTBlock {name}: input feature has wrong size ({l} tokens, expected {h}×{w}).");
        int ws = _window;
        using var scope = NewDisposeScope();
        Tensor y;
        if (h == ws && w == ws) y = attn.forward(x);
        else
        {
            y = x.reshape(b, h, w, c);
            int padB = (ws - h % ws) % ws, padR = (ws - w % ws) % ws;
            if (padB > 0 || padR > 0) y = nn.functional.pad(y, [0, 0, 0, padR, 0, padB]);
            int pH = h + padB, pW = w + padR, nH = pH / ws, nW = pW / ws;
            y = y.view(b, nH, ws, nW, ws, c).transpose(2, 3).reshape(b * nH * nW, (long)ws * ws, c);
            y = attn.forward(y);
            y = y.view(b, nH, nW, ws, ws, c).transpose(2, 3).reshape(b, pH, pW, c);
            if (padB > 0 || padR > 0) y = y.narrow(1, 0, h).narrow(2, 0, w).contiguous();
            y = y.view(b, l, c);
        }
        y = x.add(y);
        y = local_conv.forward(y.transpose(1, 2).reshape(b, c, h, w)).view(b, c, l).transpose(1, 2);
        return y.add(mlp.forward(y)).MoveToOuterDisposeScope();
    }
}

/// <summary><c>BasicLayer</c> (stages 1–3): TinyViT <c>blocks</c>, then the optional <c>downsample</c>.</summary>
public sealed class TinyVitBasicLayer : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<TinyVitBlock> blocks;
    private readonly TinyVitPatchMerging? downsample;

    public TinyVitBasicLayer(string name, long dim, (int H, int W) inputResolution, int depth, long numHeads, int windowSize,
                             double mlpRatio, int localConvSize, long? outDim) : base(name)
    {
        blocks = nn.ModuleList(Enumerable.Range(0, depth)
            .Select(i => new TinyVitBlock($"{i}", dim, inputResolution, numHeads, windowSize, mlpRatio, localConvSize)).ToArray());
        downsample = outDim is { } o ? new TinyVitPatchMerging("downsample", inputResolution, dim, o) : null;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var b in blocks) x = b.forward(x);
        if (downsample is not null) x = downsample.forward(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The reference's initialisation (TinyViT._init_weights): Linear weights timm trunc_normal_(std 0.02), biases 0.
/// timm truncates at ±2 in absolute value, i.e. ±100 σ, so a plain N(0, 0.02²) draw is the same distribution.
/// (TorchSharp 0.107's nn.init.trunc_normal_ is not used: it swaps mean and std and fills the tensor with the
/// constant std.)
/// </summary>
internal static class TinyVitInit
{
    public static void Linear(Linear m)
    {
        using var _ = no_grad();
        m.weight!.normal_(0.0, 0.02).clamp_(-2.0, 2.0);
        m.bias?.zero_();
    }
}
