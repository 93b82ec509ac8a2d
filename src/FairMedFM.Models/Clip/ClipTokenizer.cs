using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using static TorchSharp.torch;

namespace FairMedFM.Models.Clip;

/// <summary>
/// openai/CLIP's byte-level BPE tokenizer (<c>clip/simple_tokenizer.py</c> and <c>clip.tokenize</c>): text clean-up
/// (<see cref="ClipTextCleaner"/>), the pre-tokenizer pattern
/// <c>&lt;|startoftext|&gt;|&lt;|endoftext|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>
/// (IGNORECASE, on Unicode code points), bytes mapped to printable characters, merges by rank, "&lt;/w&gt;" word ends.
/// Ids: &lt;|startoftext|&gt; 49406, &lt;|endoftext|&gt; 49407, padding 0. Thread-safe.
/// </summary>
public sealed class ClipTokenizer
{
    /// <summary>Name of the vocabulary file (openai/CLIP, MIT licence) embedded in this assembly.</summary>
    public const string VocabFileName = "bpe_simple_vocab_16e6.txt.gz";

    public const int DefaultContextLength = 77;

    private static readonly Lazy<ClipTokenizer> _default = new(() =>
    {
        using var s = typeof(ClipTokenizer).Assembly.GetManifestResourceStream(VocabFileName)
                      ?? throw new InvalidOperationException($"The embedded {VocabFileName} resource is missing from {typeof(ClipTokenizer).Assembly.GetName().Name}.");
        return new ClipTokenizer(s, $"embedded {VocabFileName}");
    });

    /// <summary>The tokenizer over the embedded openai/CLIP vocabulary.</summary>
    public static ClipTokenizer Default => _default.Value;

    private readonly char[] _byteEncoder = new char[256];
    private readonly Dictionary<char, byte> _byteDecoder = new();
    private readonly Dictionary<string, int> _encoder = new(StringComparer.Ordinal);
    private readonly string[] _decoder;
    private readonly Dictionary<(string, string), int> _bpeRanks = new();
    private readonly ConcurrentDictionary<string, string[]> _cache = new(StringComparer.Ordinal);

    public int StartOfText { get; }
    public int EndOfText { get; }
    public int VocabSize => _decoder.Length;

    /// <summary>Where the vocabulary came from (a path or "embedded …").</summary>
    public string Source { get; }

    /// <summary>Apply the ftfy subset of <see cref="ClipTextCleaner.FixText"/> (on by default, as CLIP).</summary>
    public bool FixText { get; init; } = true;

    /// <summary>Reads a gzip'ed merges file like openai/CLIP's <c>bpe_simple_vocab_16e6.txt.gz</c>.</summary>
    public ClipTokenizer(string bpePath) : this(OpenFile(bpePath), bpePath, dispose: true) { }

    public ClipTokenizer(Stream gzipStream, string source = "<stream>") : this(gzipStream, source, dispose: false) { }

    private static Stream OpenFile(string path) =>
        File.Exists(path) ? File.OpenRead(path) : throw new FileNotFoundException($"CLIP BPE vocabulary not found: '{path}'.", path);

    private ClipTokenizer(Stream gzipStream, string source, bool dispose)
    {
        Source = source;
        string[] lines;
        try
        {
            using var gz = new GZipStream(gzipStream, CompressionMode.Decompress, leaveOpen: !dispose);
            using var reader = new StreamReader(gz, new UTF8Encoding(false, throwOnInvalidBytes: true));
            lines = reader.ReadToEnd().Split('\n');
        }
        catch (Exception e) when (e is InvalidDataException or DecoderFallbackException)
        {
            throw new InvalidDataException($"'{source}' is not a gzip'ed UTF-8 BPE merges file ({e.Message}).", e);
        }
        finally
        {
            if (dispose) gzipStream.Dispose();
        }

        // As simple_tokenizer: merges = lines[1 : 49152-256-2+1] (the first line is a header).
        const int mergeCount = 49152 - 256 - 2;
        if (lines.Length < mergeCount + 1)
            throw new InvalidDataException($"'{source}' has {lines.Length} lines; a CLIP vocabulary has at least {mergeCount + 1}.");
        var merges = new (string, string)[mergeCount];
        for (int i = 0; i < mergeCount; i++)
        {
            var parts = lines[i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2) throw new InvalidDataException($"'{source}' line {i + 2} is not a merge pair: '{lines[i + 1]}'.");
            merges[i] = (parts[0], parts[1]);
        }

        // bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to U+0100 upwards in byte order.
        var bs = new List<int>();
        for (int b = '!'; b <= '~'; b++) bs.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bs.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bs.Add(b);
        var cs = new List<int>(bs);
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!bs.Contains(b)) { bs.Add(b); cs.Add(256 + n); n++; }
        for (int i = 0; i < 256; i++)
        {
            _byteEncoder[bs[i]] = (char)cs[i];
            _byteDecoder[(char)cs[i]] = (byte)bs[i];
        }

