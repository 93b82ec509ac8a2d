using System.Globalization;
using System.Text;
using static TorchSharp.torch;

namespace FairMedFM.Models.Text;

/// <summary>How <see cref="BertWordPieceTokenizer.EncodeBatch"/> pads.</summary>
public enum BertPadding
{
    /// <summary>No padding (each sequence its own length; a batch needs equal lengths).</summary>
    None,

    /// <summary>Pad to the longest sequence of the batch (HF <c>padding=True</c>, MedCLIP).</summary>
    Longest,

    /// <summary>Pad to the max length (HF <c>padding="max_length"</c>, open_clip's HFTokenizer for BiomedCLIP).</summary>
    MaxLength,
}

/// <summary>The BasicTokenizer/WordPiece switches of a Hugging Face BERT tokenizer (tokenizer_config.json).</summary>
public sealed record BertTokenizerOptions
{
    /// <summary>do_lower_case (HF default true, also when a repository has no tokenizer_config.json).</summary>
    public bool LowerCase { get; init; } = true;

    /// <summary>strip_accents: null follows <see cref="LowerCase"/> (HF's default).</summary>
    public bool? StripAccents { get; init; }

    public bool TokenizeChineseChars { get; init; } = true;
    public bool CleanText { get; init; } = true;
    public int MaxInputCharsPerWord { get; init; } = 100;
    public string UnkToken { get; init; } = "[UNK]";
    public string ClsToken { get; init; } = "[CLS]";
    public string SepToken { get; init; } = "[SEP]";
    public string PadToken { get; init; } = "[PAD]";
    public string MaskToken { get; init; } = "[MASK]";
    public string ContinuingSubwordPrefix { get; init; } = "##";

    public bool DoStripAccents => StripAccents ?? LowerCase;

    /// <summary>uncased vocabularies (bert-base-uncased, PubMedBERT/BiomedBERT, MiniLM).</summary>
    public static BertTokenizerOptions Uncased { get; } = new();

    /// <summary>cased vocabularies used with do_lower_case=False (no lowercasing, no accent stripping).</summary>
    public static BertTokenizerOptions Cased { get; } = new() { LowerCase = false };

    /// <summary>
    /// Reads do_lower_case, strip_accents, tokenize_chinese_chars and the special tokens from a HF
    /// tokenizer_config.json; fields it lacks keep HF's defaults.
    /// </summary>
    public static BertTokenizerOptions FromTokenizerConfigJson(string path)
    {
        var o = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path)) as System.Text.Json.Nodes.JsonObject
                ?? throw new InvalidDataException($"'{path}' is not a JSON object.");
        var d = new BertTokenizerOptions();
        static string? Tok(System.Text.Json.Nodes.JsonNode? n) => n switch
        {
            null => null,
            System.Text.Json.Nodes.JsonObject obj => obj["content"]?.GetValue<string>(),
            _ => n.GetValue<string>(),
        };
        return new BertTokenizerOptions
        {
            LowerCase = o["do_lower_case"]?.GetValue<bool>() ?? d.LowerCase,
            StripAccents = o["strip_accents"]?.GetValue<bool?>(),
            TokenizeChineseChars = o["tokenize_chinese_chars"]?.GetValue<bool>() ?? d.TokenizeChineseChars,
            UnkToken = Tok(o["unk_token"]) ?? d.UnkToken,
            ClsToken = Tok(o["cls_token"]) ?? d.ClsToken,
            SepToken = Tok(o["sep_token"]) ?? d.SepToken,
            PadToken = Tok(o["pad_token"]) ?? d.PadToken,
            MaskToken = Tok(o["mask_token"]) ?? d.MaskToken,
        };
    }
}

/// <summary>One encoded text: ids with [CLS]/[SEP] (and padding), attention mask (1 real, 0 pad), token types (0).</summary>
public sealed record BertEncoding(long[] InputIds, long[] AttentionMask, long[] TokenTypeIds)
{
    public int Length => InputIds.Length;
}

