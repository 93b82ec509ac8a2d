using FairMedFM.Models.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Sam;

/// <summary>
/// segment-anything <c>transformer.Attention</c>: q/k/v projections to <c>embedding_dim / downsample_rate</c>, heads,
/// softmax(q·kᵀ / √d)·v, <c>out_proj</c> back to <c>embedding_dim</c>.
/// </summary>
public sealed class SamDecoderAttention : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear out_proj;
    private readonly long _heads;

    public SamDecoderAttention(string name, long embeddingDim, long numHeads, long downsampleRate = 1) : base(name)
    {
        long internalDim = embeddingDim / downsampleRate;
        if (internalDim * downsampleRate != embeddingDim || internalDim % numHeads != 0)
            throw new ArgumentException($"num_heads {numHeads} must divide embedding_dim {embeddingDim} / downsample_rate {downsampleRate}.");
        _heads = numHeads;
        q_proj = nn.Linear(embeddingDim, internalDim);
        k_proj = nn.Linear(embeddingDim, internalDim);
        v_proj = nn.Linear(embeddingDim, internalDim);
        out_proj = nn.Linear(internalDim, embeddingDim);
        RegisterComponents();
    }

    private Tensor SeparateHeads(Tensor x)
    {
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        return x.reshape(b, n, _heads, c / _heads).transpose(1, 2);
    }

    /// <summary>q [B, Nq, D], k/v [B, Nk, D] → [B, Nq, D].</summary>
    public override Tensor forward(Tensor q, Tensor k, Tensor v)
    {
        using var scope = NewDisposeScope();
        var qh = SeparateHeads(q_proj.forward(q));
        var kh = SeparateHeads(k_proj.forward(k));
        var vh = SeparateHeads(v_proj.forward(v));
        long cPerHead = qh.shape[3];
        // The reference divides the product (not q) by √d.
        var attn = qh.matmul(kh.permute(0, 1, 3, 2)).div(Math.Sqrt(cPerHead)).softmax(-1);
        var o = attn.matmul(vh);
        long b = o.shape[0], nTok = o.shape[2];
        o = o.transpose(1, 2).reshape(b, nTok, -1);
        return out_proj.forward(o).MoveToOuterDisposeScope();
    }
}

/// <summary>segment-anything <c>MLPBlock</c> with the TwoWayTransformer's activation (ReLU): lin1 → ReLU → lin2.</summary>
public sealed class SamReluMlpBlock : nn.Module<Tensor, Tensor>
{
    private readonly Linear lin1;
    private readonly Linear lin2;

