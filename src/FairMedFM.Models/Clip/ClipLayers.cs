using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Clip;

/// <summary>
/// CLIP's LayerNorm: computes in float32 whatever the input dtype (so an fp16 model stays stable) and returns the
/// input dtype. Keys <c>weight</c>, <c>bias</c>; eps 1e-5 as nn.LayerNorm's default.
/// </summary>
public sealed class ClipLayerNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly long[] _shape;
    private readonly double _eps;

    public ClipLayerNorm(string name, long dim, double eps = 1e-5) : base(name)
    {
        weight = nn.Parameter(ones(dim));
        bias = nn.Parameter(zeros(dim));
        _shape = [dim];
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (x.dtype == ScalarType.Float32 && weight.dtype == ScalarType.Float32)
            return nn.functional.layer_norm(x, _shape, weight, bias, _eps);
        using var scope = NewDisposeScope();
        var y = nn.functional.layer_norm(x.to(float32), _shape, weight.to(float32), bias.to(float32), _eps);
        return y.to(x.dtype).MoveToOuterDisposeScope();
    }
}

/// <summary>CLIP's activation: x · sigmoid(1.702 x).</summary>
public sealed class QuickGELU : nn.Module<Tensor, Tensor>
{
    public QuickGELU(string name = "gelu") : base(name) { }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return x.mul(x.mul(1.702).sigmoid_()).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Multi-head self-attention on sequence-first input [L, N, D] with torch.nn.MultiheadAttention's parameter names
/// (<c>in_proj_weight</c> [3D, D], <c>in_proj_bias</c> [3D], <c>out_proj.weight</c>, <c>out_proj.bias</c>), so
/// openai/CLIP checkpoints load by name. Written here rather than using TorchSharp's MultiheadAttention so the key
/// names and the causal path are under our control; the product is torch's scaled-dot-product attention.
/// </summary>
public sealed class ClipMultiheadAttention : nn.Module<Tensor, Tensor>
{
    private readonly Parameter in_proj_weight;
    private readonly Parameter in_proj_bias;
    private readonly Linear out_proj;
    private readonly int _heads;
    private readonly bool _causal;

    public ClipMultiheadAttention(string name, long dim, int heads, bool causal) : base(name)
    {
        if (heads <= 0 || dim % heads != 0) throw new ArgumentException($"{heads} heads do not divide width {dim}.");
        in_proj_weight = nn.Parameter(empty(3 * dim, dim));
        in_proj_bias = nn.Parameter(zeros(3 * dim));
        out_proj = nn.Linear(dim, dim);
        _heads = heads;
        _causal = causal;
        RegisterComponents();
        using (no_grad())
        {
            nn.init.xavier_uniform_(in_proj_weight);
            out_proj.bias!.zero_();
        }
    }

    public int Heads => _heads;

    /// <summary>[L, N, D] → [L, N, D]. Causal: position i attends to positions ≤ i (CLIP's text mask).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long L = x.shape[0], N = x.shape[1], D = x.shape[2], hd = D / _heads;
        var qkv = nn.functional.linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);
        Tensor Heads(Tensor t) => t.reshape(L, N, _heads, hd).permute(1, 2, 0, 3); // [N, H, L, hd]
        var y = nn.functional.scaled_dot_product_attention(Heads(qkv[0]), Heads(qkv[1]), Heads(qkv[2]), null, 0.0, _causal);
        y = y.permute(2, 0, 1, 3).reshape(L, N, D);
        return out_proj.forward(y).MoveToOuterDisposeScope();
    }
}

/// <summary>openai/CLIP ResidualAttentionBlock: x + attn(ln_1(x)), then x + mlp(ln_2(x)) with mlp = c_fc → QuickGELU → c_proj.</summary>
public sealed class ResidualAttentionBlock : nn.Module<Tensor, Tensor>
{
    private readonly ClipMultiheadAttention attn;
    private readonly ClipLayerNorm ln_1;
    private readonly Sequential mlp;
    private readonly ClipLayerNorm ln_2;

    public ResidualAttentionBlock(string name, int width, int heads, bool causal) : base(name)
    {
        attn = new ClipMultiheadAttention("attn", width, heads, causal);
        ln_1 = new ClipLayerNorm("ln_1", width);
        mlp = nn.Sequential(("c_fc", nn.Linear(width, width * 4)), ("gelu", new QuickGELU()), ("c_proj", nn.Linear(width * 4, width)));
        ln_2 = new ClipLayerNorm("ln_2", width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = x + attn.forward(ln_1.forward(x));
        y = y + mlp.forward(ln_2.forward(y));
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary>openai/CLIP Transformer: <c>resblocks.N.*</c>, sequence-first [L, N, D].</summary>
public sealed class ClipTransformer : nn.Module<Tensor, Tensor>
{
    private readonly Sequential resblocks;

    public int Width { get; }
    public int Layers { get; }
    public int Heads { get; }

    public ClipTransformer(string name, int width, int layers, int heads, bool causal) : base(name)
    {
        Width = width;
        Layers = layers;
        Heads = heads;
        resblocks = nn.Sequential(Enumerable.Range(0, layers)
            .Select(i => ($"{i}", (nn.Module<Tensor, Tensor>)new ResidualAttentionBlock($"{i}", width, heads, causal))).ToList());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Forward(x, null, "");

    /// <summary>
    /// Runs the blocks; with <paramref name="taps"/>, stores each block's output as "{prefix}block{i}_out_LND"
    /// (detached from dispose scopes: the caller owns them).
    /// </summary>
    public Tensor Forward(Tensor x, IDictionary<string, Tensor>? taps, string prefix)
    {
        using var scope = NewDisposeScope();
        int i = 0;
        foreach (var block in resblocks.children().Cast<nn.Module<Tensor, Tensor>>())
        {
            x = block.forward(x);
            ClipVisionTransformer.Tap(taps, $"{prefix}block{i}_out_LND", x);
            i++;
        }
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>openai/CLIP's initialize_parameters for the transformer blocks.</summary>
    internal void InitializeLikeClip()
    {
        double projStd = Math.Pow(Width, -0.5) * Math.Pow(2 * Layers, -0.5);
        double attnStd = Math.Pow(Width, -0.5);
        double fcStd = Math.Pow(2 * Width, -0.5);
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith("attn.in_proj_weight")) nn.init.normal_(p, 0, attnStd);
            else if (name.EndsWith("attn.out_proj.weight")) nn.init.normal_(p, 0, projStd);
            else if (name.EndsWith("mlp.c_fc.weight")) nn.init.normal_(p, 0, fcStd);
            else if (name.EndsWith("mlp.c_proj.weight")) nn.init.normal_(p, 0, projStd);
        }
    }
}
