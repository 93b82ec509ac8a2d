using System.Security.Cryptography;
using System.Text.Json.Nodes;
using FairMedFM.Models.Clip;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary><see cref="ClipTokenizer"/> against clip.tokenize's golden output (openai/CLIP a1d0717, ftfy 6.1.1).</summary>
public class ClipTokenizerTests
{
    private readonly ITestOutputHelper _out;
    public ClipTokenizerTests(ITestOutputHelper output) => _out = output;

    private static string Dir => TestPaths.Golden("clip_tokenizer");

    private static readonly Lazy<ClipTokenizer> FromFile = new(() => new ClipTokenizer(Path.Combine(Dir, ClipTokenizer.VocabFileName)));

    private static JsonArray Cases() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "tokenizer_golden.json")))!["cases"]!.AsArray();

    private static int[] Ints(JsonNode? n) => n!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
    private static string[] Strings(JsonNode? n) => n!.AsArray().Select(x => x!.GetValue<string>()).ToArray();

    /// <summary>
    /// Golden strings whose result depends on ftfy.fix_text (flag ftfy_changes_text) and that this port does NOT
    /// reproduce. Empty: the two such strings (HTML entities; UTF-8 read as Windows-1252 plus curly quotes) match.
    /// A change here is a regression (or an improvement) to look at.
    /// </summary>
    private static readonly string[] KnownFtfyMismatches = [];

    [Fact]
    public void EveryGoldenStringMatches()
    {
        var tok = FromFile.Value;
        var ftfyMismatches = new List<string>();
        int exact = 0, ftfyMatched = 0;
        foreach (var c in Cases())
        {
            string text = c!["text"]!.GetValue<string>();
            bool ftfy = c["ftfy_changes_text"]!.GetValue<bool>();
            var ids77 = Ints(c["ids_context77_truncate"]);
            var bpeIds = Ints(c["bpe_ids_no_sot_eot"]);
            var bpeTokens = Strings(c["bpe_tokens"]);
            string cleaned = c["cleaned_lower"]!.GetValue<string>();

            var gotTokens = tok.EncodeToTokens(text);
            var gotIds = tok.Encode(text);
            var gotRow = tok.TokenizeToIds([text], 77, truncate: true)[0];
            bool same = gotTokens.SequenceEqual(bpeTokens) && gotIds.SequenceEqual(bpeIds) && gotRow.SequenceEqual(ids77)
                        && tok.Clean(text) == cleaned;
            _out.WriteLine($"{(same ? "match" : "DIFF ")} ftfy={ftfy,-5} {Show(text)}");
            if (!ftfy)
            {
                Assert.Equal(cleaned, tok.Clean(text));
                Assert.Equal(bpeTokens, gotTokens);
                Assert.Equal(bpeIds, gotIds);
                Assert.Equal(ids77, gotRow);
                exact++;
            }
            else if (same) ftfyMatched++;
            else ftfyMismatches.Add(text);

            Assert.Equal(c["n_bpe"]!.GetValue<int>(), bpeIds.Length);
            Assert.Equal(c["truncated"]!.GetValue<bool>(), bpeIds.Length + 2 > 77);
            Assert.Equal(c["decoded"]!.GetValue<string>(), tok.Decode(bpeIds));
        }
        _out.WriteLine($"{exact} strings without ftfy effects match exactly; ftfy-dependent: {ftfyMatched} match, {ftfyMismatches.Count} differ");
        Assert.Equal(20, exact);
        Assert.Equal(KnownFtfyMismatches, ftfyMismatches);
    }

    private static string Show(string s) => s.Length > 60 ? s[..60] + "…" : s.Replace("\n", "\\n").Replace("\t", "\\t");

    [Fact]
    public void EmbeddedVocabularyIsOpenAisFile()
    {
        using var s = typeof(ClipTokenizer).Assembly.GetManifestResourceStream(ClipTokenizer.VocabFileName)!;
        Assert.Equal("924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a", Convert.ToHexStringLower(SHA256.HashData(s)));
        Assert.Equal("924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a",
                     WeightLoader.FileSha256(Path.Combine(Dir, ClipTokenizer.VocabFileName)));
        var d = ClipTokenizer.Default;
        Assert.Equal(49408, d.VocabSize);
        Assert.Equal(49406, d.StartOfText);
        Assert.Equal(49407, d.EndOfText);
        Assert.Equal(FromFile.Value.Encode("a chest X-ray of a diseased"), d.Encode("a chest X-ray of a diseased"));
    }

    [Fact]
    public void TokenizeReproducesTheClipVitFixtureInput()
    {
        var io = SafeTensors.Load(Path.Combine(TestPaths.Golden("clip_vit"), "io.safetensors"));
        using var scope = NewDisposeScope();
        foreach (var t in io.Values) scope.Attach(t);
        var ids = ClipTokenizer.Default.Tokenize(["a chest X-ray of a diseased", "a chest X-ray of a normal", "a photo of a malignant lesion!"],
                                                 77, truncate: true);
        Assert.Equal(ScalarType.Int32, ids.dtype);
        Assert.True(TensorAssert.Same(io["input_text"], ids));
        Assert.Equal(io["input_text"].shape, ids.shape);
    }

    [Fact]
    public void TruncationAndContextLength()
    {
        var tok = ClipTokenizer.Default;
        string longText = string.Join(" ", Enumerable.Repeat("chest", 100));
        var ex = Assert.Throws<ArgumentException>(() => tok.TokenizeToIds([longText]));
        Assert.Contains("too long for context length 77", ex.Message);
        var row = tok.TokenizeToIds([longText], truncate: true)[0];
        Assert.Equal(77, row.Length);
        Assert.Equal(49406, row[0]);
        Assert.Equal(49407, row[76]);
        Assert.All(row[1..76], id => Assert.Equal(10563, id)); // "chest</w>"

        var shortRows = tok.TokenizeToIds(["", "xxxxx"], contextLength: 5);
        Assert.Equal(new[] { 49406, 49407, 0, 0, 0 }, shortRows[0]);
        Assert.Equal(new[] { 49406, 44195, 49407, 0, 0 }, shortRows[1]);
        // The special tokens in text are kept as single ids, as in simple_tokenizer.
        Assert.Equal(new[] { 320, 49407, 320 }, tok.Encode("a <|endoftext|> a"));
    }

    /// <summary>
    /// Pre-tokenizer and lower-casing corner cases. Expected pieces computed once with Python 3.11's str.lower() and
    /// the `regex` module on openai/CLIP's pattern (not golden fixtures; ftfy not involved).
    /// </summary>
    [Theory]
    [InlineData("x...'s", new[] { "x", "...'", "s" })]                   // the punctuation run swallows the apostrophe
    [InlineData("it's 'sa", new[] { "it", "'s", "'s", "a" })]
    [InlineData("a\U00020000b 1\U0001D7CE2", new[] { "a\U00020000b", "1", "\U0001D7CE", "2" })] // astral letter / digit
    [InlineData("😀😀!! ok", new[] { "😀😀!!", "ok" })]
    [InlineData("ΟΔΟΣ Σ", new[] { "οδος", "σ" })]                         // final sigma: ς at a word end, σ alone
    [InlineData("ΑΣ'Α ΑΣ.", new[] { "ασ", "'", "α", "ας", "." })]         // the apostrophe is case-ignorable
    [InlineData("İx", new[] { "i", "\u0307", "x" })]                      // İ → i + combining dot (a mark, not a letter)
    [InlineData("x'ſ", new[] { "x", "'ſ" })]                             // IGNORECASE: 's matches 'ſ
    public void PreTokenizerCornerCases(string text, string[] pieces)
    {
        var tok = ClipTokenizer.Default;
        Assert.Equal(pieces, ClipTokenizer.PreTokenize(tok.Clean(text)));
    }

    [Fact]
    public void FtfySubsetFixes()
    {
        Assert.Equal("✔ No problems", ClipTextCleaner.FixText("âœ” No problems"));
        Assert.Equal("¯\\_(ツ)_/¯", ClipTextCleaner.FixText("&macr;\\_(ã\u0083\u0084)_/&macr;"));
        Assert.Equal("Broken text… it's flubberific!", ClipTextCleaner.FixText("Broken text&hellip; it&#x2019;s ﬂubberiﬁc!"));
        Assert.Equal("LOUD NOISES", ClipTextCleaner.FixText("ＬＯＵＤ　ＮＯＩＳＥＳ"));
        Assert.Equal("café \"x\" <b>&amp;</b>", ClipTextCleaner.FixText("café “x” <b>&amp;</b>")); // '<': no unescaping
        Assert.Equal("a\nb", ClipTextCleaner.FixText("a\r\nb"));
        Assert.Equal("ab", ClipTextCleaner.FixText("a\u0000\uFEFFb"));
        Assert.Equal("red", ClipTextCleaner.FixText("\u001b[31mred\u001b[0m"));
        Assert.Equal("é", ClipTextCleaner.FixText("e\u0301"));                 // NFC
        Assert.Equal("\"quoted\" ", ClipTextCleaner.FixText("\u0093quoted\u0094 "));   // C1 as Windows-1252, then uncurled
        // Legitimate Latin-1 text is left alone.
        Assert.Equal("naïve résumé Ångström µm ½", ClipTextCleaner.FixText("naïve résumé Ångström µm ½"));
        Assert.Equal("日本語 😀", ClipTextCleaner.FixText("日本語 😀"));
    }
}