    public SamReluMlpBlock(string name, long embeddingDim, long mlpDim) : base(name)
    {
        lin1 = nn.Linear(embeddingDim, mlpDim);
        lin2 = nn.Linear(mlpDim, embeddingDim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return lin2.forward(nn.functional.relu(lin1.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// segment-anything <c>TwoWayAttentionBlock</c>: token self-attention (without PE in the first block), token→image
/// cross attention, MLP, image→token cross attention; post-norms norm1..norm4 (LayerNorm eps 1e-5).
/// </summary>
public sealed class TwoWayAttentionBlock : nn.Module
{
    private readonly SamDecoderAttention self_attn;
    private readonly LayerNorm norm1;
    private readonly SamDecoderAttention cross_attn_token_to_image;
    private readonly LayerNorm norm2;
    private readonly SamReluMlpBlock mlp;
    private readonly LayerNorm norm3;
    private readonly LayerNorm norm4;
    private readonly SamDecoderAttention cross_attn_image_to_token;
    private readonly bool _skipFirstLayerPe;

    public TwoWayAttentionBlock(string name, long embeddingDim, long numHeads, long mlpDim, long attentionDownsampleRate, bool skipFirstLayerPe)
        : base(name)
    {
        self_attn = new SamDecoderAttention("self_attn", embeddingDim, numHeads);
        norm1 = nn.LayerNorm(embeddingDim);
        cross_attn_token_to_image = new SamDecoderAttention("cross_attn_token_to_image", embeddingDim, numHeads, attentionDownsampleRate);
        norm2 = nn.LayerNorm(embeddingDim);
        mlp = new SamReluMlpBlock("mlp", embeddingDim, mlpDim);
        norm3 = nn.LayerNorm(embeddingDim);
        norm4 = nn.LayerNorm(embeddingDim);
        cross_attn_image_to_token = new SamDecoderAttention("cross_attn_image_to_token", embeddingDim, numHeads, attentionDownsampleRate);
        _skipFirstLayerPe = skipFirstLayerPe;
        RegisterComponents();
    }

    public (Tensor Queries, Tensor Keys) Forward(Tensor queries, Tensor keys, Tensor queryPe, Tensor keyPe)
    {
        using var scope = NewDisposeScope();
        if (_skipFirstLayerPe)
            queries = self_attn.forward(queries, queries, queries);
        else
        {
            var q0 = queries.add(queryPe);
            queries = queries.add(self_attn.forward(q0, q0, queries));
        }
        queries = norm1.forward(queries);

        var q = queries.add(queryPe);
        var k = keys.add(keyPe);
        queries = norm2.forward(queries.add(cross_attn_token_to_image.forward(q, k, keys)));

        queries = norm3.forward(queries.add(mlp.forward(queries)));

        q = queries.add(queryPe);
        k = keys.add(keyPe);
        keys = norm4.forward(keys.add(cross_attn_image_to_token.forward(k, q, queries)));
        return (queries.MoveToOuterDisposeScope(), keys.MoveToOuterDisposeScope());
    }
}

/// <summary>
/// segment-anything <c>TwoWayTransformer</c>: <c>layers.N</c> two-way blocks, then <c>final_attn_token_to_image</c> and
/// <c>norm_final_attn</c>.
/// </summary>
public sealed class TwoWayTransformer : nn.Module
{
    private readonly ModuleList<TwoWayAttentionBlock> layers;
    private readonly SamDecoderAttention final_attn_token_to_image;
    private readonly LayerNorm norm_final_attn;

    public TwoWayTransformer(string name, int depth, long embeddingDim, long numHeads, long mlpDim, long attentionDownsampleRate = 2) : base(name)
    {
        layers = nn.ModuleList(Enumerable.Range(0, depth)
            .Select(i => new TwoWayAttentionBlock($"{i}", embeddingDim, numHeads, mlpDim, attentionDownsampleRate, skipFirstLayerPe: i == 0))
            .ToArray());
        final_attn_token_to_image = new SamDecoderAttention("final_attn_token_to_image", embeddingDim, numHeads, attentionDownsampleRate);
        norm_final_attn = nn.LayerNorm(embeddingDim);
        RegisterComponents();
    }

    /// <summary>image [B, C, h, w], its PE [B, C, h, w], point tokens [B, N, C] → (tokens [B, N, C], image tokens [B, h·w, C]).</summary>
    public (Tensor Queries, Tensor Keys) Forward(Tensor imageEmbedding, Tensor imagePe, Tensor pointEmbedding)
    {
        using var scope = NewDisposeScope();
        var keys = imageEmbedding.flatten(2).permute(0, 2, 1);
        var keyPe = imagePe.flatten(2).permute(0, 2, 1);
        var queries = pointEmbedding;
        foreach (var layer in layers)
            (queries, keys) = layer.Forward(queries, keys, pointEmbedding, keyPe);
        var q = queries.add(pointEmbedding);
        var k = keys.add(keyPe);
        queries = norm_final_attn.forward(queries.add(final_attn_token_to_image.forward(q, k, keys)));
        return (queries.MoveToOuterDisposeScope(), keys.MoveToOuterDisposeScope());
    }
}

/// <summary>segment-anything mask-decoder <c>MLP</c>: <c>layers.N</c> Linear layers, ReLU between them, optional sigmoid.</summary>
public sealed class SamMlp : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<Linear> layers;
    private readonly bool _sigmoidOutput;

    public SamMlp(string name, long inputDim, long hiddenDim, long outputDim, int numLayers, bool sigmoidOutput = false) : base(name)
    {
        if (numLayers < 1) throw new ArgumentException("an MLP needs at least one layer.");
        var dims = new List<long> { inputDim };
        dims.AddRange(Enumerable.Repeat(hiddenDim, numLayers - 1));
        dims.Add(outputDim);
        layers = nn.ModuleList(Enumerable.Range(0, numLayers).Select(i => nn.Linear(dims[i], dims[i + 1])).ToArray());
        _sigmoidOutput = sigmoidOutput;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        for (int i = 0; i < layers.Count; i++)
        {
            x = layers[i].forward(x);
            if (i < layers.Count - 1) x = nn.functional.relu(x);
        }
        if (_sigmoidOutput) x = x.sigmoid();
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// segment-anything <c>MaskDecoder</c> (modeling/mask_decoder.py @ dca509f): <c>transformer</c>, <c>iou_token</c>,
/// <c>mask_tokens</c> (num_multimask_outputs + 1), <c>output_upscaling</c> (ConvTranspose2d 2×2/2 → LayerNorm2d → GELU →
/// ConvTranspose2d 2×2/2 → GELU: ×4 resolution, C/8 channels), <c>output_hypernetworks_mlps.N</c> (3-layer MLPs, one per
/// mask token) and <c>iou_prediction_head</c>.
/// </summary>
public sealed class MaskDecoder : nn.Module
{
    private readonly TwoWayTransformer transformer;
    private readonly Embedding iou_token;
    private readonly Embedding mask_tokens;
    private readonly Sequential output_upscaling;
    private readonly ModuleList<SamMlp> output_hypernetworks_mlps;
    private readonly SamMlp iou_prediction_head;

    public int TransformerDim { get; }
    public int NumMultimaskOutputs { get; }
    public int NumMaskTokens => NumMultimaskOutputs + 1;

    public MaskDecoder(string name, SamConfig config) : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        int d = config.PromptEmbedDim;
        TransformerDim = d;
        NumMultimaskOutputs = config.NumMultimaskOutputs;
        transformer = new TwoWayTransformer("transformer", config.DecoderDepth, d, config.DecoderHeads, config.DecoderMlpDim,
                                            config.AttentionDownsampleRate);
        iou_token = nn.Embedding(1, d);
        mask_tokens = nn.Embedding(NumMaskTokens, d);
        output_upscaling = nn.Sequential(
            ("0", nn.ConvTranspose2d(d, d / 4, 2, stride: 2)),
            ("1", new LayerNorm2d("1", d / 4)),
            ("2", nn.GELU()),
            ("3", nn.ConvTranspose2d(d / 4, d / 8, 2, stride: 2)),
            ("4", nn.GELU()));
        output_hypernetworks_mlps = nn.ModuleList(Enumerable.Range(0, NumMaskTokens)
            .Select(i => new SamMlp($"{i}", d, d, d / 8, 3)).ToArray());
        iou_prediction_head = new SamMlp("iou_prediction_head", d, config.IouHeadHiddenDim, NumMaskTokens, config.IouHeadDepth);
        RegisterComponents();
    }

    /// <summary>
    /// <c>forward</c>: low-res mask logits [B, M, 4h, 4w] and predicted IoUs [B, M], with M = num_multimask_outputs
    /// (tokens 1..) when <paramref name="multimaskOutput"/>, else 1 (token 0).
    /// </summary>
    /// <param name="imageEmbeddings">[1, C, h, w] (repeated for every prompt set, as the reference does) or [B, C, h, w]
    /// (one image per prompt set — the reference cannot do this: its repeat_interleave would make B² rows).</param>
    /// <param name="imagePe"><see cref="PromptEncoder.GetDensePe"/>, [1, C, h, w].</param>
    public (Tensor Masks, Tensor IouPred) Forward(Tensor imageEmbeddings, Tensor imagePe, Tensor sparsePromptEmbeddings,
                                                  Tensor densePromptEmbeddings, bool multimaskOutput)
    {
        using var scope = NewDisposeScope();
        var (masks, iou) = PredictMasks(imageEmbeddings, imagePe, sparsePromptEmbeddings, densePromptEmbeddings);
        if (multimaskOutput)
        {
            masks = masks.narrow(1, 1, NumMultimaskOutputs);
            iou = iou.narrow(1, 1, NumMultimaskOutputs);
        }
        else
        {
            masks = masks.narrow(1, 0, 1);
            iou = iou.narrow(1, 0, 1);
        }
        return (masks.contiguous().MoveToOuterDisposeScope(), iou.contiguous().MoveToOuterDisposeScope());
    }

    /// <summary><c>predict_masks</c>: every mask token's logits [B, M+1, 4h, 4w] and IoU [B, M+1].</summary>
    public (Tensor Masks, Tensor IouPred) PredictMasks(Tensor imageEmbeddings, Tensor imagePe, Tensor sparsePromptEmbeddings, Tensor densePromptEmbeddings)
    {
        if (imageEmbeddings.dim() != 4 || imageEmbeddings.shape[1] != TransformerDim)
            throw new ArgumentException($"image embeddings must be [B, {TransformerDim}, h, w], got [{string.Join(", ", imageEmbeddings.shape)}].");
        if (sparsePromptEmbeddings.dim() != 3 || sparsePromptEmbeddings.shape[2] != TransformerDim)
            throw new ArgumentException($"sparse prompt embeddings must be [B, N, {TransformerDim}], got [{string.Join(", ", sparsePromptEmbeddings.shape)}].");
        long bs = sparsePromptEmbeddings.shape[0];
        if (imageEmbeddings.shape[0] != 1 && imageEmbeddings.shape[0] != bs)
            throw new ArgumentException($"{imageEmbeddings.shape[0]} image embeddings for {bs} prompt sets: give one embedding (shared) or one per prompt set.");
        if (densePromptEmbeddings.shape[0] != bs && densePromptEmbeddings.shape[0] != 1)
            throw new ArgumentException($"dense prompt embeddings have batch {densePromptEmbeddings.shape[0]}, the prompts {bs}.");

        using var scope = NewDisposeScope();
        var outputTokens = cat([iou_token.weight!, mask_tokens.weight!], 0).unsqueeze(0).expand(bs, -1, -1);
        var tokens = cat([outputTokens, sparsePromptEmbeddings], 1);
        var src = imageEmbeddings.shape[0] == bs ? imageEmbeddings : imageEmbeddings.expand(bs, -1, -1, -1);
        src = src.add(densePromptEmbeddings);
        var posSrc = imagePe.shape[0] == bs ? imagePe : imagePe.expand(bs, -1, -1, -1);
        long b = src.shape[0], c = src.shape[1], h = src.shape[2], w = src.shape[3];

        var (hs, srcOut) = transformer.Forward(src, posSrc, tokens);
        var iouTokenOut = hs.select(1, 0);
        var maskTokensOut = hs.narrow(1, 1, NumMaskTokens);

        var up = output_upscaling.forward(srcOut.transpose(1, 2).reshape(b, c, h, w));
        var hyperIn = stack(Enumerable.Range(0, NumMaskTokens)
            .Select(i => output_hypernetworks_mlps[i].forward(maskTokensOut.select(1, i))).ToArray(), 1);
        long uc = up.shape[1], uh = up.shape[2], uw = up.shape[3];
        var masks = hyperIn.matmul(up.view(b, uc, uh * uw)).view(b, -1, uh, uw);
        var iouPred = iou_prediction_head.forward(iouTokenOut);
        return (masks.MoveToOuterDisposeScope(), iouPred.MoveToOuterDisposeScope());
    }
}
