using System.Text;
using System.Text.Json.Nodes;
using FairMedFM.Models.Contrastive;
using FairMedFM.Models.Vit;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Hf;

/// <summary>transformers <c>SiglipTextConfig</c> (the <c>text_config</c> of a SiglipConfig).</summary>
public sealed record SiglipTextConfig
{
    public int VocabSize { get; init; } = 32000;
    public int HiddenSize { get; init; } = 768;
    public int IntermediateSize { get; init; } = 3072;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int MaxPositionEmbeddings { get; init; } = 64;
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>"gelu_pytorch_tanh" (SigLIP) or "gelu".</summary>
    public string HiddenAct { get; init; } = "gelu_pytorch_tanh";

    /// <summary>Output width of <c>head</c> (transformers' projection_size, default hidden_size).</summary>
    public int? ProjectionSize { get; init; }

    public int PadTokenId { get; init; } = 1;
    public int EosTokenId { get; init; } = 1;

    public int OutputDim => ProjectionSize ?? HiddenSize;

    /// <summary>Reads <c>text_config</c> of a SiglipConfig (or a bare siglip_text_model config); absent keys take transformers' defaults.</summary>
    public static SiglipTextConfig FromConfigJson(string path) => HfConfigJson.Named(path, () => ReadConfigJson(path));

    private static SiglipTextConfig ReadConfigJson(string path)
    {
        var o = HfConfigJson.Read(path);
        var type = HfConfigJson.Str(o, "model_type");
        JsonObject t = type switch
        {
            "siglip" => o["text_config"] as JsonObject ?? new JsonObject(),
            "siglip_text_model" or null => o,
            _ => throw new InvalidDataException($"'{path}': model_type '{type}' is neither 'siglip' nor 'siglip_text_model'."),
        };
        int I(string k, int d) => HfConfigJson.Int(t, k, d);
        var act = HfConfigJson.Str(t, "hidden_act", "gelu_pytorch_tanh");
        if (act is not ("gelu_pytorch_tanh" or "gelu")) throw new NotSupportedException($"'{path}': text_config.hidden_act '{act}'.");
        int hidden = I("hidden_size", 768);
        return new SiglipTextConfig
        {
            VocabSize = I("vocab_size", 32000),
            HiddenSize = hidden,
            IntermediateSize = I("intermediate_size", 3072),
            NumHiddenLayers = I("num_hidden_layers", 12),
            NumAttentionHeads = I("num_attention_heads", 12),
            MaxPositionEmbeddings = I("max_position_embeddings", 64),
            LayerNormEps = HfConfigJson.Dbl(t, "layer_norm_eps", 1e-6),
            HiddenAct = act,
            ProjectionSize = HfConfigJson.IntOrNull(t, "projection_size"),
            PadTokenId = I("pad_token_id", 1),
            EosTokenId = I("eos_token_id", 1),
        };
    }
}

/// <summary>
/// transformers <c>SiglipTextModel</c> with its exact <c>state_dict</c> names (under <c>text_model.</c>):
/// <c>embeddings.token_embedding</c> + <c>embeddings.position_embedding</c> (positions 0..L−1), pre-LN encoder layers
/// (<c>layer_norm1</c>, <c>self_attn.{q,k,v,out}_proj</c> — softmax(q·kᵀ·d^−½ + mask) in float32 — <c>layer_norm2</c>,
/// <c>mlp.fc1</c> → tanh GELU → <c>mlp.fc2</c>), <c>final_layer_norm</c>, and the pooled output = the LAST position's
/// state (SigLIP's "sticky" end-of-sequence padding: no causal mask, no EOS search) through <c>head</c> =
/// <c>get_text_features</c>. The attention mask, when given, is HF's padding mask on the keys (−∞ → float32 min).
/// </summary>
public sealed class SiglipTextModel : nn.Module
{
    private readonly SiglipTextTransformer text_model;

    public SiglipTextConfig Config { get; }

    public SiglipTextModel(string name, SiglipTextConfig config) : base(name)
    {
        if (config.HiddenSize % config.NumAttentionHeads != 0)
            throw new ArgumentException($"hidden_size {config.HiddenSize} not divisible by num_attention_heads {config.NumAttentionHeads}.");
        Config = config;
        text_model = new SiglipTextTransformer("text_model", config);
        RegisterComponents();
    }

    /// <summary>ids [B, L] (L ≤ max_position_embeddings), optional 0/1 mask [B, L] → get_text_features [B, OutputDim].</summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null)
    {
        var (last, pooled) = text_model.Forward(inputIds, attentionMask);
        last.Dispose();
        return pooled;
    }

