using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models;

/// <summary>How strided layers are padded.</summary>
public enum PaddingStyle
{
    /// <summary>torchvision: symmetric padding inside each layer (k/2 on both sides).</summary>
    Torchvision,

    /// <summary>
    /// CNTK export: fixed padding total = max(k − s, 0), the larger half at the beginning (top/left).
    /// For even input sizes this selects the same windows as torchvision; it differs for odd sizes, so it is kept
    /// faithful to the ONNX graph rather than folded into symmetric padding.
    /// </summary>
    CntkAsymmetric,
}

/// <summary>ResNet architecture description (torchvision naming).</summary>
public sealed record ResNetConfig(string Block, int[] Layers, int NumClasses = 1000, PaddingStyle Padding = PaddingStyle.Torchvision)
{
    public static ResNetConfig ResNet18 { get; } = new("basic", [2, 2, 2, 2]);
    public static ResNetConfig ResNet34 { get; } = new("basic", [3, 4, 6, 3]);
    public static ResNetConfig ResNet50 { get; } = new("bottleneck", [3, 4, 6, 3]);
    public static ResNetConfig ResNet101 { get; } = new("bottleneck", [3, 4, 23, 3]);

    /// <summary>The CNTK ImageNet ResNet of Microsoft.ML.DnnImageFeaturizer.ResNet18: 3 blocks in the last stage, no classifier.</summary>
    public static ResNetConfig CntkResNet18 { get; } = new("basic", [2, 2, 2, 3], NumClasses: 0, Padding: PaddingStyle.CntkAsymmetric);

    public int Expansion => Block switch
    {
        "basic" => 1,
        "bottleneck" => 4,
        _ => throw new ArgumentException($"Unknown ResNet block '{Block}' (expected 'basic' or 'bottleneck')."),
    };

    public int FeatureDim => 512 * Expansion;

    // Records compare arrays by reference; compare the layer counts by value so equal configs are equal.
    public bool Equals(ResNetConfig? other) =>
        other is not null && Block == other.Block && Layers.AsSpan().SequenceEqual(other.Layers) &&
        NumClasses == other.NumClasses && Padding == other.Padding;

    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(Block);
        foreach (var l in Layers) h.Add(l);
        h.Add(NumClasses);
        h.Add(Padding);
        return h.ToHashCode();
    }
}

/// <summary>Padding helpers shared by the stem and the blocks.</summary>
internal static class ResNetPadding
{
    /// <summary>torch F.pad order [left, right, top, bottom] for a k×k window with stride s in CNTK style.</summary>
    public static long[] Cntk(int kernel, int stride)
    {
        int total = Math.Max(kernel - stride, 0);
        long begin = (total + 1) / 2, end = total / 2;
        return [begin, end, begin, end];
    }

    /// <summary>The same pads in ONNX order [top, left, bottom, right] (used to verify imported graphs).</summary>
    public static long[] CntkOnnx(int kernel, int stride)
    {
        var p = Cntk(kernel, stride);
        return [p[2], p[0], p[3], p[1]];
    }

    public static Tensor Apply(Tensor x, long[]? pad, double value = 0)
        => pad is null ? x : nn.functional.pad(x, pad, PaddingModes.Constant, value);

    public static bool IsSymmetric(long[] p) => p[0] == p[1] && p[2] == p[3] && p[0] == p[2];
}

/// <summary>torchvision BasicBlock: conv3×3 → BN → ReLU → conv3×3 → BN, plus identity or projection shortcut.</summary>
public sealed class BasicBlock : nn.Module<Tensor, Tensor>
{
    public const int Expansion = 1;

    // Field names are the checkpoint keys.
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Sequential? downsample;
    private readonly long[]? _pad1;

