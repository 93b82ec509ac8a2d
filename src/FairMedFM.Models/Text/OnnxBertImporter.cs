using System.Runtime.InteropServices;
using Onnx;
using static TorchSharp.torch;

namespace FairMedFM.Models.Text;

/// <summary>What <see cref="OnnxBertImporter.Convert"/> read off an ONNX BERT graph.</summary>
public sealed record OnnxBertImport(BertConfig Config, Dictionary<string, Tensor> StateDict, float MaskValue,
                                    IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs) : IDisposable
{
    public void Dispose()
    {
        foreach (var t in StateDict.Values) t.Dispose();
    }
}

/// <summary>
/// Converts a Hugging Face BERT exported to ONNX by torch.onnx (transformers' export: named initializers for the
/// embeddings, biases and LayerNorms; each Linear weight stored transposed as an anonymous MatMul initializer) into a
/// HF-keyed state dict for <see cref="BertModel"/>. Each MatMul weight is named by the bias its output is added to
/// (…query.bias → …query.weight, transposed back). The shape facts the initializers cannot give — head count and
/// LayerNorm eps — are read from the graph (the attention Reshape constants and the constant added before each Sqrt),
/// and the activation is checked to be the exact erf GELU.
/// </summary>
public static class OnnxBertImporter
{
    public static OnnxBertImport Convert(string onnxPath)
    {
        if (!File.Exists(onnxPath)) throw new FileNotFoundException($"ONNX file not found: '{onnxPath}'.", onnxPath);
        var g = OnnxResNetImporter.ParseOnnx(onnxPath).Graph ?? throw new InvalidDataException($"'{onnxPath}' has no graph.");
        InvalidDataException Fail(string msg) => new($"Unsupported ONNX BERT '{onnxPath}': {msg}");

        var inits = g.Initializer.ToDictionary(t => t.Name);
        var producers = new Dictionary<string, NodeProto>();
        var consumers = new Dictionary<string, List<NodeProto>>();
        foreach (var n in g.Node)
        {
            foreach (var o in n.Output) producers[o] = n;
            foreach (var i in n.Input)
            {
                if (!consumers.TryGetValue(i, out var l)) consumers[i] = l = [];
                l.Add(n);
            }
        }
        List<NodeProto> Consumers(string t) => consumers.GetValueOrDefault(t) ?? [];

        var sd = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, t) in inits)
            {
                if (name == "embeddings.position_ids" || name == "embeddings.token_type_ids") continue; // buffers
                if (name.StartsWith("embeddings.", StringComparison.Ordinal) || name.StartsWith("encoder.", StringComparison.Ordinal)
                    || name.StartsWith("pooler.", StringComparison.Ordinal))
                    sd[name] = ToTensor(t, Fail);
            }
            // Anonymous MatMul weights: named by the bias added to their output.
            string? firstQueryAdd = null;
            foreach (var mm in g.Node.Where(n => n.OpType == "MatMul"))
            {
                if (!inits.TryGetValue(mm.Input[1], out var w) || w.Dims.Count != 2) continue;
                var add = Consumers(mm.Output[0]).SingleOrDefault(n => n.OpType == "Add")
                          ?? throw Fail($"MatMul '{mm.Name}' with weight '{w.Name}' is not followed by a bias Add.");
                string bias = add.Input.Single(i => i != mm.Output[0]);
                if (!bias.EndsWith(".bias", StringComparison.Ordinal) || !inits.ContainsKey(bias))
                    throw Fail($"weight '{w.Name}' is added to '{bias}', not a named bias initializer.");
                string key = bias[..^".bias".Length] + ".weight";
                if (sd.ContainsKey(key)) throw Fail($"two weights map to '{key}'.");
                using (var wt = ToTensor(w, Fail)) sd[key] = wt.t().contiguous();
                if (key == "encoder.layer.0.attention.self.query.weight") firstQueryAdd = add.Output[0];
            }

            var word = sd.GetValueOrDefault("embeddings.word_embeddings.weight") ?? throw Fail("no embeddings.word_embeddings.weight.");
            int hidden = (int)word.shape[1];
            int layers = 0;
            while (sd.ContainsKey($"encoder.layer.{layers}.attention.self.query.weight")) layers++;
            if (layers == 0) throw Fail("no encoder.layer.0.attention.self.query weight found.");
            int inter = (int)(sd.GetValueOrDefault("encoder.layer.0.intermediate.dense.weight") ?? throw Fail("no intermediate.dense weight.")).shape[0];

            // Heads: the constants of the Reshape that splits the query into [B, L, heads, head_dim].
            int heads = 0;
            foreach (var r in Consumers(firstQueryAdd!).Where(n => n.OpType == "Reshape"))
            {
                var consts = ShapeConstants(r.Input[1], inits, producers);
                if (consts.Count == 2 && consts[0] * consts[1] == hidden) heads = (int)consts[0];
            }
            if (heads == 0) throw Fail("could not read the head count from the query Reshape.");

            // LayerNorm eps: the scalar added to the variance before each Sqrt.
            var epsValues = new HashSet<float>();
            foreach (var sq in g.Node.Where(n => n.OpType == "Sqrt"))
            {
                if (!producers.TryGetValue(sq.Input[0], out var add) || add.OpType != "Add") continue;
                foreach (var i in add.Input)
                    if (ScalarConstant(i, inits, producers) is { } v) epsValues.Add(v);
            }
            if (epsValues.Count != 1) throw Fail($"expected one LayerNorm eps, found [{string.Join(", ", epsValues)}].");
            float epsF = epsValues.Single();
            double eps = Math.Abs(epsF - 1e-12) <= 1e-18 ? 1e-12 : epsF;

            if (!g.Node.Any(n => n.OpType == "Erf")) throw Fail("no Erf node: not the exact GELU this port computes.");
            float mask = g.Node.Where(n => n.OpType == "Mul").SelectMany(n => n.Input)
                .Select(i => ScalarConstant(i, inits, producers)).FirstOrDefault(v => v is < -1000f) ?? float.NaN;

            var config = new BertConfig
            {
                VocabSize = (int)word.shape[0],
                HiddenSize = hidden,
                NumHiddenLayers = layers,
                NumAttentionHeads = heads,
                IntermediateSize = inter,
                MaxPositionEmbeddings = (int)(sd.GetValueOrDefault("embeddings.position_embeddings.weight") ?? throw Fail("no position embeddings.")).shape[0],
                TypeVocabSize = (int)(sd.GetValueOrDefault("embeddings.token_type_embeddings.weight") ?? throw Fail("no token type embeddings.")).shape[0],
                LayerNormEps = eps,
                AddPoolingLayer = sd.ContainsKey("pooler.dense.weight"),
            };
            var inputs = g.Input.Select(i => i.Name).Where(n => !inits.ContainsKey(n)).ToList();
            return new OnnxBertImport(config, sd, mask, inputs, g.Output.Select(o => o.Name).ToList());
        }
        catch
        {
            foreach (var t in sd.Values) t.Dispose();
            throw;
        }
    }

    private static List<long> ShapeConstants(string shapeTensor, Dictionary<string, TensorProto> inits, Dictionary<string, NodeProto> producers)
    {
        if (inits.TryGetValue(shapeTensor, out var direct)) return Int64s(direct).ToList();
        if (!producers.TryGetValue(shapeTensor, out var concat) || concat.OpType != "Concat") return [];
        var result = new List<long>();
        foreach (var i in concat.Input)
            if (inits.TryGetValue(i, out var t) && t.DataType == (int)TensorProto.Types.DataType.Int64) result.AddRange(Int64s(t));
        return result;
    }

    private static float? ScalarConstant(string name, Dictionary<string, TensorProto> inits, Dictionary<string, NodeProto> producers)
    {
        TensorProto? t = inits.GetValueOrDefault(name);
        if (t is null && producers.TryGetValue(name, out var p) && p.OpType == "Constant")
            t = p.Attribute.FirstOrDefault(a => a.Name == "value")?.T;
        if (t is null || t.DataType != (int)TensorProto.Types.DataType.Float || t.Dims.Aggregate(1L, (a, b) => a * b) != 1) return null;
        return t.FloatData.Count > 0 ? t.FloatData[0] : BitConverter.ToSingle(t.RawData.Span);
    }

    private static long[] Int64s(TensorProto t) =>
        t.Int64Data.Count > 0 ? t.Int64Data.ToArray() : MemoryMarshal.Cast<byte, long>(t.RawData.Span).ToArray();

    private static Tensor ToTensor(TensorProto t, Func<string, InvalidDataException> fail)
    {
        if (t.DataType != (int)TensorProto.Types.DataType.Float) throw fail($"initializer '{t.Name}' is not float32.");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw data is little-endian.");
        var data = t.FloatData.Count > 0 ? t.FloatData.ToArray() : MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
        return tensor(data, t.Dims.ToArray());
    }
}