    /// <summary>last_hidden_state [B, L, D] and pooler_output [B, OutputDim].</summary>
    public (Tensor LastHiddenState, Tensor Pooled) ForwardAll(Tensor inputIds, Tensor? attentionMask = null) => text_model.Forward(inputIds, attentionMask);

    private sealed class SiglipTextTransformer : nn.Module
    {
        private readonly Embeddings embeddings;
        private readonly EncoderStack encoder;
        private readonly LayerNorm final_layer_norm;
        private readonly Linear head;
        private readonly int _maxPositions;

        public SiglipTextTransformer(string name, SiglipTextConfig c) : base(name)
        {
            embeddings = new Embeddings("embeddings", c);
            encoder = new EncoderStack("encoder", c);
            final_layer_norm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
            head = nn.Linear(c.HiddenSize, c.OutputDim);
            _maxPositions = c.MaxPositionEmbeddings;
            RegisterComponents();
        }

        public (Tensor LastHiddenState, Tensor Pooled) Forward(Tensor ids, Tensor? mask)
        {
            if (ids.dim() != 2) throw new ArgumentException($"SigLIP text expects ids [B, L], got {VitOps.Shape(ids)}.");
            if (ids.shape[1] > _maxPositions)
                throw new ArgumentException($"Token rows of length {ids.shape[1]} exceed max_position_embeddings {_maxPositions}.");
            if (mask is not null && !mask.shape.SequenceEqual(ids.shape))
                throw new ArgumentException($"attention mask {VitOps.Shape(mask)} does not match ids {VitOps.Shape(ids)}.");
            using var scope = NewDisposeScope();
            var x = embeddings.Forward(ids.to(int64));
            Tensor? additive = null;
            if (mask is not null)
            {
                // HF _prepare_4d_attention_mask: [B,1,L,L], 0 where attended, float32 min where masked (keys only).
                long b = ids.shape[0], l = ids.shape[1];
                var inverted = 1.0f - mask.to(x.dtype).to(x.device).view(b, 1, 1, l).expand(b, 1, l, l);
                additive = inverted.masked_fill(inverted.to(@bool), float.MinValue);
            }
            x = encoder.Forward(x, additive);
            x = final_layer_norm.forward(x);
            var pooled = head.forward(x.select(1, -1));
            return (x.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope());
        }
    }

    private sealed class Embeddings : nn.Module
    {
        private readonly Embedding token_embedding;
        private readonly Embedding position_embedding;

        public Embeddings(string name, SiglipTextConfig c) : base(name)
        {
            token_embedding = nn.Embedding(c.VocabSize, c.HiddenSize);
            position_embedding = nn.Embedding(c.MaxPositionEmbeddings, c.HiddenSize);
            RegisterComponents();
        }

        public Tensor Forward(Tensor ids)
        {
            using var scope = NewDisposeScope();
            var pos = arange(ids.shape[1], dtype: int64, device: ids.device).unsqueeze(0);
            return (token_embedding.forward(ids) + position_embedding.forward(pos)).MoveToOuterDisposeScope();
        }
    }

    private sealed class EncoderStack : nn.Module
    {
        private readonly ModuleList<EncoderLayer> layers;

        public EncoderStack(string name, SiglipTextConfig c) : base(name)
        {
            layers = nn.ModuleList(Enumerable.Range(0, c.NumHiddenLayers).Select(i => new EncoderLayer(i.ToString(), c)).ToArray());
            RegisterComponents();
        }

        public Tensor Forward(Tensor x, Tensor? mask)
        {
            foreach (var layer in layers) x = layer.Forward(x, mask);
            return x;
        }
    }

    private sealed class EncoderLayer : nn.Module
    {
        private readonly Attention self_attn;
        private readonly LayerNorm layer_norm1;
        private readonly Mlp mlp;
        private readonly LayerNorm layer_norm2;

        public EncoderLayer(string name, SiglipTextConfig c) : base(name)
        {
            self_attn = new Attention("self_attn", c);
            layer_norm1 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
            mlp = new Mlp("mlp", c);
            layer_norm2 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
            RegisterComponents();
        }

        public Tensor Forward(Tensor x, Tensor? mask)
        {
            using var scope = NewDisposeScope();
            var h = x + self_attn.Forward(layer_norm1.forward(x), mask);
            return (h + mlp.Forward(layer_norm2.forward(h))).MoveToOuterDisposeScope();
        }
    }

    private sealed class Attention : nn.Module
    {
        private readonly Linear k_proj, v_proj, q_proj, out_proj;
        private readonly int _heads;
        private readonly double _scale;

