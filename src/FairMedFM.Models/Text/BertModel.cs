using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Text;

// Hugging Face BertModel (transformers/models/bert/modeling_bert.py) for inference. Every field name is the HF
// state_dict key segment, so HF checkpoints load by name: embeddings.{word,position,token_type}_embeddings,
// embeddings.LayerNorm, encoder.layer.N.attention.self.{query,key,value}, attention.output.{dense,LayerNorm},
// intermediate.dense, output.{dense,LayerNorm}, pooler.dense. Dropout is identity (eval).

/// <summary>HF <c>BertEmbeddings</c>: word + absolute position + token type, then LayerNorm.</summary>
public sealed class BertEmbeddings : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding token_type_embeddings;
    private readonly LayerNorm LayerNorm;

    public BertEmbeddings(string name, BertConfig c) : base(name)
    {
        word_embeddings = nn.Embedding(c.VocabSize, c.HiddenSize, padding_idx: c.PadTokenId);
        position_embeddings = nn.Embedding(c.MaxPositionEmbeddings, c.HiddenSize);
        token_type_embeddings = nn.Embedding(c.TypeVocabSize, c.HiddenSize);
        LayerNorm = nn.LayerNorm(c.HiddenSize, eps: c.LayerNormEps);
        RegisterComponents();
    }

    /// <summary>input_ids, token_type_ids: [B, L] int64 → [B, L, D]. Positions are 0..L−1.</summary>
    public override Tensor forward(Tensor inputIds, Tensor tokenTypeIds)
    {
        using var scope = NewDisposeScope();
        long l = inputIds.shape[1];
        var pos = arange(l, dtype: int64, device: inputIds.device).unsqueeze(0);
        var e = word_embeddings.forward(inputIds).add(token_type_embeddings.forward(tokenTypeIds)).add(position_embeddings.forward(pos));
        return LayerNorm.forward(e).MoveToOuterDisposeScope();
    }
}

/// <summary>HF <c>BertSelfAttention</c> (eager, absolute positions): softmax(q·kᵀ/√d + mask)·v.</summary>
public sealed class BertSelfAttention : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly long _heads, _headDim;

    public BertSelfAttention(string name, BertConfig c) : base(name)
    {
        _heads = c.NumAttentionHeads;
        _headDim = c.HeadDim;
        query = nn.Linear(c.HiddenSize, c.HiddenSize);
        key = nn.Linear(c.HiddenSize, c.HiddenSize);
        value = nn.Linear(c.HiddenSize, c.HiddenSize);
        RegisterComponents();
    }

    /// <summary>x: [B, L, D]; additiveMask: [B, 1, 1, L] (0 keep, very negative drop) → context [B, L, D].</summary>
    public override Tensor forward(Tensor x, Tensor additiveMask)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], l = x.shape[1];
        Tensor Heads(Linear lin) => lin.forward(x).view(b, l, _heads, _headDim).transpose(1, 2);
        var q = Heads(query);
        var k = Heads(key);
        var v = Heads(value);
        var scores = q.matmul(k.transpose(-1, -2)).div_(Math.Sqrt(_headDim)).add_(additiveMask);
        var ctx = scores.softmax(-1).matmul(v);
        return ctx.transpose(1, 2).reshape(b, l, _heads * _headDim).MoveToOuterDisposeScope();
    }
}

/// <summary>HF <c>BertSelfOutput</c> / <c>BertOutput</c>: LayerNorm(dense(x) + residual).</summary>
public sealed class BertResidualOutput : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Linear dense;
    private readonly LayerNorm LayerNorm;

    public BertResidualOutput(string name, long inFeatures, long hidden, double eps) : base(name)
    {
        dense = nn.Linear(inFeatures, hidden);
        LayerNorm = nn.LayerNorm(hidden, eps: eps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor residual)
    {
        using var scope = NewDisposeScope();
        return LayerNorm.forward(dense.forward(x).add(residual)).MoveToOuterDisposeScope();
    }
}

/// <summary>HF <c>BertAttention</c>: <c>self</c> then <c>output</c>.</summary>
public sealed class BertAttention : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly BertSelfAttention @self;
    private readonly BertResidualOutput output;

    public BertAttention(string name, BertConfig c) : base(name)
    {
        @self = new BertSelfAttention("self", c);
        output = new BertResidualOutput("output", c.HiddenSize, c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor additiveMask)
    {
        using var scope = NewDisposeScope();
        return output.forward(@self.forward(x, additiveMask), x).MoveToOuterDisposeScope();
    }
}

/// <summary>HF <c>BertIntermediate</c>: act(dense(x)).</summary>
public sealed class BertIntermediate : nn.Module<Tensor, Tensor>
{
    private readonly Linear dense;
    private readonly bool _tanhGelu;

    public BertIntermediate(string name, BertConfig c) : base(name)
    {
        dense = nn.Linear(c.HiddenSize, c.IntermediateSize);
        _tanhGelu = c.HiddenAct != "gelu";
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = dense.forward(x);
        var y = _tanhGelu ? nn.functional.gelu(h, TorchSharp.Modules.GELU.Approximate.tanh) : nn.functional.gelu(h);
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary>HF <c>BertLayer</c>: attention, intermediate, output.</summary>
public sealed class BertLayer : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertResidualOutput output;

    public BertLayer(string name, BertConfig c) : base(name)
    {
        attention = new BertAttention("attention", c);
        intermediate = new BertIntermediate("intermediate", c);
        output = new BertResidualOutput("output", c.IntermediateSize, c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor additiveMask)
    {
        using var scope = NewDisposeScope();
        var a = attention.forward(x, additiveMask);
        return output.forward(intermediate.forward(a), a).MoveToOuterDisposeScope();
    }
}

/// <summary>HF <c>BertEncoder</c>: <c>layer</c> list.</summary>
public sealed class BertEncoder : nn.Module
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(string name, BertConfig c) : base(name)
    {
        layer = nn.ModuleList(Enumerable.Range(0, c.NumHiddenLayers).Select(i => new BertLayer($"{i}", c)).ToArray());
        RegisterComponents();
    }

    public int Count => layer.Count;
    public BertLayer this[int i] => layer[i];
}

/// <summary>HF <c>BertPooler</c>: tanh(dense(h[:, 0])).</summary>
public sealed class BertPooler : nn.Module<Tensor, Tensor>
{
    private readonly Linear dense;

