using FairMedFM.Models.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Sam;

/// <summary>
/// segment-anything <c>PositionEmbeddingRandom</c>: random Fourier features of normalised (x, y) coordinates. Its
/// only state, the persistent buffer <c>positional_encoding_gaussian_matrix</c> [2, F], is in every SAM checkpoint.
/// </summary>
public sealed class PositionEmbeddingRandom : nn.Module<Tensor, Tensor>
{
    private readonly Tensor positional_encoding_gaussian_matrix;

    public PositionEmbeddingRandom(string name, int numPosFeats, double scale = 1.0) : base(name)
    {
        if (!(scale > 0)) scale = 1.0;
        positional_encoding_gaussian_matrix = randn(2, numPosFeats).mul_(scale);
        RegisterComponents();
    }

    /// <summary><c>_pe_encoding</c>: coordinates in [0,1] (last axis x, y) → cat(sin, cos) of 2π·(2c − 1)·G, last axis 2F.</summary>
    public Tensor Encode(Tensor coords)
    {
        using var scope = NewDisposeScope();
        var c = coords.mul(2).sub(1).matmul(positional_encoding_gaussian_matrix);
        c = c.mul(2 * Math.PI);
        return cat([c.sin(), c.cos()], -1).MoveToOuterDisposeScope();
    }