        public Attention(string name, SiglipTextConfig c) : base(name)
        {
            k_proj = nn.Linear(c.HiddenSize, c.HiddenSize);
            v_proj = nn.Linear(c.HiddenSize, c.HiddenSize);
            q_proj = nn.Linear(c.HiddenSize, c.HiddenSize);
            out_proj = nn.Linear(c.HiddenSize, c.HiddenSize);
            _heads = c.NumAttentionHeads;
            _scale = Math.Pow(c.HiddenSize / c.NumAttentionHeads, -0.5);
            RegisterComponents();
        }

        public Tensor Forward(Tensor x, Tensor? mask)
        {
            using var scope = NewDisposeScope();
            long b = x.shape[0], l = x.shape[1], d = x.shape[2], hd = d / _heads;
            Tensor Split(Tensor t) => t.view(b, l, _heads, hd).transpose(1, 2);
            var q = Split(q_proj.forward(x));
            var k = Split(k_proj.forward(x));
            var v = Split(v_proj.forward(x));
            var w = q.matmul(k.transpose(2, 3)).mul(_scale);
            if (mask is not null) w = w + mask;
            w = w.softmax(-1, float32).to(q.dtype);
            var y = w.matmul(v).transpose(1, 2).reshape(b, l, d);
            return out_proj.forward(y).MoveToOuterDisposeScope();
        }
    }

    private sealed class Mlp : nn.Module
    {
        private readonly Linear fc1, fc2;
        private readonly bool _tanh;

        public Mlp(string name, SiglipTextConfig c) : base(name)
        {
            fc1 = nn.Linear(c.HiddenSize, c.IntermediateSize);
            fc2 = nn.Linear(c.IntermediateSize, c.HiddenSize);
            _tanh = c.HiddenAct == "gelu_pytorch_tanh";
            RegisterComponents();
        }

        public Tensor Forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var h = fc1.forward(x);
            h = _tanh ? nn.functional.gelu(h, GELU.Approximate.tanh) : nn.functional.gelu(h);
            return fc2.forward(h).MoveToOuterDisposeScope();
        }
    }
}

/// <summary>
/// transformers <c>SiglipTokenizer</c> (slow, what <c>AutoTokenizer</c> gives for google/siglip-*), over the
/// checkpoint's SentencePiece <c>spiece.model</c> run by Microsoft.ML.Tokenizers, step by step as transformers does:
/// "▁" + text (a "▁" in the text becomes a space), lowercase (do_lower_case), <c>canonicalize_text</c> (Python's
/// <c>string.punctuation</c> removed, whitespace runs collapsed to one space, stripped), SentencePiece with the
/// model's add_dummy_prefix switched off (transformers merges that into the model proto; we rewrite that one field of the
/// serialized proto, <see cref="PrepareModelProto"/>) on "&lt;unk&gt;" + text, the pieces of "&lt;unk&gt;" dropped, then
/// <c>&lt;/s&gt;</c> appended. Truncation keeps the end-of-sequence token; padding uses the pad id (<c>&lt;/s&gt;</c>, 1).
/// Special tokens written inside a text are not split out (transformers would keep "&lt;/s&gt;" whole).
/// </summary>
public sealed class SiglipTokenizer
{
    private const string PythonPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    private const char SpieceUnderline = '\u2581';

    /// <summary>
    /// The serialized ModelProto as SigLIP's tokenizer loads it: NormalizerSpec.add_dummy_prefix (ModelProto field 3 →
    /// field 3) set to false, what transformers does with the protobuf API. And, for Microsoft.ML.Tokenizers 3.0.0,
    /// whose Unigram loader indexes the vocabulary with TrainerSpec.bos_id and fails on −1 (models without a
    /// beginning-of-sentence piece, as SigLIP's), a negative bos_id (ModelProto field 2 → field 41) is replaced by the
    /// unk id: no beginning-of-sentence token is ever emitted here (addBeginningOfSentence is false), so no id changes.
    /// Every other byte is kept.
    /// </summary>
    public static byte[] PrepareModelProto(byte[] model, string source) => PrepareModelProto(model, source, out _, out _);