/// <summary>A padded batch as [B, L] int64 tensors; the caller owns (and disposes) them.</summary>
public sealed class BertBatch : IDisposable
{
    public required Tensor InputIds { get; init; }
    public required Tensor AttentionMask { get; init; }
    public required Tensor TokenTypeIds { get; init; }
    public required IReadOnlyList<BertEncoding> Encodings { get; init; }

    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
        TokenTypeIds.Dispose();
    }
}

/// <summary>
/// BERT's tokenizer: Hugging Face BasicTokenizer (clean text, CJK spacing, lowercase and accent stripping for uncased
/// vocabularies, punctuation split) followed by WordPiece (greedy longest match with "##" continuations, [UNK] for a
/// word with no segmentation or longer than 100 characters), then [CLS] … [SEP], truncation and padding. Where the
/// slow Python tokenizer and the Rust "fast" one differ in whitespace/control classification, this follows the Rust
/// one, which is what <c>AutoTokenizer</c> (and so open_clip's HFTokenizer and MedCLIP) loads. Special tokens written
/// in the text ("[SEP]") are kept whole, as HF does.
/// </summary>
public sealed class BertWordPieceTokenizer
{
    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _idToToken;
    private readonly string[] _specials;

    public BertTokenizerOptions Options { get; }
    public int VocabSize => _idToToken.Length;
    public int UnkId { get; }
    public int ClsId { get; }
    public int SepId { get; }
    public int PadId { get; }

    public BertWordPieceTokenizer(IEnumerable<string> vocabLines, BertTokenizerOptions? options = null)
    {
        Options = options ?? BertTokenizerOptions.Uncased;
        _vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var tokens = new List<string>();
        foreach (var raw in vocabLines)
        {
            // HF load_vocab: one token per line, the line's trailing newline removed (rstrip("\n")).
            var tok = raw.TrimEnd('\n', '\r');
            _vocab[tok] = tokens.Count; // a repeated token keeps its last index, as HF's dict does
            tokens.Add(tok);
        }
        _idToToken = tokens.ToArray();
        int Id(string t, string role) => _vocab.TryGetValue(t, out var i) ? i
            : throw new InvalidDataException($"The vocabulary has no {role} token '{t}'.");
        UnkId = Id(Options.UnkToken, "unknown");
        ClsId = Id(Options.ClsToken, "[CLS]");
        SepId = Id(Options.SepToken, "[SEP]");
        PadId = Id(Options.PadToken, "padding");
        _specials = new[] { Options.UnkToken, Options.ClsToken, Options.SepToken, Options.PadToken, Options.MaskToken }
            .Where(_vocab.ContainsKey).Distinct().OrderByDescending(s => s.Length).ToArray();
    }