    public BasicBlock(string name, long inplanes, long planes, long stride, bool downsample, PaddingStyle style) : base(name)
    {
        bool cntk = style == PaddingStyle.CntkAsymmetric;
        var p1 = ResNetPadding.Cntk(3, (int)stride);
        // Symmetric CNTK pads (stride 1) can live inside the conv; only the strided conv needs an explicit pad.
        _pad1 = cntk && !ResNetPadding.IsSymmetric(p1) ? p1 : null;
        conv1 = nn.Conv2d(inplanes, planes, 3, stride: stride, padding: _pad1 is null ? 1 : 0, bias: false);
        bn1 = nn.BatchNorm2d(planes);
        conv2 = nn.Conv2d(planes, planes, 3, stride: 1, padding: 1, bias: false);
        bn2 = nn.BatchNorm2d(planes);
        if (downsample)
            this.downsample = nn.Sequential(("0", nn.Conv2d(inplanes, planes * Expansion, 1, stride: stride, bias: false)),
                                            ("1", nn.BatchNorm2d(planes * Expansion)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = nn.functional.relu(bn1.forward(conv1.forward(ResNetPadding.Apply(x, _pad1))));
        y = bn2.forward(conv2.forward(y));
        var identity = downsample is null ? x : downsample.forward(x);
        return nn.functional.relu(y.add_(identity)).MoveToOuterDisposeScope();
    }
}

/// <summary>torchvision (v1.5) Bottleneck: 1×1 → 3×3 (strided) → 1×1 ×4, stride on the 3×3 conv.</summary>
public sealed class Bottleneck : nn.Module<Tensor, Tensor>
{
    public const int Expansion = 4;

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly Sequential? downsample;
    private readonly long[]? _pad2;

    public Bottleneck(string name, long inplanes, long planes, long stride, bool downsample, PaddingStyle style) : base(name)
    {
        long width = planes; // groups = 1, base_width = 64
        var p2 = ResNetPadding.Cntk(3, (int)stride);
        _pad2 = style == PaddingStyle.CntkAsymmetric && !ResNetPadding.IsSymmetric(p2) ? p2 : null;
        conv1 = nn.Conv2d(inplanes, width, 1, bias: false);
        bn1 = nn.BatchNorm2d(width);
        conv2 = nn.Conv2d(width, width, 3, stride: stride, padding: _pad2 is null ? 1 : 0, bias: false);
        bn2 = nn.BatchNorm2d(width);
        conv3 = nn.Conv2d(width, planes * Expansion, 1, bias: false);
        bn3 = nn.BatchNorm2d(planes * Expansion);
        if (downsample)
            this.downsample = nn.Sequential(("0", nn.Conv2d(inplanes, planes * Expansion, 1, stride: stride, bias: false)),
                                            ("1", nn.BatchNorm2d(planes * Expansion)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = nn.functional.relu(bn1.forward(conv1.forward(x)));
        y = nn.functional.relu(bn2.forward(conv2.forward(ResNetPadding.Apply(y, _pad2))));
        y = bn3.forward(conv3.forward(y));
        var identity = downsample is null ? x : downsample.forward(x);
        return nn.functional.relu(y.add_(identity)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// torchvision-layout ResNet. Its <c>state_dict()</c> keys are exactly torchvision's (conv1, bn1, layer1..layer4,
/// fc, with BatchNorm num_batches_tracked buffers), so published checkpoints load by name.
/// </summary>
public sealed class ResNet : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;
    private readonly Linear? fc;
    private readonly long[]? _stemPad, _poolPad;

    public ResNetConfig Config { get; }

    /// <summary>Pooled feature width: 512 (basic) or 2048 (bottleneck).</summary>
    public int FeatureDim => Config.FeatureDim;

    /// <summary>sha256 of the weights that were loaded into this module (set by the loaders; null for random init).</summary>
    public string? WeightsHash { get; set; }

    public ResNet(string name, ResNetConfig config) : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Layers is not { Length: 4 } || config.Layers.Any(n => n < 1))
            throw new ArgumentException("ResNetConfig.Layers must hold four positive block counts.", nameof(config));
        if (config.NumClasses < 0) throw new ArgumentException("NumClasses must be >= 0.", nameof(config));
        Config = config;
        int expansion = config.Expansion;
        bool cntk = config.Padding == PaddingStyle.CntkAsymmetric;

        _stemPad = cntk ? ResNetPadding.Cntk(7, 2) : null;
        _poolPad = cntk ? ResNetPadding.Cntk(3, 2) : null;
        conv1 = nn.Conv2d(3, 64, 7, stride: 2, padding: cntk ? 0 : 3, bias: false);
        bn1 = nn.BatchNorm2d(64);

        long inplanes = 64;
        Sequential MakeLayer(long planes, int blocks, long stride)
        {
            var mods = new List<(string, nn.Module<Tensor, Tensor>)>();
            for (int i = 0; i < blocks; i++)
            {
                long s = i == 0 ? stride : 1;
                bool ds = i == 0 && (stride != 1 || inplanes != planes * expansion);
                nn.Module<Tensor, Tensor> block = config.Block == "basic"
                    ? new BasicBlock($"{i}", inplanes, planes, s, ds, config.Padding)
                    : new Bottleneck($"{i}", inplanes, planes, s, ds, config.Padding);
                mods.Add(($"{i}", block));
                inplanes = planes * expansion;
            }
            return nn.Sequential(mods);
        }

        layer1 = MakeLayer(64, config.Layers[0], 1);
        layer2 = MakeLayer(128, config.Layers[1], 2);
        layer3 = MakeLayer(256, config.Layers[2], 2);
        layer4 = MakeLayer(512, config.Layers[3], 2);
        fc = config.NumClasses > 0 ? nn.Linear(512 * expansion, config.NumClasses) : null;
        RegisterComponents();
    }

    private Tensor Stem(Tensor x)
    {
        var y = nn.functional.relu(bn1.forward(conv1.forward(ResNetPadding.Apply(x, _stemPad))));
        if (_poolPad is null) return nn.functional.max_pool2d(y, 3, 2, 1);
        // ONNX MaxPool pads with −inf, not zero.
        return nn.functional.max_pool2d(ResNetPadding.Apply(y, _poolPad, double.NegativeInfinity), 3, 2, 0);
    }

    private static Tensor Pool(Tensor x) => nn.functional.adaptive_avg_pool2d(x, 1).flatten(1);

    /// <summary>Logits [B, NumClasses], or the pooled features when NumClasses == 0.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var f = ForwardFeatures(x);
        return (fc is null ? f : fc.forward(f)).MoveToOuterDisposeScope();
    }

    /// <summary>Globally average-pooled features [B, FeatureDim] (torchvision with fc = Identity).</summary>
    public Tensor ForwardFeatures(Tensor x)
    {
        CheckInput(x);
        using var scope = NewDisposeScope();
        var y = Stem(x);
        y = layer1.forward(y);
        y = layer2.forward(y);
        y = layer3.forward(y);
        y = layer4.forward(y);
        return Pool(y).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Every stage output for parity checks: "stem" (after max-pool), "layer1".."layer4", "pooled" and, with a
    /// classifier, "logits". The caller owns (disposes) the tensors.
    /// </summary>
    public Dictionary<string, Tensor> ForwardIntermediates(Tensor x)
    {
        CheckInput(x);
        using var scope = NewDisposeScope();
        var d = new Dictionary<string, Tensor>();
        var y = d["stem"] = Stem(x);
        y = d["layer1"] = layer1.forward(y);
        y = d["layer2"] = layer2.forward(y);
        y = d["layer3"] = layer3.forward(y);
        y = d["layer4"] = layer4.forward(y);
        var pooled = d["pooled"] = Pool(y);
        if (fc is not null) d["logits"] = fc.forward(pooled);
        foreach (var t in d.Values) t.MoveToOuterDisposeScope();
        return d;
    }

    private static void CheckInput(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != 3)
            throw new ArgumentException($"ResNet expects [B,3,H,W] input, got [{string.Join(",", x.shape)}].");
    }
}
