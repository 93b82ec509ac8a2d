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
