using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Clip;

/// <summary>An image tower of CLIP: [N, 3, R, R] → [N, OutputDim]; optionally records named intermediates.</summary>
public interface IClipVisionTower
{
    int InputResolution { get; }
    int OutputDim { get; }

    /// <summary>Forward pass; with <paramref name="taps"/>, stores intermediates (names in each tower's docs). The caller owns them.</summary>
    Tensor Forward(Tensor x, IDictionary<string, Tensor>? taps);
}

/// <summary>
/// openai/CLIP VisionTransformer: conv1 (patchify, no bias), class_embedding, positional_embedding, ln_pre,
/// transformer, ln_post on the class token, proj. Taps: conv1_out, ln_pre_out_NLD, block{i}_out_LND, ln_post_cls.
/// </summary>
public sealed class ClipVisionTransformer : nn.Module<Tensor, Tensor>, IClipVisionTower
{
    private readonly Conv2d conv1;
    private readonly Parameter class_embedding;
    private readonly Parameter positional_embedding;
    private readonly ClipLayerNorm ln_pre;
    private readonly ClipTransformer transformer;
    private readonly ClipLayerNorm ln_post;
    private readonly Parameter proj;

    public int InputResolution { get; }
    public int OutputDim { get; }
    public int Width { get; }

    public ClipVisionTransformer(string name, int inputResolution, int patchSize, int width, int layers, int heads, int outputDim) : base(name)
    {
        if (inputResolution % patchSize != 0)
            throw new ArgumentException($"Image resolution {inputResolution} is not a multiple of the patch size {patchSize}.");
        InputResolution = inputResolution;
        OutputDim = outputDim;
        Width = width;
        double scale = Math.Pow(width, -0.5);
        long grid = inputResolution / patchSize;
        conv1 = nn.Conv2d(3, width, patchSize, stride: patchSize, bias: false);
        class_embedding = nn.Parameter(randn(width).mul_(scale));
        positional_embedding = nn.Parameter(randn(grid * grid + 1, width).mul_(scale));
        ln_pre = new ClipLayerNorm("ln_pre", width);
        transformer = new ClipTransformer("transformer", width, layers, heads, causal: false);
        ln_post = new ClipLayerNorm("ln_post", width);
        proj = nn.Parameter(randn(width, outputDim).mul_(scale));
        RegisterComponents();
        transformer.InitializeLikeClip();
    }

    public override Tensor forward(Tensor x) => Forward(x, null);

    public Tensor Forward(Tensor x, IDictionary<string, Tensor>? taps)
    {
        ClipModel.CheckImage(x, InputResolution);
        using var scope = NewDisposeScope();
        var y = conv1.forward(x.to(conv1.weight!.dtype));                          // [N, W, g, g]
        Tap(taps, "conv1_out", y);
        long n = y.shape[0];
        y = y.reshape(n, Width, -1).permute(0, 2, 1);                               // [N, g², W]
        var cls = class_embedding.to(y.dtype).expand(n, 1, Width);
        y = cat([cls, y], 1);                                                         // [N, g²+1, W]
        y = y + positional_embedding.to(y.dtype);
        y = ln_pre.forward(y);
        Tap(taps, "ln_pre_out_NLD", y);
        y = y.permute(1, 0, 2);                                                       // NLD → LND
        y = transformer.Forward(y, taps, "");
        y = y.permute(1, 0, 2);                                                       // LND → NLD
        y = ln_post.forward(y.select(1, 0));
        Tap(taps, "ln_post_cls", y);
        y = y.matmul(proj);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Records an intermediate outside every dispose scope (taps cross several nested scopes); the caller owns it.</summary>
    internal static void Tap(IDictionary<string, Tensor>? taps, string name, Tensor t)
    {
        if (taps is not null) taps[name] = t.alias().DetachFromDisposeScope();
    }
}

/// <summary>
/// openai/CLIP ModifiedResNet Bottleneck: all convolutions stride 1; a stride-s block average-pools (AvgPool2d(s))
/// after the 3×3 conv and in its shortcut, which is named <c>downsample.-1</c> (pool), <c>downsample.0</c> (1×1
/// conv), <c>downsample.1</c> (BatchNorm) as in the checkpoints.
/// </summary>
public sealed class ClipBottleneck : nn.Module<Tensor, Tensor>
{
    public const int Expansion = 4;

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly AvgPool2d? avgpool;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly Sequential? downsample;