        var vocab = new List<string>(49408);
        vocab.AddRange(cs.Select(c => ((char)c).ToString()));
        vocab.AddRange(cs.Select(c => ((char)c) + "</w>"));
        foreach (var (a, b) in merges) vocab.Add(a + b);
        vocab.Add("<|startoftext|>");
        vocab.Add("<|endoftext|>");
        for (int i = 0; i < vocab.Count; i++) _encoder[vocab[i]] = i; // later duplicates win, as dict(zip(...))
        _decoder = vocab.ToArray();
        for (int i = 0; i < merges.Length; i++) _bpeRanks.TryAdd(merges[i], i);
        StartOfText = _encoder["<|startoftext|>"];
        EndOfText = _encoder["<|endoftext|>"];
        _cache["<|startoftext|>"] = ["<|startoftext|>"];
        _cache["<|endoftext|>"] = ["<|endoftext|>"];
    }

    /// <summary>The cleaned, lower-cased text the pre-tokenizer sees.</summary>
    public string Clean(string text) => ClipTextCleaner.Clean(text, FixText);

    /// <summary>The pre-tokenizer's pieces of already cleaned text (the regex's findall).</summary>
    public static List<string> PreTokenize(string cleaned)
    {
        var runes = cleaned.EnumerateRunes().ToArray();
        var pieces = new List<string>();
        int i = 0;
        while (i < runes.Length)
        {
            int len = MatchAt(runes, i);
            if (len == 0) { i++; continue; } // white space: findall moves on
            var sb = new StringBuilder();
            for (int k = i; k < i + len; k++) sb.Append(runes[k].ToString());
            pieces.Add(sb.ToString());
            i += len;
        }
        return pieces;
    }

    private static readonly string[] Specials = ["<|startoftext|>", "<|endoftext|>"];
    private static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    /// <summary>Length in runes of the pattern's match at <paramref name="i"/> (alternatives in order), 0 if none.</summary>
    private static int MatchAt(Rune[] runes, int i)
    {
        foreach (var lit in Specials.Concat(Contractions))
            if (LiteralAt(runes, i, lit)) return lit.Length;
        if (IsLetter(runes[i]))
        {
            int j = i + 1;
            while (j < runes.Length && IsLetter(runes[j])) j++;
            return j - i;
        }
        if (IsNumber(runes[i])) return 1;
        if (!IsOther(runes[i])) return 0;
        int e = i + 1;
        while (e < runes.Length && IsOther(runes[e])) e++;
        return e - i;
    }

    private static bool IsLetter(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter;

    private static bool IsNumber(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.DecimalDigitNumber
        or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    private static bool IsOther(Rune r) => !ClipTextCleaner.IsRegexWhiteSpace(r.Value) && !IsLetter(r) && !IsNumber(r);

    // IGNORECASE with simple case folding on the pattern's ASCII literals (the regex module also lets 's' match 'ſ').
    private static bool LiteralAt(Rune[] runes, int i, string lit)
    {
        if (i + lit.Length > runes.Length) return false;
        for (int k = 0; k < lit.Length; k++)
        {
            int c = runes[i + k].Value, p = lit[k];
            if (c == p) continue;
            if (p is >= 'a' and <= 'z' && c == p - 32) continue;
            if (p == 's' && c == 0x017F) continue;
            if (p == 'k' && c == 0x212A) continue;
            return false;
        }
        return true;
    }

    /// <summary>BPE of one pre-token (already byte-mapped): its sub-word strings, the last ending in "&lt;/w&gt;".</summary>
    private string[] Bpe(string token)
    {
        if (_cache.TryGetValue(token, out var cached)) return cached;
        var word = new List<string>(token.Length);
        for (int k = 0; k < token.Length - 1; k++) word.Add(token[k].ToString());
        word.Add(token[^1] + "</w>");
        while (word.Count > 1)
        {
            int bestRank = int.MaxValue;
            (string, string) best = default;
            for (int k = 0; k < word.Count - 1; k++)
                if (_bpeRanks.TryGetValue((word[k], word[k + 1]), out var r) && r < bestRank) { bestRank = r; best = (word[k], word[k + 1]); }
            if (bestRank == int.MaxValue) break;
            var merged = new List<string>(word.Count);
            for (int k = 0; k < word.Count;)
            {
                if (k < word.Count - 1 && word[k] == best.Item1 && word[k + 1] == best.Item2)
                {
                    merged.Add(best.Item1 + best.Item2);
                    k += 2;
                }
                else merged.Add(word[k++]);
            }
            word = merged;
        }
        var result = word.ToArray();
        if (_cache.Count < 1_000_000) _cache.TryAdd(token, result);
        return result;
    }

    /// <summary>The BPE token strings of <paramref name="text"/> (byte-mapped, e.g. "chest&lt;/w&gt;"), without SOT/EOT.</summary>
    public List<string> EncodeToTokens(string text)
    {
        var tokens = new List<string>();
        foreach (var piece in PreTokenize(Clean(text)))
        {
            var bytes = Encoding.UTF8.GetBytes(piece);
            var mapped = new char[bytes.Length];
            for (int k = 0; k < bytes.Length; k++) mapped[k] = _byteEncoder[bytes[k]];
            tokens.AddRange(Bpe(new string(mapped)));
        }
        return tokens;
    }

    /// <summary><c>SimpleTokenizer.encode</c>: BPE ids of <paramref name="text"/>, without SOT/EOT.</summary>
    public List<int> Encode(string text) => EncodeToTokens(text).Select(t => _encoder[t]).ToList();

    /// <summary><c>SimpleTokenizer.decode</c>: ids back to text ("&lt;/w&gt;" → space; invalid UTF-8 → U+FFFD).</summary>
    public string Decode(IEnumerable<int> ids)
    {
        var chars = string.Concat(ids.Select(i => i >= 0 && i < _decoder.Length ? _decoder[i] : throw new ArgumentOutOfRangeException(nameof(ids), $"Token id {i} is outside the vocabulary (0..{_decoder.Length - 1}).")));
        var bytes = new List<byte>(chars.Length);
        foreach (var c in chars)
        {
            if (_byteDecoder.TryGetValue(c, out var b)) bytes.Add(b);
            else bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString())); // characters of the special tokens' names
        }
        return Encoding.UTF8.GetString(bytes.ToArray()).Replace("</w>", " ");
    }

    /// <summary>
    /// <c>clip.tokenize</c> as rows: [SOT] + bpe + [EOT], zero-padded to <paramref name="contextLength"/>. A longer row
    /// throws unless <paramref name="truncate"/>, which keeps [SOT] + bpe[:contextLength − 2] + [EOT].
    /// </summary>
    public int[][] TokenizeToIds(IReadOnlyList<string> texts, int contextLength = DefaultContextLength, bool truncate = false)
    {
        if (contextLength < 2) throw new ArgumentOutOfRangeException(nameof(contextLength), "contextLength must hold at least SOT and EOT.");
        var rows = new int[texts.Count][];
        for (int r = 0; r < texts.Count; r++)
        {
            var ids = Encode(texts[r]);
            var row = new int[contextLength];
            row[0] = StartOfText;
            if (ids.Count + 2 > contextLength)
            {
                if (!truncate)
                    throw new ArgumentException($"Input {texts[r]} is too long for context length {contextLength} ({ids.Count + 2} tokens with SOT/EOT).");
                ids = ids.GetRange(0, contextLength - 2);
            }
            ids.CopyTo(row, 1);
            row[ids.Count + 1] = EndOfText;
            rows[r] = row;
        }
        return rows;
    }

    /// <summary><c>clip.tokenize(texts, context_length, truncate)</c>: int32 [N, contextLength] on the CPU.</summary>
    public Tensor Tokenize(IReadOnlyList<string> texts, int contextLength = DefaultContextLength, bool truncate = false)
    {
        var rows = TokenizeToIds(texts, contextLength, truncate);
        var flat = new int[rows.Length * contextLength];
        for (int r = 0; r < rows.Length; r++) rows[r].CopyTo(flat, r * contextLength);
        return tensor(flat, [rows.Length, contextLength], dtype: ScalarType.Int32);
    }
}
