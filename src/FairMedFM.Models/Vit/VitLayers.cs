using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Vit;

/// <summary>
/// Building blocks shared by the timm and DINOv2 ViTs. Field names are the checkpoint key names; every module calls
/// RegisterComponents() so its state_dict() has exactly the reference keys (optional parts are null fields and so
/// absent, like timm's nn.Identity).
/// </summary>
public static class VitOps
{
    /// <summary>LayerNorm eps of timm's ViT, DINOv2 and SAM (partial(nn.LayerNorm, eps=1e-6)).</summary>
    public const double LayerNormEps = 1e-6;

    /// <summary>
    /// softmax(q·kᵀ·scale)·v over the last two axes. q: [..., Lq, d], k/v: [..., Lk, d]. The explicit path (default)
    /// scales q before the product, as timm and DINOv2 do under torch 1.13 (the fixtures' path); <paramref name="fused"/>
    /// uses libtorch's scaled_dot_product_attention instead — mathematically identical, different float rounding.
    /// </summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, double scale, bool fused = false)
    {
        if (fused)
            return nn.functional.scaled_dot_product_attention(q, k, v);
        using var scope = NewDisposeScope();
        var attn = q.mul(scale).matmul(k.transpose(-2, -1));
        return attn.softmax(-1).matmul(v).MoveToOuterDisposeScope();
    }

    /// <summary>Sets <see cref="IAttentionKernel.UseFusedAttention"/> on every attention module of <paramref name="model"/>.</summary>
    public static void SetFusedAttention(nn.Module model, bool fused)
    {
        foreach (var (_, m) in model.named_modules())
            if (m is IAttentionKernel a) a.UseFusedAttention = fused;
    }

    internal static LayerNorm Norm(long dim, double eps = LayerNormEps) => nn.LayerNorm(dim, eps: eps);

    /// <summary>timm act_layer names this port supports: "gelu" (exact, erf), "gelu_tanh" (SigLIP), "quick_gelu" (OpenAI CLIP).</summary>
    internal static void CheckActivation(string act)
    {
        if (act is not ("gelu" or "gelu_tanh" or "quick_gelu"))
            throw new NotSupportedException($"activation '{act}' is not supported (gelu, gelu_tanh, quick_gelu).");
    }

    internal static Tensor Activate(Tensor x, string act) => act switch
    {
        "gelu_tanh" => nn.functional.gelu(x, GELU.Approximate.tanh),
        "quick_gelu" => x.mul(x.mul(1.702).sigmoid()),
        _ => nn.functional.gelu(x),
    };

    internal static string Shape(Tensor t) => "[" + string.Join(",", t.shape) + "]";
}

/// <summary>An attention module that can run on libtorch's fused scaled_dot_product_attention.</summary>
public interface IAttentionKernel
{
    /// <summary>False (default): the references' explicit softmax(q·kᵀ·scale)·v. True: fused SDPA (~1e-7 apart).</summary>
    bool UseFusedAttention { get; set; }
}

/// <summary>
/// timm/DINOv2 <c>Mlp</c>: fc1 → activation → fc2 (dropout 0, no norm). The activation is exact (erf) GELU unless
/// timm's act_layer says gelu_tanh (SigLIP) or quick_gelu (OpenAI CLIP).
/// </summary>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;
    private readonly string _act;

    public Mlp(string name, long inFeatures, long hiddenFeatures, bool bias = true, string activation = "gelu") : base(name)
    {
        VitOps.CheckActivation(activation);
        _act = activation;
        fc1 = nn.Linear(inFeatures, hiddenFeatures, hasBias: bias);
        fc2 = nn.Linear(hiddenFeatures, inFeatures, hasBias: bias);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(VitOps.Activate(fc1.forward(x), _act)).MoveToOuterDisposeScope();
    }
}

/// <summary>LayerScale (timm <c>ls1</c>/<c>ls2</c>, DINOv2 <c>LayerScale</c>): x · gamma.</summary>
public sealed class LayerScale : nn.Module<Tensor, Tensor>
{
    private readonly Parameter gamma;