    public ClipBottleneck(string name, long inplanes, long planes, long stride) : base(name)
    {
        conv1 = nn.Conv2d(inplanes, planes, 1, bias: false);
        bn1 = nn.BatchNorm2d(planes);
        conv2 = nn.Conv2d(planes, planes, 3, padding: 1, bias: false);
        bn2 = nn.BatchNorm2d(planes);
        avgpool = stride > 1 ? nn.AvgPool2d(stride) : null;
        conv3 = nn.Conv2d(planes, planes * Expansion, 1, bias: false);
        bn3 = nn.BatchNorm2d(planes * Expansion);
        if (stride > 1 || inplanes != planes * Expansion)
            downsample = nn.Sequential(
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, planes * Expansion, 1, stride: 1, bias: false)),
                ("1", nn.BatchNorm2d(planes * Expansion)));
        RegisterComponents();
        using (no_grad()) bn3.weight!.zero_(); // openai/CLIP's initialize_parameters zero-inits bn3.weight
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = nn.functional.relu(bn1.forward(conv1.forward(x)));
        y = nn.functional.relu(bn2.forward(conv2.forward(y)));
        if (avgpool is not null) y = avgpool.forward(y);
        y = bn3.forward(conv3.forward(y));
        var identity = downsample is null ? x : downsample.forward(x);
        return nn.functional.relu(y.add_(identity)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// openai/CLIP AttentionPool2d: the spatial mean is prepended as a query token, positional embedding added, one
/// multi-head attention of that token over all tokens (separate q/k/v projections), then c_proj.
/// </summary>
public sealed class AttentionPool2d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter positional_embedding;
    private readonly Linear k_proj;
    private readonly Linear q_proj;
    private readonly Linear v_proj;
    private readonly Linear c_proj;
    private readonly int _heads;
    private readonly int _spacialDim;

    public AttentionPool2d(string name, int spacialDim, int embedDim, int heads, int outputDim) : base(name)
    {
        if (heads <= 0 || embedDim % heads != 0) throw new ArgumentException($"{heads} heads do not divide width {embedDim}.");
        _heads = heads;
        _spacialDim = spacialDim;
        positional_embedding = nn.Parameter(randn(spacialDim * spacialDim + 1, embedDim).div_(Math.Sqrt(embedDim)));
        k_proj = nn.Linear(embedDim, embedDim);
        q_proj = nn.Linear(embedDim, embedDim);
        v_proj = nn.Linear(embedDim, embedDim);
        c_proj = nn.Linear(embedDim, outputDim);
        RegisterComponents();
        double std = Math.Pow(embedDim, -0.5);
        using var _ = no_grad();
        foreach (var l in new[] { q_proj, k_proj, v_proj, c_proj }) nn.init.normal_(l.weight!, 0, std);
    }

    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 4 || x.shape[2] != _spacialDim || x.shape[3] != _spacialDim)
            throw new ArgumentException(
                $"AttentionPool2d expects [N, C, {_spacialDim}, {_spacialDim}] (its positional embedding has no interpolation), got [{string.Join(",", x.shape)}].");
        using var scope = NewDisposeScope();
        long n = x.shape[0], c = x.shape[1], hd = c / _heads;
        var t = x.flatten(2).permute(2, 0, 1);                                       // [HW, N, C]
        t = cat([t.mean([0], keepdim: true), t], 0);                                  // [HW+1, N, C]
        t = t + positional_embedding.unsqueeze(1).to(t.dtype);
        long l = t.shape[0];
        var q = q_proj.forward(t.narrow(0, 0, 1)).reshape(1, n, _heads, hd).permute(1, 2, 0, 3);
        var k = k_proj.forward(t).reshape(l, n, _heads, hd).permute(1, 2, 0, 3);
        var v = v_proj.forward(t).reshape(l, n, _heads, hd).permute(1, 2, 0, 3);
        var y = nn.functional.scaled_dot_product_attention(q, k, v);                  // [N, H, 1, hd]
        y = y.permute(2, 0, 1, 3).reshape(n, c);
        return c_proj.forward(y).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// openai/CLIP ModifiedResNet: 3-conv stem (conv1 stride 2 to width/2, conv2, conv3 to width, each BN + ReLU) and a
/// 2×2 average pool; four stages of <see cref="ClipBottleneck"/> (widths w, 2w, 4w, 8w; the last three strided by
/// average pooling); <see cref="AttentionPool2d"/> instead of global pooling.
/// Taps: conv1_out, stem_out (after the stem's avgpool), layer1_out … layer4_out, attnpool_out.
/// </summary>
public sealed class ClipModifiedResNet : nn.Module<Tensor, Tensor>, IClipVisionTower
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly AvgPool2d avgpool;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;
    private readonly AttentionPool2d attnpool;

