using FairMedFM.Models.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Sam;

/// <summary>
/// SAM-Med2D's <c>Adapter_Layer</c> (OpenGVLab/SAM-Med2D, segment_anything/modeling/image_encoder.py), with the key names
/// of the published <c>sam-med2d_b.pth</c>: <c>norm</c> (LayerNorm, eps 1e-5), <c>channel.0</c> / <c>channel.2</c>
/// (bias-free Linear dim→dim/4→dim, ReLU between, sigmoid after: a squeeze-excitation gate over the channel means) and
/// <c>spatial.0</c> / <c>spatial.2</c> (bias-free Conv2d 3×3 stride 2 pad 1, ReLU, ConvTranspose2d 4×4 stride 2 pad 1,
/// ReLU). Forward on NHWC x: g = x · gate(mean_hw(x)); y = x + spatial(g); return norm(y).
/// </summary>
public sealed class SamMed2DAdapter : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Sequential channel;
    private readonly Sequential spatial;

    public SamMed2DAdapter(string name, long dim, double mlpRatio = 0.25) : base(name)
    {
        long hidden = (long)(dim * mlpRatio);
        if (hidden <= 0) throw new ArgumentException($"adapter hidden width int({dim}·{mlpRatio}) must be positive.");
        norm = nn.LayerNorm(dim);
        channel = nn.Sequential(
            ("0", nn.Linear(dim, hidden, hasBias: false)),
            ("1", nn.ReLU()),
            ("2", nn.Linear(hidden, dim, hasBias: false)),
            ("3", nn.Sigmoid()));
        spatial = nn.Sequential(
            ("0", nn.Conv2d(dim, dim, 3, stride: 2, padding: 1, bias: false)),
            ("1", nn.ReLU()),
            ("2", nn.ConvTranspose2d(dim, dim, 4, stride: 2, padding: 1, bias: false)),
            ("3", nn.ReLU()));
        RegisterComponents();
    }

    /// <summary>[B, H, W, C] → [B, H, W, C] (H and W even: the strided conv and the transposed conv must round-trip).</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.shape[1] % 2 != 0 || x.shape[2] % 2 != 0)
            throw new ArgumentException($"SAM-Med2D adapter needs an even token grid (stride-2 conv then ×2 transposed conv), got {x.shape[1]}×{x.shape[2]}.");
        using var scope = NewDisposeScope();
        var xc = x.permute(0, 3, 1, 2);
        long b = xc.shape[0], c = xc.shape[1];
        var gate = channel.forward(xc.mean([2, 3])).view(b, c, 1, 1);
        var g = gate.mul(xc);
        var y = xc.add(spatial.forward(g));
        return norm.forward(y.permute(0, 2, 3, 1)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// SAM-Med2D's image-encoder <c>Block</c> with <c>adapter=True</c>: segment-anything's block, but the MLP step is
/// <c>x = x + mlp(norm2(x)) + Adapter(norm2(x))</c>. Keys as segment-anything plus <c>Adapter.*</c>.
/// </summary>
public sealed class SamMed2DBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly SamAttention attn;
    private readonly LayerNorm norm2;
    private readonly SamMlpBlock mlp;
    private readonly SamMed2DAdapter Adapter;

    public int WindowSize { get; }

    public SamMed2DBlock(string name, long dim, long numHeads, double mlpRatio, bool qkvBias, bool useRelPos, int windowSize, (int H, int W) inputSize)
        : base(name)
    {
        WindowSize = windowSize;
        norm1 = nn.LayerNorm(dim, eps: VitOps.LayerNormEps);
        attn = new SamAttention("attn", dim, numHeads, qkvBias, useRelPos, windowSize == 0 ? inputSize : (windowSize, windowSize));
        norm2 = nn.LayerNorm(dim, eps: VitOps.LayerNormEps);
        mlp = new SamMlpBlock("mlp", dim, (long)(dim * mlpRatio));
        Adapter = new SamMed2DAdapter("Adapter", dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = norm1.forward(x);
        if (WindowSize > 0)
        {
            int h = (int)y.shape[1], w = (int)y.shape[2];
            var (windows, padHw) = SamRelPos.WindowPartition(y, WindowSize);
            y = SamRelPos.WindowUnpartition(attn.forward(windows), WindowSize, padHw, (h, w));
        }
        else y = attn.forward(y);
        y = x.add(y);
        var n = norm2.forward(y);
        return y.add(mlp.forward(n)).add(Adapter.forward(n)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// SAM-Med2D's <c>ImageEncoderViT(adapter_train=True)</c>: segment-anything's ViT image encoder (same
/// <c>patch_embed</c>, <c>pos_embed</c>, <c>neck</c> keys) whose blocks carry an <see cref="SamMed2DAdapter"/>.
/// SAM-Med2D runs it at 256 px (16×16 tokens; rel-pos tables of 27 rows in windowed and 31 in global blocks).
/// Layout-checked only: no SAM-Med2D reference output was available to compare with.
/// </summary>
public sealed class SamMed2DImageEncoder : nn.Module<Tensor, Tensor>
{
    private readonly SamPatchEmbed patch_embed;
    private readonly Parameter? pos_embed;
    private readonly ModuleList<SamMed2DBlock> blocks;
    private readonly Sequential neck;

    public SamVitConfig Config { get; }

    public SamMed2DImageEncoder(string name, SamVitConfig config) : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.PatchSize <= 0 || config.ImgSize % config.PatchSize != 0 || config.EmbedDim % config.NumHeads != 0)
            throw new ArgumentException($"img_size {config.ImgSize} must be a multiple of patch_size {config.PatchSize} and embed_dim {config.EmbedDim} of num_heads {config.NumHeads}.");
        foreach (var i in config.GlobalAttnIndexes)
            if (i < 0 || i >= config.Depth) throw new ArgumentException($"global_attn_index {i} outside 0..{config.Depth - 1}.");
        Config = config;
        long d = config.EmbedDim;
        int g = config.GridSize;
        patch_embed = new SamPatchEmbed("patch_embed", config.PatchSize, config.InChans, d);
        pos_embed = config.UseAbsPos ? new Parameter(zeros(1, g, g, d)) : null;
        var globals = config.GlobalAttnIndexes.ToHashSet();
        blocks = nn.ModuleList(Enumerable.Range(0, config.Depth)
            .Select(i => new SamMed2DBlock($"{i}", d, config.NumHeads, config.MlpRatio, config.QkvBias, config.UseRelPos,
                                           globals.Contains(i) ? 0 : config.WindowSize, (g, g)))
            .ToArray());
        neck = nn.Sequential(
            ("0", nn.Conv2d(d, config.OutChans, 1, bias: false)),
            ("1", new LayerNorm2d("1", config.OutChans)),
            ("2", nn.Conv2d(config.OutChans, config.OutChans, 3, padding: 1, bias: false)),
            ("3", new LayerNorm2d("3", config.OutChans)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != Config.InChans || x.shape[2] != Config.ImgSize || x.shape[3] != Config.ImgSize)
            throw new ArgumentException($"SAM-Med2D encoder expects [B, {Config.InChans}, {Config.ImgSize}, {Config.ImgSize}], got [{string.Join(", ", x.shape)}].");
        using var scope = NewDisposeScope();
        var y = patch_embed.forward(x);
        if (pos_embed is not null) y = y.add(pos_embed);
        foreach (var blk in blocks) y = blk.forward(y);
        return neck.forward(y.permute(0, 3, 1, 2)).MoveToOuterDisposeScope();
    }
}
