using FairMedFM.Models.Vit;

namespace FairMedFM.Models.Sam;

/// <summary>
/// The parts of segment-anything's <c>_build_sam</c> (@ dca509f) around the image encoder: the prompt encoder, the
/// mask decoder and the pixel statistics of <c>Sam.preprocess</c>. Defaults are every published SAM v1 model's
/// (SAM ViT-B/L/H, MedSAM, SAM-Med2D, MobileSAM): prompt width 256, 64×64 image embedding at 1024 px, mask_in_chans 16,
/// two-way transformer depth 2 / mlp 2048 / 8 heads, 3 multimask outputs, IoU head depth 3 hidden 256.
/// </summary>
public sealed record SamConfig
{
    /// <summary>Side of the square model input (<c>image_encoder.img_size</c>); prompts live in this frame.</summary>
    public int ImgSize { get; init; } = 1024;

    /// <summary>Side of the image embedding grid (<c>image_embedding_size</c>, ImgSize / 16 for every SAM v1 encoder).</summary>
    public int ImageEmbeddingSize { get; init; } = 64;

    /// <summary><c>prompt_embed_dim</c>: channels of the image embedding and of every prompt token.</summary>
    public int PromptEmbedDim { get; init; } = 256;

    public int MaskInChans { get; init; } = 16;
    public int DecoderDepth { get; init; } = 2;
    public int DecoderMlpDim { get; init; } = 2048;
    public int DecoderHeads { get; init; } = 8;

    /// <summary>Internal width divisor of the token↔image cross attentions (TwoWayTransformer default 2).</summary>
    public int AttentionDownsampleRate { get; init; } = 2;

    public int NumMultimaskOutputs { get; init; } = 3;
    public int IouHeadDepth { get; init; } = 3;
    public int IouHeadHiddenDim { get; init; } = 256;

    /// <summary><c>Sam.pixel_mean</c> (RGB, 0–255 scale; a non-persistent buffer, so never in a checkpoint).</summary>
    public IReadOnlyList<float> PixelMean { get; init; } = [123.675f, 116.28f, 103.53f];

    /// <summary><c>Sam.pixel_std</c>.</summary>
    public IReadOnlyList<float> PixelStd { get; init; } = [58.395f, 57.12f, 57.375f];

    /// <summary><c>Sam.mask_threshold</c>: a mask pixel is on where its logit is strictly above this.</summary>
    public double MaskThreshold { get; init; }

    /// <summary>Side of the low-resolution mask logits (4 × the embedding grid; also the size of a mask prompt).</summary>
    public int LowResSize => 4 * ImageEmbeddingSize;

    /// <summary>SAM v1 around a segment-anything ViT encoder: input size and prompt width from the encoder's config.</summary>
    public static SamConfig ForVit(SamVitConfig encoder)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        return new SamConfig { ImgSize = encoder.ImgSize, ImageEmbeddingSize = encoder.GridSize, PromptEmbedDim = encoder.OutChans };
    }

    public bool Equals(SamConfig? o) =>
        o is not null && ImgSize == o.ImgSize && ImageEmbeddingSize == o.ImageEmbeddingSize && PromptEmbedDim == o.PromptEmbedDim &&
        MaskInChans == o.MaskInChans && DecoderDepth == o.DecoderDepth && DecoderMlpDim == o.DecoderMlpDim &&
        DecoderHeads == o.DecoderHeads && AttentionDownsampleRate == o.AttentionDownsampleRate &&
        NumMultimaskOutputs == o.NumMultimaskOutputs && IouHeadDepth == o.IouHeadDepth && IouHeadHiddenDim == o.IouHeadHiddenDim &&
        PixelMean.SequenceEqual(o.PixelMean) && PixelStd.SequenceEqual(o.PixelStd) && MaskThreshold == o.MaskThreshold;

    public override int GetHashCode() =>
        HashCode.Combine(ImgSize, ImageEmbeddingSize, PromptEmbedDim, MaskInChans, DecoderMlpDim, DecoderHeads, IouHeadHiddenDim, NumMultimaskOutputs);

    internal void Validate()
    {
        if (ImgSize <= 0 || ImageEmbeddingSize <= 0) throw new ArgumentException($"img_size {ImgSize} and image_embedding_size {ImageEmbeddingSize} must be positive.");
        if (PromptEmbedDim <= 0 || PromptEmbedDim % 8 != 0)
            throw new ArgumentException($"prompt_embed_dim {PromptEmbedDim} must be a positive multiple of 8 (the upscaling ends at dim/8 channels).");
        if (PromptEmbedDim % 2 != 0) throw new ArgumentException("prompt_embed_dim must be even (random Fourier features: sin and cos halves).");
        if (MaskInChans < 4 || MaskInChans % 4 != 0) throw new ArgumentException($"mask_in_chans {MaskInChans} must be a positive multiple of 4.");
        if (AttentionDownsampleRate <= 0 || PromptEmbedDim % AttentionDownsampleRate != 0)
            throw new ArgumentException($"attention_downsample_rate {AttentionDownsampleRate} must divide prompt_embed_dim {PromptEmbedDim}.");
        if (DecoderHeads <= 0 || (PromptEmbedDim / AttentionDownsampleRate) % DecoderHeads != 0)
            throw new ArgumentException($"num_heads {DecoderHeads} must divide the attention width {PromptEmbedDim / AttentionDownsampleRate}.");
        if (DecoderDepth < 0 || DecoderMlpDim <= 0 || IouHeadDepth < 1 || IouHeadHiddenDim <= 0 || NumMultimaskOutputs < 1)
            throw new ArgumentException("decoder depth ≥ 0, mlp dim > 0, IoU head depth ≥ 1 and hidden > 0, num_multimask_outputs ≥ 1 are required.");
        if (PixelMean.Count != 3 || PixelStd.Count != 3 || PixelStd.Any(s => !(s > 0)))
            throw new ArgumentException("pixel_mean/pixel_std need 3 values each, std > 0.");
    }
}
