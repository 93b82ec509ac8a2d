using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FairMedFM.Models.Text;

/// <summary>
/// The fields of a Hugging Face <c>BertConfig</c> (config.json) that decide the encoder's shapes and arithmetic.
/// Defaults are bert-base-uncased's (and so PubMedBERT/BiomedBERT's and Bio_ClinicalBERT's, which share its shapes).
/// </summary>
public sealed record BertConfig
{
    public int VocabSize { get; init; } = 30522;
    public int HiddenSize { get; init; } = 768;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int IntermediateSize { get; init; } = 3072;
    public int MaxPositionEmbeddings { get; init; } = 512;
    public int TypeVocabSize { get; init; } = 2;
    public double LayerNormEps { get; init; } = 1e-12;

    /// <summary>"gelu" (exact, erf: BERT's), or "gelu_new"/"gelu_pytorch_tanh" (tanh approximation).</summary>
    public string HiddenAct { get; init; } = "gelu";

    public int PadTokenId { get; init; }

    /// <summary>Whether the module has HF's <c>pooler.dense</c> (tanh of a Linear on the [CLS] state).</summary>
    public bool AddPoolingLayer { get; init; } = true;

    public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>BERT-base (12 × 768, 12 heads, 3072, vocab 30522): bert-base-uncased, PubMedBERT/BiomedBERT.</summary>
    public static BertConfig Base { get; } = new();

    internal void Validate()
    {
        if (HiddenSize <= 0 || NumAttentionHeads <= 0 || HiddenSize % NumAttentionHeads != 0)
            throw new ArgumentException($"hidden_size {HiddenSize} must be a positive multiple of num_attention_heads {NumAttentionHeads}.");
        if (NumHiddenLayers < 0 || IntermediateSize <= 0 || VocabSize <= 0 || MaxPositionEmbeddings <= 0 || TypeVocabSize <= 0)
            throw new ArgumentException("BERT sizes must be positive.");
        if (HiddenAct is not ("gelu" or "gelu_new" or "gelu_pytorch_tanh"))
            throw new NotSupportedException($"hidden_act '{HiddenAct}' is not supported (gelu, gelu_new, gelu_pytorch_tanh).");
    }

    /// <summary>Reads a Hugging Face config.json (model_type "bert", absolute position embeddings).</summary>
    public static BertConfig FromHfConfigJson(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"BERT config.json not found: '{path}'.", path);
        try
        {
            return FromHfConfigJson(JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                                    ?? throw new InvalidDataException("not a JSON object"), path);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e);
        }
    }

    public static BertConfig FromHfConfigJson(JsonObject o, string source = "<config.json>")
    {
        string? modelType = o["model_type"]?.GetValue<string>();
        if (modelType is not null && modelType != "bert")
            throw new NotSupportedException($"'{source}': model_type '{modelType}' is not 'bert'.");
        string posType = o["position_embedding_type"]?.GetValue<string>() ?? "absolute";
        if (posType != "absolute")
            throw new NotSupportedException($"'{source}': position_embedding_type '{posType}' is not supported (absolute only).");
        if (o["is_decoder"]?.GetValue<bool>() == true || o["add_cross_attention"]?.GetValue<bool>() == true)
            throw new NotSupportedException($"'{source}': decoder / cross-attention BERTs are not supported.");

        int Int(string key, int dflt) => o[key] is { } n ? n.GetValue<int>() : dflt;
        double Dbl(string key, double dflt) => o[key] is { } n ? n.GetValue<double>() : dflt;
        var d = new BertConfig();
        var c = new BertConfig
        {
            VocabSize = Int("vocab_size", d.VocabSize),
            HiddenSize = Int("hidden_size", d.HiddenSize),
            NumHiddenLayers = Int("num_hidden_layers", d.NumHiddenLayers),
            NumAttentionHeads = Int("num_attention_heads", d.NumAttentionHeads),
            IntermediateSize = Int("intermediate_size", d.IntermediateSize),
            MaxPositionEmbeddings = Int("max_position_embeddings", d.MaxPositionEmbeddings),
            TypeVocabSize = Int("type_vocab_size", d.TypeVocabSize),
            LayerNormEps = Dbl("layer_norm_eps", d.LayerNormEps),
            HiddenAct = o["hidden_act"]?.GetValue<string>() ?? d.HiddenAct,
            PadTokenId = o["pad_token_id"] is { } p && p.GetValueKind() == JsonValueKind.Number ? p.GetValue<int>() : 0,
        };
        try { c.Validate(); }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            throw new InvalidDataException($"'{source}': {e.Message}", e);
        }
        return c;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"BERT {NumHiddenLayers}×{HiddenSize} ({NumAttentionHeads} heads, ffn {IntermediateSize}, vocab {VocabSize}, pos {MaxPositionEmbeddings}, eps {LayerNormEps:G3})");
}
