using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Models.Clip;

/// <summary>
/// A frozen CLIP as both an <see cref="IImageEncoder"/> (<c>encode_image</c>, FeatureDim = embed_dim) and an
/// <see cref="ITextEncoder"/> (<c>encode_text(clip.tokenize(prompts))</c>), for embedding caches and zero-shot.
/// </summary>
public sealed class ClipEncoder : IImageEncoder, ITextEncoder, IContrastiveLogits
{
    private readonly ClipModel _model;
    private readonly Device _device;
    private bool _disposed;

    public ClipEncoder(string modelId, ClipModel model, ClipTokenizer? tokenizer = null, string? weightsHash = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ModelId = modelId;
        _model = model;
        Tokenizer = tokenizer ?? ClipTokenizer.Default;
        WeightsHash = weightsHash ?? model.WeightsHash ?? "";
        _device = device ?? CPU;
        FrozenModule.Freeze(_model, _device);
    }

    public string ModelId { get; }
    public string WeightsHash { get; }
    public int FeatureDim => _model.EmbedDim;
    public ClipModel Model => _model;
    public ClipTokenizer Tokenizer { get; }

    /// <summary>Prompts longer than the context length: false (default, as clip.tokenize) throws; true truncates.</summary>
    public bool TruncatePrompts { get; init; }

    /// <summary>Prompts encoded per forward pass.</summary>
    public int TextBatchSize { get; init; } = 256;

    /// <summary>exp(logit_scale) of the loaded weights (see <see cref="ModelCard.ZeroShotLogitScale"/> for FairMedFM's use).</summary>
    public double LogitScaleExp => _model.LogitScaleExp;

    /// <summary>CLIP has no logit bias.</summary>
    public double? LogitBias => null;

    /// <summary>[B, 3, R, R] normalised with CLIP's mean/std → [B, embed_dim] on the input's device.</summary>
    public Tensor Encode(Tensor images)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"Encode expects [B,3,H,W], got [{string.Join(",", images.shape)}].", nameof(images));
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var f = _model.EncodeImage(images.to(float32).to(_device)).to(float32);
        if (f.device.type != images.device.type || f.device.index != images.device.index) f = f.to(images.device);
        return f.MoveToOuterDisposeScope();
    }

    public Tensor EncodeText(string[] prompts)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(prompts);
        if (Tokenizer.VocabSize != _model.Config.VocabSize)
            throw new InvalidOperationException(
                $"The tokenizer's vocabulary ({Tokenizer.VocabSize}) differs from the model's vocab_size ({_model.Config.VocabSize}); use EncodeTokens with ids of the model's vocabulary.");
        var parts = new List<Tensor>();
        try
        {
            for (int i = 0; i < prompts.Length; i += TextBatchSize)
            {
                var batch = prompts.Skip(i).Take(TextBatchSize).ToArray();
                using var ids = Tokenizer.Tokenize(batch, _model.Config.ContextLength, TruncatePrompts);
                parts.Add(EncodeTokens(ids));
            }
            if (parts.Count == 0) return zeros(0, FeatureDim);
            return parts.Count == 1 ? parts[0].alias() : cat(parts, 0);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>Token ids [N, L] (L ≤ context length) → [N, embed_dim] float32 on the CPU.</summary>
    public Tensor EncodeTokens(Tensor ids)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        return _model.EncodeText(ids.to(_device)).to(float32).cpu().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Builds the encoder of a "clip" model card from its weights file in <paramref name="weightsDir"/>
    /// (see <see cref="ModelZoo.ResolveWeightsFile"/>), strictly loaded into the card's <see cref="ModelCard.Clip"/> config.
    /// </summary>
    public static ClipEncoder FromCard(ModelCard card, string? weightsDir, Device? device = null)
    {
        if (card.Clip is null) throw new ArgumentException($"Model card '{card.Id}' has no CLIP config.", nameof(card));
        var path = ModelZoo.ResolveWeightsFile(card, weightsDir);
        var model = ClipLoader.Load(path, card.Clip);
        try
        {
            return new ClipEncoder(card.Id, model, ClipTokenizer.Default, model.WeightsHash, device);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _model.Dispose();
    }
}
