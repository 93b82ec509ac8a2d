using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Sam;

/// <summary>
/// The TinyViT image encoder of MobileSAM and TinySAM (<c>mobile_sam/modeling/tiny_vit_sam.py</c> @ 34bbbfd;
/// TinySAM ships the same file). Input [B, 3, S, S] (S = <see cref="TinyVitConfig.ImgSize"/>, 1024 for SAM) →
/// image embeddings [B, 256, S/16, S/16]. State-dict keys are the reference's, relative to the encoder:
/// <c>patch_embed.seq.{0,2}.{c,bn}.*</c>, <c>layers.0.blocks.N.conv{1,2,3}.*</c> (MBConv),
/// <c>layers.K.blocks.N.{attn.{norm,qkv,proj,attention_biases},mlp.{norm,fc1,fc2},local_conv}.*</c>,
/// <c>layers.K.downsample.conv{1,2,3}.*</c> (K = 0..2), <c>norm_head.*</c>, <c>head.*</c> (unused by the forward,
/// kept so that checkpoints load strictly), <c>neck.{0,1,2,3}.*</c>. In a full MobileSAM/TinySAM checkpoint they sit
/// under <see cref="SamCheckpointPrefix"/>; see <see cref="LoadFromSamCheckpoint"/>.
/// </summary>
/// <remarks>
/// Call <c>eval()</c> before inference: the BatchNorms then use their running statistics (the reference's and the
/// fixtures' mode). Attention biases are gathered from the live parameter on every forward, which equals the
/// reference's eval-mode cache <c>self.ab</c> whenever that was taken after the weights were set (see
/// <see cref="TinyVitAttention"/>).
/// </remarks>
public sealed class TinyViT : nn.Module<Tensor, Tensor>
{
    private readonly TinyVitPatchEmbed patch_embed;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> layers;
    private readonly LayerNorm norm_head;
    private readonly Linear? head;
    private readonly Sequential neck;

    /// <summary>Key prefix of the image encoder inside a full MobileSAM / TinySAM checkpoint.</summary>
    public const string SamCheckpointPrefix = "image_encoder.";

    public TinyVitConfig Config { get; }

    public TinyViT(TinyVitConfig config) : this("image_encoder", config) { }