    /// <summary>Reads a vocab.txt (UTF-8, one token per line).</summary>
    public static BertWordPieceTokenizer FromVocabFile(string path, BertTokenizerOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"WordPiece vocabulary not found: '{path}'.", path);
        return new BertWordPieceTokenizer(ReadLines(File.ReadAllText(path, Encoding.UTF8)), options);
    }

    /// <summary>Reads a vocab.txt from a stream (UTF-8).</summary>
    public static BertWordPieceTokenizer FromVocabStream(Stream s, BertTokenizerOptions? options = null)
    {
        using var r = new StreamReader(s, Encoding.UTF8);
        return new BertWordPieceTokenizer(ReadLines(r.ReadToEnd()), options);
    }

    // Split on '\n' only (as Python's readlines + rstrip("\n")); a final newline does not make an empty token.
    private static IEnumerable<string> ReadLines(string text)
    {
        var lines = text.Split('\n');
        int n = lines.Length;
        if (n > 0 && lines[^1].Length == 0) n--;
        return lines.Take(n);
    }

    public string IdToToken(int id) => _idToToken[id];

    public int TokenToId(string token) => _vocab.TryGetValue(token, out var i) ? i : UnkId;

    /// <summary>The WordPiece tokens of <paramref name="text"/> (no [CLS]/[SEP]).</summary>
    public IReadOnlyList<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var result = new List<string>();
        foreach (var (segment, isSpecial) in SplitSpecials(text))
        {
            if (isSpecial) { result.Add(segment); continue; }
            foreach (var word in BasicTokenize(segment)) WordPiece(word, result);
        }
        return result;
    }

    /// <summary>
    /// [CLS] + tokens + [SEP]. <paramref name="maxLength"/> (HF truncation=True, max_length) keeps the first
    /// maxLength − 2 tokens; <paramref name="padToMaxLength"/> pads with [PAD] (mask 0) up to maxLength.
    /// </summary>
    public BertEncoding Encode(string text, int? maxLength = null, bool padToMaxLength = false)
    {
        if (maxLength is < 2) throw new ArgumentOutOfRangeException(nameof(maxLength), "max length must leave room for [CLS] and [SEP].");
        if (padToMaxLength && maxLength is null) throw new ArgumentException("padding to max length needs a max length.");
        var toks = Tokenize(text);
        int keep = maxLength is { } m ? Math.Min(toks.Count, m - 2) : toks.Count;
        int len = padToMaxLength ? maxLength!.Value : keep + 2;
        var ids = new long[len];
        var mask = new long[len];
        ids[0] = ClsId;
        for (int i = 0; i < keep; i++) ids[i + 1] = TokenToId(toks[i]);
        ids[keep + 1] = SepId;
        for (int i = 0; i < keep + 2; i++) mask[i] = 1;
        for (int i = keep + 2; i < len; i++) ids[i] = PadId;
        return new BertEncoding(ids, mask, new long[len]);
    }

    /// <summary>Encodes texts and pads them into [B, L] tensors on <paramref name="device"/> (CPU by default).</summary>
    public BertBatch EncodeBatch(IReadOnlyList<string> texts, int? maxLength = null, BertPadding padding = BertPadding.Longest, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (texts.Count == 0) throw new ArgumentException("no texts to encode.", nameof(texts));
        var enc = texts.Select(t => Encode(t, maxLength, padding == BertPadding.MaxLength)).ToList();
        int l = enc.Max(e => e.Length);
        if (padding == BertPadding.None && enc.Any(e => e.Length != l))
            throw new ArgumentException("texts encode to different lengths; choose a padding mode.");
        var ids = new long[texts.Count * l];
        var mask = new long[texts.Count * l];
        Array.Fill(ids, PadId);
        for (int b = 0; b < enc.Count; b++)
        {
            enc[b].InputIds.CopyTo(ids, b * l);
            enc[b].AttentionMask.CopyTo(mask, b * l);
        }
        var padded = enc.Select(e =>
        {
            if (e.Length == l) return e;
            var pi = new long[l];
            Array.Fill(pi, PadId);
            e.InputIds.CopyTo(pi, 0);
            var pm = new long[l];
            e.AttentionMask.CopyTo(pm, 0);
            return new BertEncoding(pi, pm, new long[l]);
        }).ToList();
        device ??= CPU;
        return new BertBatch
        {
            InputIds = tensor(ids, [texts.Count, l]).to(device),
            AttentionMask = tensor(mask, [texts.Count, l]).to(device),
            TokenTypeIds = zeros(texts.Count, l, dtype: int64, device: device),
            Encodings = padded,
        };
    }

    // Special tokens written in the text are matched verbatim (leftmost, longest), before any normalisation.
    private IEnumerable<(string, bool)> SplitSpecials(string text)
    {
        int start = 0;
        while (start < text.Length)
        {
            int best = -1;
            string? bestTok = null;
            foreach (var s in _specials)
            {
                int i = text.IndexOf(s, start, StringComparison.Ordinal);
                if (i >= 0 && (best < 0 || i < best)) { best = i; bestTok = s; }
            }
            if (best < 0) break;
            if (best > start) yield return (text[start..best], false);
            yield return (bestTok!, true);
            start = best + bestTok!.Length;
        }
        if (start < text.Length) yield return (text[start..], false);
    }

    /// <summary>BasicTokenizer: normalised words with punctuation split off.</summary>
    internal IEnumerable<string> BasicTokenize(string text)
    {
        var sb = new StringBuilder(text.Length + 8);
        foreach (var r in text.EnumerateRunes())
        {
            if (Options.CleanText)
            {
                if (r.Value == 0 || r.Value == 0xFFFD || IsControl(r)) continue;
                if (IsWhitespace(r)) { sb.Append(' '); continue; }
            }
            if (Options.TokenizeChineseChars && IsChinese(r.Value))
            {
                sb.Append(' ').Append(r.ToString()).Append(' ');
                continue;
            }
            sb.Append(r.ToString());
        }
        string s = sb.ToString();
        if (Options.DoStripAccents)
        {
            var nfd = s.Normalize(NormalizationForm.FormD);
            var sa = new StringBuilder(nfd.Length);
            foreach (var r in nfd.EnumerateRunes())
                if (Rune.GetUnicodeCategory(r) != UnicodeCategory.NonSpacingMark) sa.Append(r.ToString());
            s = sa.ToString();
        }
        if (Options.LowerCase) s = s.ToLowerInvariant();

        var word = new StringBuilder();
        foreach (var r in s.EnumerateRunes())
        {
            if (IsWhitespace(r))
            {
                if (word.Length > 0) { yield return word.ToString(); word.Clear(); }
            }
            else if (IsPunctuation(r))
            {
                if (word.Length > 0) { yield return word.ToString(); word.Clear(); }
                yield return r.ToString();
            }
            else word.Append(r.ToString());
        }
        if (word.Length > 0) yield return word.ToString();
    }

    /// <summary>WordPiece: greedy longest-match-first over characters; [UNK] for the whole word if any piece fails.</summary>
    private void WordPiece(string word, List<string> output)
    {
        // Work on code points so a character outside the BMP counts once (HF counts characters, not UTF-16 units).
        var cps = word.EnumerateRunes().Select(r => r.ToString()).ToArray();
        if (cps.Length > Options.MaxInputCharsPerWord) { output.Add(Options.UnkToken); return; }
        var pieces = new List<string>();
        int start = 0;
        var sb = new StringBuilder();
        while (start < cps.Length)
        {
            string? cur = null;
            for (int end = cps.Length; end > start; end--)
            {
                sb.Clear();
                if (start > 0) sb.Append(Options.ContinuingSubwordPrefix);
                for (int i = start; i < end; i++) sb.Append(cps[i]);
                var cand = sb.ToString();
                if (_vocab.ContainsKey(cand)) { cur = cand; start = end; break; }
            }
            if (cur is null) { output.Add(Options.UnkToken); return; }
            pieces.Add(cur);
        }
        output.AddRange(pieces);
    }

    // Rust tokenizers' bert normalizer: whitespace = '\t' '\n' '\r' or Unicode White_Space (char::is_whitespace).
    private static bool IsWhitespace(Rune r) => r.Value is '\t' or '\n' or '\r' || Rune.IsWhiteSpace(r);

    // Control = any "Other" category (Cc, Cf, Cs, Co, Cn) except tab, newline and carriage return.
    private static bool IsControl(Rune r)
    {
        if (r.Value is '\t' or '\n' or '\r') return false;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;
    }

    // ASCII punctuation (so $ + < = > ^ ` | ~ count) or any Unicode P* category.
    private static bool IsPunctuation(Rune r)
    {
        int c = r.Value;
        if (c is >= 33 and <= 47 or >= 58 and <= 64 or >= 91 and <= 96 or >= 123 and <= 126) return true;
        return Rune.IsPunctuation(r);
    }

    // The CJK Unified Ideographs blocks of BERT's _is_chinese_char.
    private static bool IsChinese(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F
            or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;
}
