using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Text;

/// <summary>
/// A frozen text tower of a CLIP-style FM: prompts → the embeddings FairMedFM's <c>encode_text</c> returns
/// (unnormalised; <c>forward_clip</c> normalises). Kept separate from the CLIP port's text-encoder interface until the
/// two branches are reconciled.
/// </summary>
public interface IBertTextEncoder : IDisposable
{
    string ModelId { get; }
    int EmbeddingDim { get; }

    /// <summary>Tokenizer max length (BiomedCLIP 256, MedCLIP 77).</summary>
    int ContextLength { get; }

    /// <summary>sha256 of the checkpoint file the weights came from.</summary>
    string WeightsHash { get; }

    BertWordPieceTokenizer Tokenizer { get; }

    /// <summary>Tokenises as the reference does (truncation, padding) and encodes: [N, EmbeddingDim] on CPU.</summary>
    Tensor EncodeText(IReadOnlyList<string> texts);
}

/// <summary>A text tower module: token ids and mask → [B, EmbeddingDim].</summary>
public interface IBertTextTower
{
    BertModel Bert { get; }
    int EmbeddingDim { get; }
    Tensor Encode(Tensor inputIds, Tensor attentionMask);
}

/// <summary>
/// open_clip <c>HFTextEncoder</c> (open_clip 2.2x hf_model.py) over a HF BERT: <c>transformer</c> (BertModel built with
/// add_pooling_layer only for the "cls_pooler"), a pooler, and <c>proj</c> = Identity (width == output_dim), "linear"
/// (Linear(d, out, bias=False)) or "mlp" (Linear(d, (d+out)/2, bias=False), exact GELU, Linear(…, out, bias=False):
/// keys proj.0 / proj.2). The attention mask is (ids != pad_token_id), as open_clip computes it; token types are 0.
/// In a full open_clip checkpoint these keys sit under <c>text.</c>.
/// </summary>
public sealed class OpenClipHfTextTower : nn.Module, IBertTextTower
{
    private readonly BertModel transformer;
    private readonly nn.Module<Tensor, Tensor>? proj;
    private readonly string _pooler;

    public int EmbeddingDim { get; }
    public BertModel Bert => transformer;

    /// <param name="pooler">"cls_last_hidden_state_pooler" (BiomedCLIP), "cls_pooler" (pooler_output) or "mean_pooler".</param>
    /// <param name="projType">null (identity; needs outputDim == hidden), "linear" or "mlp".</param>
    public OpenClipHfTextTower(string name, BertConfig bert, int outputDim, string pooler, string? projType) : base(name)
    {
        if (pooler is not ("cls_last_hidden_state_pooler" or "cls_pooler" or "mean_pooler"))
            throw new NotSupportedException($"open_clip pooler '{pooler}' is not supported.");
        _pooler = pooler;
        transformer = new BertModel("transformer", bert with { AddPoolingLayer = pooler == "cls_pooler" });
        int d = bert.HiddenSize;
        switch (projType)
        {
            case null when d == outputDim:
                proj = null;
                break;
            case "linear":
                proj = nn.Linear(d, outputDim, hasBias: false);
                break;
            case "mlp":
                int hiddenSize = (d + outputDim) / 2;
                proj = nn.Sequential(("0", nn.Linear(d, hiddenSize, hasBias: false)), ("1", nn.GELU()),
                                     ("2", nn.Linear(hiddenSize, outputDim, hasBias: false)));
                break;
            default:
                throw new NotSupportedException($"open_clip proj_type '{projType}' with width {d} → {outputDim} is not supported.");
        }
        EmbeddingDim = outputDim;
        RegisterComponents();
    }

    public Tensor Encode(Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        // open_clip: attn_mask = (x != pad_token_id).long(), whatever the tokenizer's mask said.
        var mask = inputIds.ne(transformer.Config.PadTokenId).to(int64);
        using var o = transformer.Forward(inputIds, mask);
        Tensor pooled = _pooler switch
        {
            "cls_pooler" => o.PoolerOutput!.alias(),
            "mean_pooler" => BertModel.MeanPool(o.LastHiddenState, mask),
            _ => o.LastHiddenState.select(1, 0),
        };
        var y = proj is null ? pooled : proj.forward(pooled);
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// medclip 0.0.3 <c>MedCLIPTextModel</c>: <c>model</c> = HF BertModel (AutoModel, so with its pooler, unused) and
/// <c>projection_head</c> = Linear(768, 512, bias=False). The embedding is
/// stack(hidden_states[1], hidden_states[2], hidden_states[-1]).permute(1,0,2,3).mean(2).mean(1): the plain mean over
/// the sequence — padding positions included, as MedCLIP does — of the first, second and last layer outputs,
/// averaged over the three layers, then projected. In a medclip checkpoint these keys sit under <c>text_model.</c>.
/// </summary>
public sealed class MedClipTextTower : nn.Module, IBertTextTower
{
    private readonly BertModel model;
    private readonly Linear projection_head;

    public int EmbeddingDim { get; }
    public BertModel Bert => model;

    public MedClipTextTower(string name, BertConfig bert, int projDim = 512) : base(name)
    {
        if (bert.NumHiddenLayers < 2) throw new ArgumentException("MedCLIP's pooling reads hidden_states[1] and [2]: at least 2 layers.");
        model = new BertModel("model", bert with { AddPoolingLayer = true });
        projection_head = nn.Linear(bert.HiddenSize, projDim, hasBias: false);
        EmbeddingDim = projDim;
        RegisterComponents();
    }

    public Tensor Encode(Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        using var o = model.Forward(inputIds, attentionMask, outputHiddenStates: true);
        var hs = o.HiddenStates;
        var stacked = stack([hs[1], hs[2], hs[^1]]);                    // [3, B, L, D]
        var embed = stacked.permute(1, 0, 2, 3).mean([2]).mean([1]);     // [B, D]
        return projection_head.forward(embed).MoveToOuterDisposeScope();
    }
}

/// <summary><see cref="IBertTextEncoder"/> over a tower module and its tokenizer.</summary>
public sealed class BertTextEncoder : IBertTextEncoder
{
    private readonly nn.Module _module;
    private readonly IBertTextTower _tower;
    private readonly BertPadding _padding;
    private readonly Device _device;
    private bool _disposed;

    public BertTextEncoder(string modelId, IBertTextTower tower, BertWordPieceTokenizer tokenizer, int contextLength,
                           BertPadding padding, string weightsHash, Device? device = null)
    {
        ModelId = modelId;
        _tower = tower;
        _module = (nn.Module)tower;
        Tokenizer = tokenizer;
        ContextLength = contextLength;
        _padding = padding;
        WeightsHash = weightsHash;
        _device = device ?? CPU;
        FrozenModule.Freeze(_module, _device);
    }

    public string ModelId { get; }
    public int EmbeddingDim => _tower.EmbeddingDim;
    public int ContextLength { get; }
    public string WeightsHash { get; }
    public BertWordPieceTokenizer Tokenizer { get; }
    public IBertTextTower Tower => _tower;

    public Tensor EncodeText(IReadOnlyList<string> texts)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var _ = inference_mode();
        using var batch = Tokenizer.EncodeBatch(texts, ContextLength, _padding, _device);
        using var scope = NewDisposeScope();
        return _tower.Encode(batch.InputIds, batch.AttentionMask).cpu().MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _module.Dispose();
    }
}