    private static byte[] PrepareModelProto(byte[] model, string source, out int pieces, out int unkTokenId)
    {
        pieces = 0;
        unkTokenId = 0;
        var output = new MemoryStream(model.Length + 16);
        int pos = 0;
        bool seenNormalizer = false;
        while (pos < model.Length)
        {
            int start = pos;
            ulong tag = ReadVarint(model, ref pos, source);
            int field = (int)(tag >> 3), wire = (int)(tag & 7);
            if (wire == 2 && field is 2 or 3)
            {
                int len = checked((int)ReadVarint(model, ref pos, source));
                if (pos + len > model.Length) throw new InvalidDataException($"'{source}': truncated ModelProto field {field}.");
                var sub = new MemoryStream(len + 12);
                int p = pos, end = pos + len;
                ulong unkId = 0;
                bool negativeBos = false;
                while (p < end)
                {
                    int fs = p;
                    ulong t = ReadVarint(model, ref p, source);
                    int vs = p;
                    SkipField(model, ref p, (int)(t & 7), source);
                    int sf = (int)(t >> 3);
                    if (field == 3 && sf == 3) continue;                                     // add_dummy_prefix: rewritten below
                    if (field == 2 && (t & 7) == 0 && sf == 40) { int q = vs; unkId = ReadVarint(model, ref q, source); }
                    if (field == 2 && (t & 7) == 0 && sf == 41)
                    {
                        int q = vs;
                        if ((int)ReadVarint(model, ref q, source) < 0) { negativeBos = true; continue; }
                    }
                    sub.Write(model, fs, p - fs);
                }
                if (field == 2) unkTokenId = (int)unkId;
                if (field == 3) { sub.WriteByte(0x18); sub.WriteByte(0x00); seenNormalizer = true; }
                if (negativeBos) { WriteVarint(sub, (41UL << 3) | 0); WriteVarint(sub, unkId); }
                WriteVarint(output, ((ulong)field << 3) | 2);
                WriteVarint(output, (ulong)sub.Length);
                sub.Position = 0;
                sub.CopyTo(output);
                pos = end;
                continue;
            }
            if (field == 1 && wire == 2) pieces++;
            SkipField(model, ref pos, wire, source);
            output.Write(model, start, pos - start);
        }
        if (!seenNormalizer) output.Write([0x1A, 0x02, 0x18, 0x00]);
        return output.ToArray();
    }

