using static TorchSharp.torch;

namespace FairMedFM.Models;

/// <summary>
/// A frozen text encoder for zero-shot classification: prompts → embeddings in the same space as the paired
/// <see cref="IImageEncoder"/> (for CLIP: <c>encode_text(tokenize(prompts))</c>, not normalised).
/// </summary>
public interface ITextEncoder : IDisposable
{
    /// <summary>Model-zoo id, e.g. "clip-vit-b32".</summary>
    string ModelId { get; }

    /// <summary>Embedding width (the joint image–text space).</summary>
    int FeatureDim { get; }

    /// <summary>Prompts → [N, FeatureDim] float32 on the CPU. Eval mode, inference mode, no grad.</summary>
    Tensor EncodeText(string[] prompts);
}

/// <summary>
/// The learned constants an image–text model puts on its similarities, for zero-shot logits
/// (see <see cref="ModelCard.ZeroShotLogitScale"/> for how a card uses them).
/// </summary>
public interface IContrastiveLogits
{
    /// <summary>The multiplier the weights carry: exp(logit_scale) for CLIP and SigLIP, 1 / temp for BLIP.</summary>
    double LogitScaleExp { get; }

    /// <summary>SigLIP's learned logit_bias; null for models without one (CLIP).</summary>
    double? LogitBias { get; }
}