    public BertPooler(string name, BertConfig c) : base(name)
    {
        dense = nn.Linear(c.HiddenSize, c.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor lastHidden)
    {
        using var scope = NewDisposeScope();
        return dense.forward(lastHidden.select(1, 0)).tanh().MoveToOuterDisposeScope();
    }
}

/// <summary>What <see cref="BertModel.Forward"/> returns; the caller owns (and disposes) the tensors.</summary>
public sealed class BertOutput : IDisposable
{
    /// <summary>[B, L, D].</summary>
    public required Tensor LastHiddenState { get; init; }

    /// <summary>tanh(pooler.dense(h[:, 0])) [B, D]; null when the model has no pooler.</summary>
    public Tensor? PoolerOutput { get; init; }

    /// <summary>
    /// With <c>outputHiddenStates</c>: HF's <c>hidden_states</c> tuple, the embedding output first, then one per layer
    /// (NumHiddenLayers + 1 entries; the last is <see cref="LastHiddenState"/>'s values). Empty otherwise.
    /// </summary>
    public IReadOnlyList<Tensor> HiddenStates { get; init; } = [];

    public void Dispose()
    {
        LastHiddenState.Dispose();
        PoolerOutput?.Dispose();
        foreach (var h in HiddenStates) h.Dispose();
    }
}

/// <summary>
/// Hugging Face <c>BertModel</c> (absolute positions, encoder only) with HF's state_dict keys; exact (erf) GELU and
/// LayerNorm eps from the config (1e-12 for BERT). The attention mask is HF's extended mask:
/// (1 − mask)·finfo(float32).min added to the scores of the masked keys.
/// </summary>
public sealed class BertModel : nn.Module
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
    private readonly BertPooler? pooler;

    public BertConfig Config { get; }

    public BertModel(string name, BertConfig config) : base(name)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        embeddings = new BertEmbeddings("embeddings", config);
        encoder = new BertEncoder("encoder", config);
        pooler = config.AddPoolingLayer ? new BertPooler("pooler", config) : null;
        RegisterComponents();
    }

    public bool HasPooler => pooler is not null;

    /// <summary>
    /// input_ids [B, L] (int64; any integer type is converted); attention_mask [B, L] (1 keep, 0 pad; null = all
    /// ones); token_type_ids [B, L] (null = zeros).
    /// </summary>
    public BertOutput Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? tokenTypeIds = null, bool outputHiddenStates = false)
    {
        if (inputIds.dim() != 2) throw new ArgumentException($"input_ids must be [B, L], got [{string.Join(",", inputIds.shape)}].");
        long b = inputIds.shape[0], l = inputIds.shape[1];
        if (l > Config.MaxPositionEmbeddings)
            throw new ArgumentException($"sequence length {l} exceeds max_position_embeddings {Config.MaxPositionEmbeddings}.");
        foreach (var (t, what) in new[] { (attentionMask, "attention_mask"), (tokenTypeIds, "token_type_ids") })
            if (t is not null && (t.dim() != 2 || t.shape[0] != b || t.shape[1] != l))
                throw new ArgumentException($"{what} must be [{b}, {l}] like input_ids, got [{string.Join(",", t.shape)}].");

        using var scope = NewDisposeScope();
        var ids = inputIds.to(int64);
        var tt = tokenTypeIds is null ? zeros_like(ids) : tokenTypeIds.to(int64).to(ids.device);
        var mask = attentionMask is null ? ones(b, l, dtype: float32, device: ids.device) : attentionMask.to(float32).to(ids.device);
        var additive = mask.neg().add_(1f).mul_(float.MinValue).view(b, 1, 1, l);

        var hidden = new List<Tensor>();
        var h = embeddings.forward(ids, tt);
        if (outputHiddenStates) hidden.Add(h);
        for (int i = 0; i < encoder.Count; i++)
        {
            h = encoder[i].forward(h, additive);
            if (outputHiddenStates) hidden.Add(h);
        }
        var pooled = pooler?.forward(h);

        var result = new BertOutput
        {
            LastHiddenState = outputHiddenStates ? h.alias() : h,
            PoolerOutput = pooled,
            HiddenStates = hidden,
        };
        result.LastHiddenState.MoveToOuterDisposeScope();
        pooled?.MoveToOuterDisposeScope();
        foreach (var t in hidden) t.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>sentence-transformers mean pooling: Σ(h·mask)/max(Σmask, 1e-9) over the sequence → [B, D].</summary>
    public static Tensor MeanPool(Tensor lastHiddenState, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var m = attentionMask.to(lastHiddenState.dtype).to(lastHiddenState.device).unsqueeze(-1);
        var sum = lastHiddenState.mul(m).sum(1);
        var n = m.sum(1).clamp_min(1e-9);
        return sum.div(n).MoveToOuterDisposeScope();
    }
}
