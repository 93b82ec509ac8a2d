using static TorchSharp.torch;

namespace FairMedFM.Models.Contrastive;

/// <summary>A frozen text tower with its tokenizer: prompts → [N, Dim] float32 on the CPU (unnormalised).</summary>
public interface IPromptEncoder : IDisposable
{
    int Dim { get; }
    Tensor Encode(IReadOnlyList<string> prompts);
}

/// <summary>The text half of a two-tower model and the constants its weights put on the similarities.</summary>
/// <param name="LogitScaleExp">exp(logit_scale) of the checkpoint.</param>
/// <param name="LogitBias">SigLIP's logit_bias; null for CLIP-style models.</param>
public sealed record TextSide(IPromptEncoder Text, double LogitScaleExp, double? LogitBias);

/// <summary>
/// An image tower and a text tower of one checkpoint joined for zero-shot and CLIP adaptation: the image side is the
/// card's feature (the embedding cache and the linear probe use it unchanged), the text side is built on first use
/// (a linear probe never loads it). Both sides must live in the same joint space: the text width must equal the
/// image feature width. The weights hash is the image side's (the checkpoint both towers come from).
/// </summary>
public class ContrastiveEncoder : IImageEncoder, ITextEncoder, IContrastiveLogits
{
    private readonly IImageEncoder _image;
    private readonly Func<TextSide> _textFactory;
    private readonly object _gate = new();
    private TextSide? _text;
    private bool _disposed;

    public ContrastiveEncoder(string modelId, IImageEncoder image, Func<TextSide> textFactory)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(textFactory);
        ModelId = modelId;
        _image = image;
        _textFactory = textFactory;
    }

    public string ModelId { get; }
    public int FeatureDim => _image.FeatureDim;
    public string WeightsHash => _image.WeightsHash;
    public IImageEncoder Image => _image;

    /// <summary>True once the text tower was built (tests use it to show that a linear probe never loads it).</summary>
    public bool TextLoaded => _text is not null;

    public Tensor Encode(Tensor images)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _image.Encode(images);
    }

    private TextSide Text
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            lock (_gate)
            {
                if (_text is not null) return _text;
                var t = _textFactory();
                if (t.Text.Dim != _image.FeatureDim)
                {
                    t.Text.Dispose();
                    throw new InvalidOperationException(
                        $"{ModelId}: the text tower embeds into {t.Text.Dim} dimensions but the image feature has {_image.FeatureDim}: not one joint space");
                }
                if (!(t.LogitScaleExp > 0) || double.IsInfinity(t.LogitScaleExp))
                {
                    t.Text.Dispose();
                    throw new InvalidDataException($"{ModelId}: exp(logit_scale) of the checkpoint is {t.LogitScaleExp}, not a positive finite number");
                }
                return _text = t;
            }
        }
    }

    public Tensor EncodeText(string[] prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var t = Text.Text.Encode(prompts);
        if (t.dim() != 2 || t.shape[0] != prompts.Length || t.shape[1] != FeatureDim)
        {
            var shape = string.Join(",", t.shape);
            t.Dispose();
            throw new InvalidOperationException($"{ModelId}: text tower returned [{shape}] for {prompts.Length} prompts, expected [{prompts.Length},{FeatureDim}]");
        }
        return t;
    }

    public double LogitScaleExp => Text.LogitScaleExp;
    public double? LogitBias => Text.LogitBias;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _text?.Text.Dispose();
        _image.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>A <see cref="ContrastiveEncoder"/> whose image tower can be LoRA-adapted (BiomedCLIP's timm ViT, MedCLIP's Swin).</summary>
public sealed class AdaptableContrastiveEncoder(string modelId, IAdaptableImageEncoder image, Func<TextSide> textFactory)
    : ContrastiveEncoder(modelId, image, textFactory), IAdaptableImageEncoder
{
    public TorchSharp.torch.nn.Module Backbone => image.Backbone;
    public Tensor ForwardFeatures(Tensor images) => image.ForwardFeatures(images);

    /// <summary>Joins <paramref name="image"/> and a lazily built text side, keeping LoRA eligibility when the image tower has it.</summary>
    public static ContrastiveEncoder Join(string modelId, IImageEncoder image, Func<TextSide> textFactory) =>
        image is IAdaptableImageEncoder a ? new AdaptableContrastiveEncoder(modelId, a, textFactory) : new ContrastiveEncoder(modelId, image, textFactory);
}

/// <summary>An <see cref="IPromptEncoder"/> over one of the BERT text towers (<see cref="Text.TextModelZoo"/>).</summary>
public sealed class BertPromptEncoder(Text.IBertTextEncoder inner) : IPromptEncoder
{
    public int Dim => inner.EmbeddingDim;
    public Tensor Encode(IReadOnlyList<string> prompts) => inner.EncodeText(prompts);
    public void Dispose() => inner.Dispose();
}