    private static ulong ReadVarint(byte[] b, ref int pos, string source)
    {
        ulong v = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (pos >= b.Length) throw new InvalidDataException($"'{source}': truncated protobuf varint.");
            byte x = b[pos++];
            v |= (ulong)(x & 0x7F) << shift;
            if ((x & 0x80) == 0) return v;
        }
        throw new InvalidDataException($"'{source}': malformed protobuf varint.");
    }

    private static void SkipField(byte[] b, ref int pos, int wire, string source)
    {
        switch (wire)
        {
            case 0: ReadVarint(b, ref pos, source); break;
            case 1: pos += 8; break;
            case 2: { int len = checked((int)ReadVarint(b, ref pos, source)); pos += len; break; }
            case 5: pos += 4; break;
            default: throw new InvalidDataException($"'{source}': unsupported protobuf wire type {wire} (not a SentencePiece model?).");
        }
        if (pos > b.Length) throw new InvalidDataException($"'{source}': truncated protobuf field.");
    }

    private static void WriteVarint(Stream s, ulong v)
    {
        while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        s.WriteByte((byte)v);
    }

    private readonly Microsoft.ML.Tokenizers.SentencePieceTokenizer _sp;
    private readonly int _unkLength;

    public string Source { get; }
    public bool DoLowerCase { get; init; } = true;
    public int EosTokenId { get; }
    public int PadTokenId { get; }
    /// <summary>Pieces in the model proto (the model's vocab_size must equal it).</summary>
    public int VocabSize { get; }

    /// <summary>The unknown piece's id (TrainerSpec.unk_id).</summary>
    public int UnkTokenId { get; }

    public SiglipTokenizer(string spieceModelPath, int eosTokenId = 1, int padTokenId = 1)
    {
        if (!File.Exists(spieceModelPath)) throw new FileNotFoundException($"SentencePiece model not found: '{spieceModelPath}'.", spieceModelPath);
        var bytes = PrepareModelProto(File.ReadAllBytes(spieceModelPath), spieceModelPath, out var pieces, out var unk);
        VocabSize = pieces;
        UnkTokenId = unk;
        try
        {
            using var s = new MemoryStream(bytes);
            _sp = Microsoft.ML.Tokenizers.SentencePieceTokenizer.Create(s, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{spieceModelPath}' is not a readable SentencePiece model: {e.Message}", e);
        }
        if (_sp.AddDummyPrefix) throw new InvalidOperationException($"'{spieceModelPath}': add_dummy_prefix could not be switched off as SigLIP's tokenizer does.");
        Source = spieceModelPath;
        EosTokenId = eosTokenId;
        PadTokenId = padTokenId;
        _unkLength = _sp.EncodeToIds("<unk>", false, false).Count;
    }

    private static bool PyWhitespace(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';

    /// <summary>canonicalize_text: punctuation removed, whitespace runs → one space, stripped (Python's whitespace).</summary>
    public static string Canonicalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool pending = false;
        foreach (var c in text)
        {
            if (PythonPunctuation.IndexOf(c) >= 0) continue;
            if (PyWhitespace(c)) { pending = sb.Length > 0; continue; }
            if (pending) { sb.Append(' '); pending = false; }
            sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>The text SentencePiece sees (after the "▁" prefix, lowercasing and canonicalisation).</summary>
    public string Prepare(string text)
    {
        var t = SpieceUnderline + text.Replace(SpieceUnderline, ' ');
        return Canonicalize(DoLowerCase ? t.ToLowerInvariant() : t);
    }

    /// <summary>The ids of one text: SentencePiece ids, then end-of-sequence.</summary>
    public List<int> Encode(string text)
    {
        var all = _sp.EncodeToIds("<unk>" + Prepare(text), false, false);
        var ids = new List<int>(all.Count);
        // SentencePiece merges a run of unknown characters into ONE unknown piece; Microsoft.ML.Tokenizers emits one
        // per character, so adjacent unknown ids are merged here.
        foreach (var id in all.Count >= _unkLength ? all.Skip(_unkLength) : all)
            if (!(id == UnkTokenId && ids.Count > 0 && ids[^1] == UnkTokenId)) ids.Add(id);
        ids.Add(EosTokenId);
        return ids;
    }

    /// <summary>
    /// [N, L] int64 ids and their 0/1 mask: each text truncated to <paramref name="maxLength"/> (keeping the final
    /// end-of-sequence), padded with the pad id to <paramref name="maxLength"/> (padToMax, SigLIP's training setup) or to
    /// the longest text.
    /// </summary>
    public (Tensor Ids, Tensor Mask) EncodeBatch(IReadOnlyList<string> texts, int maxLength, bool padToMax)
    {
        if (maxLength < 1) throw new ArgumentOutOfRangeException(nameof(maxLength));
        var rows = texts.Select(t =>
        {
            var ids = Encode(t);
            if (ids.Count > maxLength) ids = ids.Take(maxLength - 1).Append(EosTokenId).ToList();
            return ids;
        }).ToList();
        int len = padToMax ? maxLength : Math.Max(1, rows.Count == 0 ? 1 : rows.Max(r => r.Count));
        var ids = new long[rows.Count * len];
        var mask = new long[rows.Count * len];
        for (int i = 0; i < rows.Count; i++)
            for (int j = 0; j < len; j++)
            {
                bool real = j < rows[i].Count;
                ids[i * len + j] = real ? rows[i][j] : PadTokenId;
                mask[i * len + j] = real ? 1 : 0;
            }
        return (tensor(ids, [rows.Count, len]), tensor(mask, [rows.Count, len]));
    }
}

/// <summary>
/// SigLIP's text side as an <see cref="IPromptEncoder"/>: ids padded to max_position_embeddings (64; SigLIP was trained
/// with padding="max_length" and HF's docs ask for it) and no attention mask, as the model was trained (big_vision
/// has none). <see cref="UseAttentionMask"/> switches to HF's padding mask.
/// </summary>
public sealed class SiglipPromptEncoder : IPromptEncoder
{
    private readonly SiglipTextModel _model;
    private readonly Device _device;

    public SiglipPromptEncoder(SiglipTextModel model, SiglipTokenizer tokenizer, Device? device = null)
    {
        if (tokenizer.VocabSize != model.Config.VocabSize)
            throw new InvalidDataException($"'{tokenizer.Source}' has {tokenizer.VocabSize} pieces but the text model has vocab_size {model.Config.VocabSize}.");
        _model = model;
        Tokenizer = tokenizer;
        _device = device ?? CPU;
        FrozenModule.Freeze(_model, _device);
    }

    public SiglipTokenizer Tokenizer { get; }
    public SiglipTextModel Model => _model;
    public bool UseAttentionMask { get; init; }
    public bool PadToMaxLength { get; init; } = true;
    public int Dim => _model.Config.OutputDim;

    public Tensor Encode(IReadOnlyList<string> prompts)
    {
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var (ids, mask) = Tokenizer.EncodeBatch(prompts, _model.Config.MaxPositionEmbeddings, PadToMaxLength);
        var y = _model.Forward(ids.to(_device), UseAttentionMask ? mask.to(_device) : null);
        return y.to(float32).cpu().MoveToOuterDisposeScope();
    }

    public void Dispose() => _model.Dispose();
}
