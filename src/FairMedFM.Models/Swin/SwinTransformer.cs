using TorchSharp;
using TorchSharp.Modules;
using FairMedFM.Models.Hf;
using static TorchSharp.torch;

namespace FairMedFM.Models.Swin;

/// <summary>
/// The arguments of torchvision 0.14.1 <c>SwinTransformer(patch_size, embed_dim, depths, num_heads, window_size,
/// mlp_ratio, num_classes)</c> (Swin v1: PatchMerging, no logit scale); dropout and stochastic depth are inference no-ops.
/// </summary>
public sealed record SwinConfig
{
    public int PatchSize { get; init; } = 4;
    public int InChans { get; init; } = 3;
    public int EmbedDim { get; init; } = 96;
    public int[] Depths { get; init; } = [2, 2, 6, 2];
    public int[] NumHeads { get; init; } = [3, 6, 12, 24];

    /// <summary>[Wh, Ww].</summary>
    public int[] WindowSize { get; init; } = [7, 7];

    public double MlpRatio { get; init; } = 4.0;

    /// <summary>0: no head (HF <c>SwinModel</c>, MedCLIP's vision backbone).</summary>
    public int NumClasses { get; init; } = 1000;

    /// <summary>LayerNorm eps of torchvision (partial(nn.LayerNorm, eps=1e-5)) and HF Swin (layer_norm_eps 1e-5).</summary>
    public double LayerNormEps { get; init; } = 1e-5;

    /// <summary>Channels after the last stage: embed_dim · 2^(stages − 1).</summary>
    public int NumFeatures => EmbedDim << (Depths.Length - 1);

    /// <summary>torchvision <c>swin_t</c> / HF microsoft/swin-tiny-patch4-window7-224 without a head.</summary>
    public static SwinConfig SwinT { get; } = new() { NumClasses = 0 };
}

/// <summary>torchvision <c>ops.misc.Permute</c> (no parameters).</summary>
public sealed class SwinPermute : nn.Module<Tensor, Tensor>
{
    private readonly long[] _dims;
    public SwinPermute(string name, params long[] dims) : base(name) => _dims = dims;
    public override Tensor forward(Tensor x) => x.permute(_dims);
}

/// <summary>
/// torchvision <c>ShiftedWindowAttention</c> (v1): fused qkv, relative position bias table indexed by the (persistent)
/// <c>relative_position_index</c> buffer, shifted windows with torchvision's −100 mask, right/bottom zero padding to
/// window multiples; the shift is switched off along an axis whose padded size is no larger than the window.
/// </summary>
public sealed class ShiftedWindowAttention : nn.Module<Tensor, Tensor>
{
    // Declared as a plain module so that LoRA (LoraLinear) can replace it: see ModuleSurgery.
    private nn.Module<Tensor, Tensor> qkv;
    private readonly Linear proj;
    private readonly Parameter relative_position_bias_table;
    private readonly Tensor relative_position_index;
    private readonly int[] _window;
    private readonly int[] _shift;
    private readonly long _heads;

    public ShiftedWindowAttention(string name, long dim, int[] windowSize, int[] shiftSize, long numHeads) : base(name)
    {
        if (dim % numHeads != 0) throw new ArgumentException($"dim {dim} must be divisible by num_heads {numHeads}.");
        _window = windowSize;
        _shift = shiftSize;
        _heads = numHeads;
        qkv = nn.Linear(dim, dim * 3);
        proj = nn.Linear(dim, dim);
        relative_position_bias_table = new Parameter(zeros((2 * windowSize[0] - 1) * (2 * windowSize[1] - 1), numHeads));
        relative_position_index = RelativePositionIndex(windowSize[0], windowSize[1]);
        RegisterComponents();
    }

