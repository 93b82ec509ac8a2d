namespace FairMedFM.Models.Sam;

/// <summary>
/// Constructor arguments of MobileSAM's <c>tiny_vit_sam.TinyViT</c> (ChaoningZhang/MobileSAM @ 34bbbfd; TinySAM's
/// <c>tinysam/modeling/tiny_vit_sam.py</c> is the same file byte for byte). Four stages: stage 0 is a ConvLayer of
/// MBConv blocks, stages 1–3 are TinyViT blocks (window attention with learned attention biases + depthwise local
/// conv + MLP); stages 0–2 end in a PatchMerging. The neck maps the last stage to 256 channels.
/// </summary>
/// <param name="ImgSize">Input side in pixels. The reference only runs at 1024 (its <c>forward_features</c>
/// reshapes to a hard-coded 64×64 grid); here any multiple of 16 works and gives an ImgSize/16 grid.</param>
/// <param name="InChans">Input channels (3).</param>
/// <param name="NumClasses">Width of the classification <c>head</c> (1000 in MobileSAM/TinySAM). The head and
/// <c>norm_head</c> are in the state dict but the SAM forward never uses them; 0 means no head (an Identity, no keys).</param>
/// <param name="EmbedDims">Width of each of the four stages.</param>
/// <param name="Depths">Blocks per stage.</param>
/// <param name="NumHeads">Attention heads per stage (stage 0, the conv stage, ignores its entry).</param>
/// <param name="WindowSizes">Attention window per stage (stage 0 ignores its entry).</param>
/// <param name="MlpRatio">MLP hidden width / stage width in the TinyViT blocks.</param>
/// <param name="MbConvExpandRatio">Hidden width / width of the MBConv blocks of stage 0.</param>
/// <param name="LocalConvSize">Kernel of the depthwise conv between attention and MLP.</param>
/// <remarks>
/// Not modelled: <c>drop_rate</c>, <c>drop_path_rate</c> (both 0 in MobileSAM/TinySAM; dropout and stochastic depth
/// only act in training) and <c>layer_lr_decay</c> (per-parameter learning-rate scales for fine-tuning; no effect on
/// the forward pass).
/// </remarks>
public sealed record TinyVitConfig(
    int ImgSize,
    int InChans,
    int NumClasses,
    IReadOnlyList<int> EmbedDims,
    IReadOnlyList<int> Depths,
    IReadOnlyList<int> NumHeads,
    IReadOnlyList<int> WindowSizes,
    double MlpRatio,
    double MbConvExpandRatio,
    int LocalConvSize)
{
    /// <summary>Channels of the neck (hard-coded 256 in the reference: SAM's prompt embedding width).</summary>
    public const int NeckChannels = 256;

    /// <summary>
    /// MobileSAM's image encoder (<c>build_sam_vit_t</c>, TinyViT-5M): 1024 px, embed_dims [64,128,160,320],
    /// depths [2,2,6,2], heads [2,4,5,10], windows [7,7,14,7], mlp_ratio 4, MBConv expand 4, local conv 3,
    /// num_classes 1000. TinySAM's <c>build_sam_vit_t</c> builds the identical encoder (different checkpoint).
    /// </summary>
    public static TinyVitConfig MobileSam { get; } = new(
        ImgSize: 1024, InChans: 3, NumClasses: 1000,
        EmbedDims: [64, 128, 160, 320], Depths: [2, 2, 6, 2], NumHeads: [2, 4, 5, 10], WindowSizes: [7, 7, 14, 7],
        MlpRatio: 4.0, MbConvExpandRatio: 4.0, LocalConvSize: 3);

    /// <summary>TinySAM's encoder: the same architecture as <see cref="MobileSam"/>.</summary>
    public static TinyVitConfig TinySam => MobileSam;

    /// <summary>
    /// The reference's PatchMerging rule: its depthwise conv has stride 1 (not 2) when the output width is 320, 448
    /// or 576 — the last-stage widths of TinyViT-5M/11M/21M — so the last merge keeps the grid.
    /// </summary>
    public static int MergeStride(int outDim) => outDim is 320 or 448 or 576 ? 1 : 2;

    /// <summary>Token grid side of the patch embedding (ImgSize / 4).</summary>
    public int PatchGrid => ImgSize / 4;

    /// <summary>Token grid side entering stage <paramref name="stage"/>: ImgSize/4, /8, /16, /16.</summary>
    public int StageGrid(int stage) => PatchGrid >> (stage == 3 ? 2 : stage);

    /// <summary>Side of the output embedding grid (ImgSize / 16; 64 for 1024 px).</summary>
    public int OutputGrid => StageGrid(3);

    // Records compare lists by reference; compare them by value.
    public bool Equals(TinyVitConfig? other) =>
        other is not null && ImgSize == other.ImgSize && InChans == other.InChans && NumClasses == other.NumClasses &&
        EmbedDims.SequenceEqual(other.EmbedDims) && Depths.SequenceEqual(other.Depths) &&
        NumHeads.SequenceEqual(other.NumHeads) && WindowSizes.SequenceEqual(other.WindowSizes) &&
        MlpRatio == other.MlpRatio && MbConvExpandRatio == other.MbConvExpandRatio && LocalConvSize == other.LocalConvSize;

    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(ImgSize); h.Add(InChans); h.Add(NumClasses); h.Add(MlpRatio); h.Add(MbConvExpandRatio); h.Add(LocalConvSize);
        foreach (var l in new[] { EmbedDims, Depths, NumHeads, WindowSizes })
            foreach (var v in l) h.Add(v);
        return h.ToHashCode();
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting the reference could not run with.</summary>
    public void Validate()
    {
        static void Need(bool ok, string what)
        {
            if (!ok) throw new ArgumentException($"TinyVitConfig: {what}");
        }
        Need(EmbedDims is { Count: 4 } && Depths is { Count: 4 } && NumHeads is { Count: 4 } && WindowSizes is { Count: 4 },
            "embed_dims, depths, num_heads and window_sizes must have 4 entries each (the reference's stage resolutions " +
            "are defined for exactly four stages).");
        Need(ImgSize > 0 && ImgSize % 16 == 0, $"img_size {ImgSize} must be a positive multiple of 16 (the reference needs 1024).");
        Need(InChans > 0 && NumClasses >= 0, "in_chans must be > 0 and num_classes >= 0.");
        Need(MlpRatio > 0 && MbConvExpandRatio > 0, "mlp_ratio and mbconv_expand_ratio must be > 0.");
        Need(LocalConvSize > 0 && LocalConvSize % 2 == 1, $"local_conv_size {LocalConvSize} must be odd and > 0 (padding k/2 keeps the grid).");
        Need(EmbedDims[0] % 2 == 0, $"embed_dims[0] {EmbedDims[0]} must be even (the patch embedding's first conv has embed_dims[0]/2 channels).");
        for (int i = 0; i < 4; i++)
        {
            Need(EmbedDims[i] > 0 && Depths[i] >= 0, $"stage {i}: embed_dim must be > 0 and depth >= 0.");
            if (i == 0) continue;
            Need(NumHeads[i] > 0 && EmbedDims[i] % NumHeads[i] == 0, $"stage {i}: embed_dim {EmbedDims[i]} not divisible by num_heads {NumHeads[i]}.");
            Need(WindowSizes[i] > 0, $"stage {i}: window_size must be > 0.");
        }
        // The stage resolutions are fixed by the constructor (ImgSize/4, /8, /16, /16): the first two merges must
        // halve the grid and the last must keep it, which the reference's stride rule ties to the widths.
        Need(MergeStride(EmbedDims[1]) == 2 && MergeStride(EmbedDims[2]) == 2,
            $"embed_dims[1] and embed_dims[2] ({EmbedDims[1]}, {EmbedDims[2]}) must not be 320, 448 or 576: the reference's " +
            "PatchMerging would not halve the grid there and its stage resolutions would be wrong.");
        Need(MergeStride(EmbedDims[3]) == 1,
            $"embed_dims[3] {EmbedDims[3]} must be 320, 448 or 576: only then does the reference's last PatchMerging keep the " +
            "ImgSize/16 grid its neck expects.");
    }
}