    public TinyViT(string name, TinyVitConfig config) : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        var dims = config.EmbedDims;
        patch_embed = new TinyVitPatchEmbed("patch_embed", config.InChans, dims[0]);
        var stages = new nn.Module<Tensor, Tensor>[4];
        for (int i = 0; i < 4; i++)
        {
            int g = config.StageGrid(i);
            long? outDim = i < 3 ? dims[i + 1] : null;
            stages[i] = i == 0
                ? new TinyVitConvLayer("0", dims[0], (g, g), config.Depths[0], outDim, config.MbConvExpandRatio)
                : new TinyVitBasicLayer($"{i}", dims[i], (g, g), config.Depths[i], config.NumHeads[i], config.WindowSizes[i],
                                        config.MlpRatio, config.LocalConvSize, outDim);
        }
        layers = nn.ModuleList(stages);
        norm_head = nn.LayerNorm(dims[3]);
        head = config.NumClasses > 0 ? nn.Linear(dims[3], config.NumClasses) : null;
        if (head is not null) TinyVitInit.Linear(head);
        int outC = TinyVitConfig.NeckChannels;
        neck = nn.Sequential(
            ("0", nn.Conv2d(dims[3], outC, 1, bias: false)),
            ("1", new Vit.LayerNorm2d("1", outC)),
            ("2", nn.Conv2d(outC, outC, 3, padding: 1, bias: false)),
            ("3", new Vit.LayerNorm2d("3", outC)));
        RegisterComponents();
    }

    /// <summary>Number of stages (4).</summary>
    public int LayerCount => layers.Count;

    /// <summary><c>patch_embed(x)</c>: [B, embed_dims[0], S/4, S/4].</summary>
    public Tensor EmbedPatches(Tensor x)
    {
        CheckInput(x);
        return patch_embed.forward(x);
    }

    /// <summary>
    /// <c>layers[index](x)</c> alone. Stage 0 takes the NCHW patch map; every stage returns tokens [B, N, C] of the
    /// next stage's grid (after its PatchMerging; the last stage has none): N = (S/8)², (S/16)², (S/16)², (S/16)².
    /// </summary>
    public Tensor ForwardLayer(int index, Tensor x)
    {
        if (index < 0 || index >= layers.Count) throw new ArgumentOutOfRangeException(nameof(index), $"layer {index} outside 0..{layers.Count - 1}.");
        return layers[index].forward(x);
    }

    /// <summary>patch_embed and all stages: the last stage's tokens [B, (S/16)², embed_dims[3]] (before the neck).</summary>
    public Tensor ForwardTokens(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = EmbedPatches(x);
        foreach (var layer in layers) y = layer.forward(y);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>The neck on the last stage's tokens: [B, N, C] viewed as the S/16 grid → [B, 256, S/16, S/16].</summary>
    public Tensor Neck(Tensor tokens)
    {
        int g = Config.OutputGrid;
        if (tokens.dim() != 3 || tokens.shape[1] != (long)g * g || tokens.shape[2] != Config.EmbedDims[3])
            throw new ArgumentException($"TinyViT neck expects tokens [B, {g * g}, {Config.EmbedDims[3]}], got [{string.Join(",", tokens.shape)}].");
        using var scope = NewDisposeScope();
        var map = tokens.reshape(tokens.shape[0], g, g, tokens.shape[2]).permute(0, 3, 1, 2);
        return neck.forward(map).MoveToOuterDisposeScope();
    }

    /// <summary>MobileSAM's <c>image_encoder(x)</c>: the image embeddings [B, 256, S/16, S/16].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return Neck(ForwardTokens(x)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Loads the encoder strictly from a full MobileSAM/TinySAM checkpoint (keys under <see cref="SamCheckpointPrefix"/>,
    /// e.g. <c>mobile_sam.pt</c>) or from a file of the encoder alone (no prefix): .safetensors or PyTorch zip-pickle.
    /// Nothing is copied unless the encoder's keys and shapes match exactly; otherwise <see cref="WeightLoadException"/>
    /// names each missing, unexpected or mis-shaped key. The prompt-encoder / mask-decoder keys of a full checkpoint are
    /// returned in <see cref="WeightLoadReport.Unexpected"/>, not silently dropped.
    /// </summary>
    public WeightLoadReport LoadFromSamCheckpoint(string path)
    {
        var sd = WeightLoader.ReadStateDict(path);
        try
        {
            return LoadFromSamStateDict(sd, path);
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    /// <summary><see cref="LoadFromSamCheckpoint"/> on an in-memory state dict (the caller keeps ownership).</summary>
    public WeightLoadReport LoadFromSamStateDict(IReadOnlyDictionary<string, Tensor> stateDict, string source = "<state dict>")
    {
        bool prefixed = stateDict.Keys.Any(k => k.StartsWith(SamCheckpointPrefix, StringComparison.Ordinal));
        var others = prefixed
            ? stateDict.Keys.Where(k => !k.StartsWith(SamCheckpointPrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList()
            : [];
        var report = WeightLoader.LoadStateDict(this, stateDict, new WeightLoadOptions
        {
            Strict = true,
            KeyMap = k => !prefixed ? k : k.StartsWith(SamCheckpointPrefix, StringComparison.Ordinal) ? k[SamCheckpointPrefix.Length..] : null,
        }, source);
        return report with { Unexpected = others };
    }

    private void CheckInput(Tensor x)
    {
        int s = Config.ImgSize;
        if (x.dim() != 4 || x.shape[1] != Config.InChans || x.shape[2] != s || x.shape[3] != s)
            throw new ArgumentException(
                $"TinyViT expects [B, {Config.InChans}, {s}, {s}] (its stage grids are fixed by img_size {s}), got [{string.Join(",", x.shape)}].");
    }
}