    /// <summary>torchvision's define_relative_position_index (same formula as HF Swin): [Wh·Ww·Wh·Ww] int64.</summary>
    public static Tensor RelativePositionIndex(int wh, int ww)
    {
        int n = wh * ww;
        var idx = new long[n * n];
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++)
            {
                int dh = a / ww - b / ww + wh - 1, dw = a % ww - b % ww + ww - 1;
                idx[a * n + b] = (long)dh * (2 * ww - 1) + dw;
            }
        return tensor(idx);
    }

    /// <summary>Python slice bounds as torchvision writes them (negative from the end, −0 = 0, null = end).</summary>
    private static (int, int) PySlice(int start, int? end, int n)
    {
        static int Fix(int i, int n) => Math.Clamp(i < 0 ? i + n : i, 0, n);
        return (Fix(start, n), end is { } e ? Fix(e, n) : n);
    }

    /// <summary>[nW, L, L] mask: 0 within a region, −100 across regions (torchvision shifted_window_attention).</summary>
    private Tensor AttentionMask(int pH, int pW, int s0, int s1, Device device)
    {
        int wh = _window[0], ww = _window[1];
        var labels = new float[pH * pW];
        var hs = new[] { PySlice(0, -wh, pH), PySlice(-wh, -s0, pH), PySlice(-s0, null, pH) };
        var ws = new[] { PySlice(0, -ww, pW), PySlice(-ww, -s1, pW), PySlice(-s1, null, pW) };
        int count = 0;
        foreach (var (h0, h1) in hs)
            foreach (var (w0, w1) in ws)
            {
                for (int i = h0; i < h1; i++)
                    for (int j = w0; j < w1; j++)
                        labels[i * pW + j] = count;
                count++;
            }
        using var scope = NewDisposeScope();
        int nW = (pH / wh) * (pW / ww);
        var m = tensor(labels).view(pH / wh, wh, pW / ww, ww).permute(0, 2, 1, 3).reshape(nW, wh * ww);
        var d = m.unsqueeze(1) - m.unsqueeze(2);
        return zeros_like(d).masked_fill(d.ne(0), -100f).to(device).MoveToOuterDisposeScope();
    }

    /// <summary>[B, H, W, C] → [B, H, W, C].</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        long b = input.shape[0], h = input.shape[1], w = input.shape[2], c = input.shape[3];
        int wh = _window[0], ww = _window[1];
        long padR = (ww - w % ww) % ww, padB = (wh - h % wh) % wh;
        var x = nn.functional.pad(input, [0, 0, 0, padR, 0, padB]);
        int pH = (int)x.shape[1], pW = (int)x.shape[2];
        int s0 = wh >= pH ? 0 : _shift[0], s1 = ww >= pW ? 0 : _shift[1];
        bool shifted = s0 + s1 > 0;
        if (shifted) x = x.roll([-s0, -s1], [1, 2]);

        long nW = (pH / wh) * (pW / ww), l = wh * ww;
        x = x.view(b, pH / wh, wh, pW / ww, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b * nW, l, c);
        var t = qkv.forward(x).reshape(b * nW, l, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4);
        var q = t[0].mul(Math.Pow(c / _heads, -0.5));
        var attn = q.matmul(t[1].transpose(-2, -1));
        var bias = relative_position_bias_table.index(relative_position_index).view(l, l, -1).permute(2, 0, 1).unsqueeze(0);
        attn = attn.add(bias);
        if (shifted)
        {
            var mask = AttentionMask(pH, pW, s0, s1, attn.device);
            attn = attn.view(b, nW, _heads, l, l).add(mask.unsqueeze(1).unsqueeze(0)).view(-1, _heads, l, l);
        }
        attn = attn.softmax(-1);
        x = attn.matmul(t[2]).transpose(1, 2).reshape(b * nW, l, c);
        x = proj.forward(x);
        x = x.view(b, pH / wh, pW / ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(b, pH, pW, c);
        if (shifted) x = x.roll([s0, s1], [1, 2]);
        return x.slice(1, 0, h, 1).slice(2, 0, w, 1).contiguous().MoveToOuterDisposeScope();
    }
}