    public int InputResolution { get; }
    public int OutputDim { get; }

    public ClipModifiedResNet(string name, int[] layers, int outputDim, int heads, int inputResolution, int width) : base(name)
    {
        if (layers is not { Length: 4 }) throw new ArgumentException("ModifiedResNet needs four stage depths.");
        InputResolution = inputResolution;
        OutputDim = outputDim;
        conv1 = nn.Conv2d(3, width / 2, 3, stride: 2, padding: 1, bias: false);
        bn1 = nn.BatchNorm2d(width / 2);
        conv2 = nn.Conv2d(width / 2, width / 2, 3, padding: 1, bias: false);
        bn2 = nn.BatchNorm2d(width / 2);
        conv3 = nn.Conv2d(width / 2, width, 3, padding: 1, bias: false);
        bn3 = nn.BatchNorm2d(width);
        avgpool = nn.AvgPool2d(2);

        long inplanes = width;
        Sequential MakeLayer(long planes, int blocks, long stride)
        {
            var mods = new List<(string, nn.Module<Tensor, Tensor>)>();
            for (int i = 0; i < blocks; i++)
            {
                mods.Add(($"{i}", new ClipBottleneck($"{i}", inplanes, planes, i == 0 ? stride : 1)));
                inplanes = planes * ClipBottleneck.Expansion;
            }
            return nn.Sequential(mods);
        }
        layer1 = MakeLayer(width, layers[0], 1);
        layer2 = MakeLayer(width * 2, layers[1], 2);
        layer3 = MakeLayer(width * 4, layers[2], 2);
        layer4 = MakeLayer(width * 8, layers[3], 2);
        attnpool = new AttentionPool2d("attnpool", inputResolution / 32, width * 32, heads, outputDim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Forward(x, null);

    public Tensor Forward(Tensor x, IDictionary<string, Tensor>? taps)
    {
        ClipModel.CheckImage(x, InputResolution);
        using var scope = NewDisposeScope();
        var y = conv1.forward(x.to(conv1.weight!.dtype));
        ClipVisionTransformer.Tap(taps, "conv1_out", y);
        y = nn.functional.relu(bn1.forward(y));
        y = nn.functional.relu(bn2.forward(conv2.forward(y)));
        y = nn.functional.relu(bn3.forward(conv3.forward(y)));
        y = avgpool.forward(y);
        ClipVisionTransformer.Tap(taps, "stem_out", y);
        y = layer1.forward(y);
        ClipVisionTransformer.Tap(taps, "layer1_out", y);
        y = layer2.forward(y);
        ClipVisionTransformer.Tap(taps, "layer2_out", y);
        y = layer3.forward(y);
        ClipVisionTransformer.Tap(taps, "layer3_out", y);
        y = layer4.forward(y);
        ClipVisionTransformer.Tap(taps, "layer4_out", y);
        y = attnpool.forward(y);
        ClipVisionTransformer.Tap(taps, "attnpool_out", y);
        return y.MoveToOuterDisposeScope();
    }
}
