using FairMedFM.Models.Text;
using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;

namespace FairMedFM.Models.Onnx;

/// <summary>
/// <see cref="IBertTextEncoder"/> over a BERT-style text model exported to ONNX (inputs input_ids, attention_mask and,
/// when the model declares it, token_type_ids; int64 [B, L], dynamic axes). The chosen output (default: the first) is
/// pooled: "cls" (token 0 of [B, L, D]), "mean" (attention-mask-weighted mean, sentence-transformers style) or "none"
/// (an output that is already [B, D], e.g. a pooler).
/// </summary>
public sealed class OnnxBertTextEncoder : IBertTextEncoder
{
    private readonly InferenceSession _session;
    private readonly string _output;
    private readonly string _pooling;
    private readonly BertPadding _padding;
    private readonly bool _hasTokenTypes;
    private bool _disposed;

    public string ModelId { get; }
    public int EmbeddingDim { get; }
    public int ContextLength { get; }
    public string WeightsHash { get; }
    public BertWordPieceTokenizer Tokenizer { get; }

    public OnnxBertTextEncoder(string modelId, string onnxPath, BertWordPieceTokenizer tokenizer, int contextLength,
                               string pooling = "cls", string? output = null, BertPadding padding = BertPadding.Longest,
                               Device? device = null, int intraOpThreads = 0)
    {
        if (!File.Exists(onnxPath)) throw new FileNotFoundException($"ONNX file of text model '{modelId}' not found: '{onnxPath}'.", onnxPath);
        if (pooling is not ("cls" or "mean" or "none")) throw new ArgumentException($"pooling '{pooling}' is not cls, mean or none.");
        ModelId = modelId;
        Tokenizer = tokenizer;
        ContextLength = contextLength;
        _pooling = pooling;
        _padding = padding;
        _session = new InferenceSession(onnxPath, OnnxImageEncoder.CreateSessionOptions(device, intraOpThreads));
        try
        {
            var inputs = _session.InputMetadata.Keys.ToHashSet();
            foreach (var required in new[] { "input_ids", "attention_mask" })
                if (!inputs.Contains(required))
                    throw new NotSupportedException($"Text model '{modelId}': no '{required}' input (inputs: {string.Join(", ", inputs)}).");
            _hasTokenTypes = inputs.Contains("token_type_ids");
            if (inputs.Except(["input_ids", "attention_mask", "token_type_ids"]).FirstOrDefault() is { } other)
                throw new NotSupportedException($"Text model '{modelId}': unexpected input '{other}'.");
            _output = output ?? _session.OutputMetadata.Keys.First();
            if (!_session.OutputMetadata.ContainsKey(_output))
                throw new ArgumentException($"Text model '{modelId}': no output '{_output}'; outputs: {string.Join(", ", _session.OutputMetadata.Keys)}.");
            using var probe = EncodeText([""]);
            EmbeddingDim = (int)probe.shape[1];
            WeightsHash = WeightLoader.FileSha256(onnxPath);
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    public Tensor EncodeText(IReadOnlyList<string> texts)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var batch = Tokenizer.EncodeBatch(texts, ContextLength, _padding);
        long b = batch.InputIds.shape[0], l = batch.InputIds.shape[1];
        var names = new List<string> { "input_ids", "attention_mask" };
        var values = new List<OrtValue>
        {
            OrtValue.CreateTensorValueFromMemory(batch.InputIds.data<long>().ToArray(), [b, l]),
            OrtValue.CreateTensorValueFromMemory(batch.AttentionMask.data<long>().ToArray(), [b, l]),
        };
        if (_hasTokenTypes)
        {
            names.Add("token_type_ids");
            values.Add(OrtValue.CreateTensorValueFromMemory(new long[b * l], [b, l]));
        }
        try
        {
            using var ro = new RunOptions();
            using var outs = _session.Run(ro, names, values, [_output]);
            var shape = outs[0].GetTensorTypeAndShape().Shape;
            using var scope = NewDisposeScope();
            var t = tensor(outs[0].GetTensorDataAsSpan<float>().ToArray(), shape);
            Tensor pooled = _pooling switch
            {
                "cls" => t.select(1, 0),
                "mean" => Text.BertModel.MeanPool(t, batch.AttentionMask),
                _ => t,
            };
            if (pooled.dim() != 2) throw new InvalidOperationException($"Text model '{ModelId}': pooled output has shape [{string.Join(",", pooled.shape)}].");
            return pooled.MoveToOuterDisposeScope();
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _session.Dispose();
    }
}