/// <summary>torchvision <c>SwinTransformerBlock</c>: x + attn(norm1(x)), then x + mlp(norm2(x)) (stochastic depth off).</summary>
public sealed class SwinTransformerBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly ShiftedWindowAttention attn;
    private readonly LayerNorm norm2;
    // torchvision MLP(dim, [hidden, dim], activation_layer=nn.GELU): Linear "0", GELU, Dropout(0), Linear "3", Dropout(0).
    private readonly Sequential mlp;

    public SwinTransformerBlock(string name, long dim, long numHeads, int[] windowSize, int[] shiftSize, double mlpRatio, double eps)
        : base(name)
    {
        norm1 = nn.LayerNorm(dim, eps: eps);
        attn = new ShiftedWindowAttention("attn", dim, windowSize, shiftSize, numHeads);
        norm2 = nn.LayerNorm(dim, eps: eps);
        long hidden = (long)(dim * mlpRatio);
        mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Identity(), nn.Linear(hidden, dim), nn.Identity());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        x = x.add(attn.forward(norm1.forward(x)));
        return x.add(mlp.forward(norm2.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// torchvision <c>PatchMerging</c> (v1): pad H, W to even, concatenate x[0::2,0::2], x[1::2,0::2], x[0::2,1::2],
/// x[1::2,1::2] (HF SwinPatchMerging gathers in the same order), LayerNorm(4C), Linear(4C → 2C, no bias).
/// </summary>
public sealed class SwinPatchMerging : nn.Module<Tensor, Tensor>
{
    private readonly Linear reduction;
    private readonly LayerNorm norm;

    public SwinPatchMerging(string name, long dim, double eps) : base(name)
    {
        reduction = nn.Linear(4 * dim, 2 * dim, hasBias: false);
        norm = nn.LayerNorm(4 * dim, eps: eps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long h = x.shape[^3], w = x.shape[^2];
        x = nn.functional.pad(x, [0, 0, 0, w % 2, 0, h % 2]);
        TensorIndex S(long s) => TensorIndex.Slice(s, null, 2);
        var x0 = x[TensorIndex.Ellipsis, S(0), S(0), TensorIndex.Colon];
        var x1 = x[TensorIndex.Ellipsis, S(1), S(0), TensorIndex.Colon];
        var x2 = x[TensorIndex.Ellipsis, S(0), S(1), TensorIndex.Colon];
        var x3 = x[TensorIndex.Ellipsis, S(1), S(1), TensorIndex.Colon];
        x = cat([x0, x1, x2, x3], -1);
        return reduction.forward(norm.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// torchvision 0.14.1 <c>SwinTransformer</c> (v1) with its exact state_dict keys: <c>features.0</c> patch embedding,
/// odd <c>features.2s+1</c> stages of blocks (shift 0 on even blocks, window/2 on odd), even <c>features.2s+2</c>
/// patch merging, <c>norm</c>, <c>head</c> (absent when NumClasses is 0). Works in NHWC like torchvision.
/// </summary>
public sealed class SwinTransformer : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> features;
    private readonly LayerNorm norm;
    private readonly Linear? head;

    public SwinConfig Config { get; }

    public SwinTransformer(string name, SwinConfig config) : base(name)
    {
        Config = config;
        if (config.Depths.Length != config.NumHeads.Length || config.Depths.Length == 0)
            throw new ArgumentException("depths and num_heads must have the same, non-zero length.");
        if (config.WindowSize.Length != 2) throw new ArgumentException("window_size must have 2 entries.");
        features = new ModuleList<nn.Module<Tensor, Tensor>>();
        // torchvision Sequential(Conv2d, Permute([0, 2, 3, 1]), LayerNorm): keys features.0.0.* and features.0.2.*; NCHW → NHWC.
        features.Add(nn.Sequential(nn.Conv2d(config.InChans, config.EmbedDim, config.PatchSize, stride: config.PatchSize),
                                   new SwinPermute("permute", 0, 2, 3, 1), nn.LayerNorm(config.EmbedDim, eps: config.LayerNormEps)));
        long dim = config.EmbedDim;
        for (int s = 0; s < config.Depths.Length; s++)
        {
            var stage = new List<nn.Module<Tensor, Tensor>>();
            for (int i = 0; i < config.Depths[s]; i++)
            {
                int[] shift = i % 2 == 0 ? [0, 0] : [config.WindowSize[0] / 2, config.WindowSize[1] / 2];
                stage.Add(new SwinTransformerBlock($"block{i}", dim, config.NumHeads[s], config.WindowSize, shift,
                                                   config.MlpRatio, config.LayerNormEps));
            }
            features.Add(nn.Sequential(stage.ToArray()));
            if (s < config.Depths.Length - 1)
            {
                features.Add(new SwinPatchMerging($"merge{s}", dim, config.LayerNormEps));
                dim *= 2;
            }
        }
        norm = nn.LayerNorm(dim, eps: config.LayerNormEps);
        head = config.NumClasses > 0 ? nn.Linear(dim, config.NumClasses) : null;
        RegisterComponents();
    }

    public int NumFeatureModules => features.Count;

    /// <summary>The output of <c>features[0..=i]</c> (NHWC), each one after the other.</summary>
    public IReadOnlyList<Tensor> ForwardEach(Tensor x)
    {
        var outs = new List<Tensor>();
        foreach (var f in features)
        {
            x = f.forward(x);
            outs.Add(x);
        }
        return outs;
    }

    /// <summary><c>model.features(x)</c>: [B, H/32, W/32, C] for Swin-T.</summary>
    public Tensor ForwardFeatures(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var f in features) x = f.forward(x);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary><c>model.norm</c> on NHWC features.</summary>
    public Tensor Norm(Tensor nhwc) => norm.forward(nhwc);

    /// <summary>
    /// avgpool(permute(norm(features(x)))).flatten(1) = HF SwinModel's pooler_output: [B, C].
    /// </summary>
    public Tensor ForwardPooled(Tensor x)
    {
        using var scope = NewDisposeScope();
        var n = norm.forward(ForwardFeatures(x)).permute(0, 3, 1, 2);
        return nn.functional.adaptive_avg_pool2d(n, 1).flatten(1).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var p = ForwardPooled(x);
        return (head is null ? p : head.forward(p)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The Hugging Face <c>SwinModel</c> layout of this configuration (keys under <paramref name="hfPrefix"/>) onto this
    /// module's keys (under <paramref name="ourPrefix"/>): embeddings.patch_embeddings.projection → features.0.0,
    /// embeddings.norm → features.0.2, encoder.layers.S.blocks.B.{layernorm_before → norm1, attention.self.query/key/value
    /// → attn.qkv (fused by rows q; k; v, the order torchvision splits), attention.self.relative_position_bias_table/index →
    /// attn.*, attention.output.dense → attn.proj, layernorm_after → norm2, intermediate.dense → mlp.0, output.dense →
    /// mlp.3}, encoder.layers.S.downsample.{reduction, norm} → features.(2S+2).* (same gather order x0..x3, so no
    /// permutation of the 4C axis), layernorm → norm. SwinModel has no head. <paramref name="drop"/> picks keys to ignore.
    /// </summary>
    public static HfLayout HfSwinLayout(SwinConfig c, string hfPrefix = "", string ourPrefix = "", Func<string, bool>? drop = null)
    {
        string H(string k) => hfPrefix + k;
        string O(string k) => ourPrefix + k;
        var rules = new List<HfKeyRule>();
        rules.AddRange(HfKeyRule.Module(H("embeddings.patch_embeddings.projection"), O("features.0.0")));
        rules.AddRange(HfKeyRule.Module(H("embeddings.norm"), O("features.0.2")));
        for (int s = 0; s < c.Depths.Length; s++)
        {
            for (int b = 0; b < c.Depths[s]; b++)
            {
                string hb = $"encoder.layers.{s}.blocks.{b}.", ob = $"features.{2 * s + 1}.{b}.";
                rules.AddRange(HfKeyRule.Module(H(hb + "layernorm_before"), O(ob + "norm1")));
                rules.AddRange(HfKeyRule.FuseQkv(H(hb + "attention.self.query"), H(hb + "attention.self.key"),
                                                 H(hb + "attention.self.value"), O(ob + "attn.qkv")));
                rules.Add(HfKeyRule.Rename(H(hb + "attention.self.relative_position_bias_table"), O(ob + "attn.relative_position_bias_table")));
                rules.Add(HfKeyRule.Rename(H(hb + "attention.self.relative_position_index"), O(ob + "attn.relative_position_index")));
                rules.AddRange(HfKeyRule.Module(H(hb + "attention.output.dense"), O(ob + "attn.proj")));
                rules.AddRange(HfKeyRule.Module(H(hb + "layernorm_after"), O(ob + "norm2")));
                rules.AddRange(HfKeyRule.Module(H(hb + "intermediate.dense"), O(ob + "mlp.0")));
                rules.AddRange(HfKeyRule.Module(H(hb + "output.dense"), O(ob + "mlp.3")));
            }
            if (s < c.Depths.Length - 1)
            {
                rules.Add(HfKeyRule.Rename(H($"encoder.layers.{s}.downsample.reduction.weight"), O($"features.{2 * s + 2}.reduction.weight")));
                rules.AddRange(HfKeyRule.Module(H($"encoder.layers.{s}.downsample.norm"), O($"features.{2 * s + 2}.norm")));
            }
        }
        rules.AddRange(HfKeyRule.Module(H("layernorm"), O("norm")));
        return new HfLayout("HF SwinModel", rules, drop ?? (_ => false));
    }
}