    public LayerScale(string name, long dim, double initValues) : base(name)
    {
        gamma = new Parameter(full(dim, initValues));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x.mul(gamma);
}

/// <summary>
/// timm 1.0.3 / DINOv2 <c>Attention</c>: one qkv Linear, heads split as (3, heads, head_dim), optional qkv bias, output
/// projection. No q/k norm (qk_norm=False), dropout 0.
/// </summary>
public sealed class VitAttention : nn.Module<Tensor, Tensor>, IAttentionKernel
{
    public bool UseFusedAttention { get; set; }

    // Declared as a plain module so that adapters (LoRA's LoraLinear) can replace it: see ModuleSurgery.
    private nn.Module<Tensor, Tensor> qkv;
    private readonly Linear proj;
    private readonly long _heads;
    private readonly double _scale;

    public VitAttention(string name, long dim, long numHeads, bool qkvBias = true, bool projBias = true) : base(name)
    {
        if (numHeads <= 0 || dim % numHeads != 0)
            throw new ArgumentException($"dim {dim} must be divisible by num_heads {numHeads}.");
        _heads = numHeads;
        _scale = Math.Pow(dim / numHeads, -0.5);
        qkv = nn.Linear(dim, dim * 3, hasBias: qkvBias);
        proj = nn.Linear(dim, dim, hasBias: projBias);
        RegisterComponents();
    }

    /// <summary>[B, N, C] → [B, N, C].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        var t = qkv.forward(x).reshape(b, n, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4);
        var y = VitOps.Attend(t[0], t[1], t[2], _scale, UseFusedAttention);
        y = y.transpose(1, 2).reshape(b, n, c);
        return proj.forward(y).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Pre-norm transformer block of timm (<c>Block</c>) and DINOv2 (<c>Block</c>/<c>NestedTensorBlock</c> on a plain
/// tensor): x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x))). Layer scale only when <c>initValues</c> is set
/// (timm init_values / DINOv2 layerscale); drop-path is identity at inference.
/// </summary>
public sealed class VitBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly VitAttention attn;
    private readonly LayerScale? ls1;
    private readonly LayerNorm norm2;
    private readonly Mlp mlp;
    private readonly LayerScale? ls2;

    public VitBlock(string name, long dim, long numHeads, double mlpRatio = 4.0, bool qkvBias = true, double? initValues = null,
                    double eps = VitOps.LayerNormEps, string activation = "gelu", long? mlpHidden = null)
        : base(name)
    {
        norm1 = VitOps.Norm(dim, eps);
        attn = new VitAttention("attn", dim, numHeads, qkvBias);
        ls1 = initValues is { } iv1 ? new LayerScale("ls1", dim, iv1) : null;
        norm2 = VitOps.Norm(dim, eps);
        mlp = new Mlp("mlp", dim, mlpHidden ?? (long)(dim * mlpRatio), activation: activation);
        ls2 = initValues is { } iv2 ? new LayerScale("ls2", dim, iv2) : null;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var a = attn.forward(norm1.forward(x));
        if (ls1 is not null) a = ls1.forward(a);
        x = x.add(a);
        var m = mlp.forward(norm2.forward(x));
        if (ls2 is not null) m = ls2.forward(m);
        return x.add(m).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Patch embedding of timm and DINOv2: a stride-p p×p convolution (<c>proj</c>), flattened to tokens [B, N, D]
/// (flatten(2).transpose(1, 2)); no norm.
/// </summary>
public sealed class PatchEmbed : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d proj;

    public int PatchSize { get; }

    public PatchEmbed(string name, int patchSize, long inChans, long embedDim, bool bias = true) : base(name)
    {
        PatchSize = patchSize;
        proj = nn.Conv2d(inChans, embedDim, patchSize, stride: patchSize, bias: bias);
        RegisterComponents();
    }

    /// <summary>The conv output map [B, D, H/p, W/p].</summary>
    public Tensor ForwardMap(Tensor x) => proj.forward(x);

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return proj.forward(x).flatten(2).transpose(1, 2).MoveToOuterDisposeScope();
    }
}