    /// <summary><c>forward(size)</c>: the encoding of every cell centre of an h×w grid → [2F, h, w].</summary>
    public Tensor Grid(int h, int w)
    {
        using var scope = NewDisposeScope();
        var dev = positional_encoding_gaussian_matrix.device;
        // The reference takes cumsum of ones (exact integers) minus 0.5, divided by the size.
        var y = arange(1, h + 1, dtype: float32, device: dev).sub(0.5).div(h).view(h, 1).expand(h, w);
        var x = arange(1, w + 1, dtype: float32, device: dev).sub(0.5).div(w).view(1, w).expand(h, w);
        var pe = Encode(stack([x, y], -1));
        return pe.permute(2, 0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>forward_with_coords</c>: pixel coordinates [B, N, 2] (x, y) in an image of <paramref name="imageSize"/> (H, W)
    /// → [B, N, 2F]. The caller's tensor is not changed.
    /// </summary>
    public Tensor EncodeCoords(Tensor coords, (int H, int W) imageSize)
    {
        using var scope = NewDisposeScope();
        var c = coords.to(float32);
        var x = c.select(-1, 0).div(imageSize.W);
        var y = c.select(-1, 1).div(imageSize.H);
        return Encode(stack([x, y], -1)).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor coords) => Encode(coords);
}

/// <summary>
/// segment-anything <c>PromptEncoder</c> (modeling/prompt_encoder.py @ dca509f) with its state-dict names:
/// <c>pe_layer.positional_encoding_gaussian_matrix</c>, <c>point_embeddings.0..3.weight</c> (negative point, positive
/// point, box top-left, box bottom-right), <c>not_a_point_embed.weight</c>, <c>mask_downscaling.{0,1,3,4,6}</c>
/// (conv 2×2/2 → LayerNorm2d → GELU → conv 2×2/2 → LayerNorm2d → GELU → conv 1×1) and <c>no_mask_embed.weight</c>.
/// </summary>
public sealed class PromptEncoder : nn.Module
{
    private readonly PositionEmbeddingRandom pe_layer;
    private readonly ModuleList<Embedding> point_embeddings;
    private readonly Embedding not_a_point_embed;
    private readonly Sequential mask_downscaling;
    private readonly Embedding no_mask_embed;

    public int EmbedDim { get; }
    public (int H, int W) ImageEmbeddingSize { get; }
    public (int H, int W) InputImageSize { get; }

    /// <summary>Size a mask prompt must have: 4 × the embedding grid (the decoder's low-res logit size).</summary>
    public (int H, int W) MaskInputSize => (4 * ImageEmbeddingSize.H, 4 * ImageEmbeddingSize.W);

    public PromptEncoder(string name, int embedDim, (int H, int W) imageEmbeddingSize, (int H, int W) inputImageSize, int maskInChans)
        : base(name)
    {
        if (embedDim <= 0 || embedDim % 2 != 0) throw new ArgumentException($"embed_dim {embedDim} must be positive and even.");
        if (maskInChans < 4 || maskInChans % 4 != 0) throw new ArgumentException($"mask_in_chans {maskInChans} must be a positive multiple of 4.");
        EmbedDim = embedDim;
        ImageEmbeddingSize = imageEmbeddingSize;
        InputImageSize = inputImageSize;
        pe_layer = new PositionEmbeddingRandom("pe_layer", embedDim / 2);
        point_embeddings = nn.ModuleList(Enumerable.Range(0, 4).Select(_ => nn.Embedding(1, embedDim)).ToArray());
        not_a_point_embed = nn.Embedding(1, embedDim);
        mask_downscaling = nn.Sequential(
            ("0", nn.Conv2d(1, maskInChans / 4, 2, stride: 2)),
            ("1", new LayerNorm2d("1", maskInChans / 4)),
            ("2", nn.GELU()),
            ("3", nn.Conv2d(maskInChans / 4, maskInChans, 2, stride: 2)),
            ("4", new LayerNorm2d("4", maskInChans)),
            ("5", nn.GELU()),
            ("6", nn.Conv2d(maskInChans, embedDim, 1)));
        no_mask_embed = nn.Embedding(1, embedDim);
        RegisterComponents();
    }

    /// <summary><c>get_dense_pe()</c>: the positional encoding of the image embedding grid, [1, C, h, w].</summary>
    public Tensor GetDensePe()
    {
        using var scope = NewDisposeScope();
        return pe_layer.Grid(ImageEmbeddingSize.H, ImageEmbeddingSize.W).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>_embed_points</c>: coordinates [B, N, 2] (x, y in the model-input frame) shifted to pixel centres (+0.5);
    /// with <paramref name="pad"/> (no box given) a padding point (0, 0) with label −1 is appended. Label −1 → the
    /// not-a-point embedding alone; 0 → PE + point_embeddings[0]; 1 → PE + point_embeddings[1].
    /// </summary>
    public Tensor EmbedPoints(Tensor points, Tensor labels, bool pad)
    {
        CheckPoints(points, labels);
        using var scope = NewDisposeScope();
        var p = points.to(float32).add(0.5);
        var l = labels.to(int64);
        if (pad)
        {
            p = cat([p, zeros(p.shape[0], 1, 2, dtype: float32, device: p.device)], 1);
            l = cat([l, full(l.shape[0], 1, -1L, dtype: int64, device: l.device)], 1);
        }
        var pe = pe_layer.EncodeCoords(p, InputImageSize);
        var lab = l.unsqueeze(-1);
        // As the reference's masked assignments: zero then add (exact), or add the learned embedding.
        pe = where(lab.eq(-1), zeros_like(pe).add(not_a_point_embed.weight!), pe);
        pe = where(lab.eq(0), pe.add(point_embeddings[0].weight!), pe);
        pe = where(lab.eq(1), pe.add(point_embeddings[1].weight!), pe);
        return pe.MoveToOuterDisposeScope();
    }

    /// <summary><c>_embed_boxes</c>: boxes [B, 4] or [B, 1, 4] (x0, y0, x1, y1) → two corner tokens [B, 2, C].</summary>
    public Tensor EmbedBoxes(Tensor boxes)
    {
        if (boxes.shape[^1] != 4 || boxes.NumberOfElements % 4 != 0)
            throw new ArgumentException($"boxes must be [B, 4] or [B, 1, 4] (x0, y0, x1, y1), got [{string.Join(", ", boxes.shape)}].");
        using var scope = NewDisposeScope();
        var coords = boxes.to(float32).add(0.5).reshape(-1, 2, 2);
        var corner = pe_layer.EncodeCoords(coords, InputImageSize);
        var tl = corner.select(1, 0).add(point_embeddings[2].weight!);
        var br = corner.select(1, 1).add(point_embeddings[3].weight!);
        return stack([tl, br], 1).MoveToOuterDisposeScope();
    }

    /// <summary><c>_embed_masks</c>: mask logits [B, 1, 4h, 4w] → dense embeddings [B, C, h, w].</summary>
    public Tensor EmbedMasks(Tensor masks)
    {
        var (mh, mw) = MaskInputSize;
        if (masks.dim() != 4 || masks.shape[1] != 1 || masks.shape[2] != mh || masks.shape[3] != mw)
            throw new ArgumentException($"mask prompt must be [B, 1, {mh}, {mw}] (low-res logits), got [{string.Join(", ", masks.shape)}].");
        return mask_downscaling.forward(masks.to(float32));
    }

    /// <summary>
    /// <c>forward(points, boxes, masks)</c> → (sparse [B, N, C], dense [B, C, h, w]). Points are padded with a
    /// not-a-point token only when no box is given; without a mask the dense embedding is <c>no_mask_embed</c>
    /// broadcast over the grid. B is taken from points, else boxes, else masks, else 1.
    /// </summary>
    public (Tensor Sparse, Tensor Dense) Encode(Tensor? pointCoords, Tensor? pointLabels, Tensor? boxes, Tensor? masks)
    {
        if ((pointCoords is null) != (pointLabels is null)) throw new ArgumentException("point coordinates and labels must be given together.");
        long bs = pointCoords?.shape[0] ?? boxes?.shape[0] ?? masks?.shape[0] ?? 1;
        using var scope = NewDisposeScope();
        var dev = no_mask_embed.weight!.device;
        var sparse = empty(bs, 0, EmbedDim, dtype: float32, device: dev);
        if (pointCoords is not null)
            sparse = cat([sparse, EmbedPoints(pointCoords, pointLabels!, pad: boxes is null)], 1);
        if (boxes is not null)
        {
            var b = EmbedBoxes(boxes);
            if (b.shape[0] != bs)
                throw new ArgumentException($"{b.shape[0]} boxes for a prompt batch of {bs} (points give the batch size; one box per prompt set).");
            sparse = cat([sparse, b], 1);
        }
        Tensor dense = masks is not null
            ? EmbedMasks(masks)
            : no_mask_embed.weight!.reshape(1, -1, 1, 1).expand(bs, -1, ImageEmbeddingSize.H, ImageEmbeddingSize.W);
        return (sparse.MoveToOuterDisposeScope(), dense.MoveToOuterDisposeScope());
    }

    private static void CheckPoints(Tensor points, Tensor labels)
    {
        if (points.dim() != 3 || points.shape[2] != 2)
            throw new ArgumentException($"point_coords must be [B, N, 2] (x, y), got [{string.Join(", ", points.shape)}].");
        if (labels.dim() != 2 || labels.shape[0] != points.shape[0] || labels.shape[1] != points.shape[1])
            throw new ArgumentException($"point_labels must be [B, N] = [{points.shape[0]}, {points.shape[1]}], got [{string.Join(", ", labels.shape)}].");
        if (labels.NumberOfElements == 0) return;
        using var scope = NewDisposeScope();
        var l = labels.to(int64);
        var bad = l.ne(-1).logical_and(l.ne(0)).logical_and(l.ne(1));
        if (bad.any().item<bool>())
        {
            long v = l.masked_select(bad)[0].item<long>();
            throw new ArgumentException($"point label {v} is not one of 1 (foreground), 0 (background), −1 (padding).");
        }
    }
}
