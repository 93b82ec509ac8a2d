using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace FairMedFM.Models.Clip;

/// <summary>
/// The text clean-up of openai/CLIP's simple_tokenizer: <c>basic_clean</c> (ftfy.fix_text, html.unescape twice,
/// strip), <c>whitespace_clean</c> and Python's <c>str.lower()</c>.
/// <para>
/// ftfy 6.1.1 is not reproduced in full. <see cref="FixText"/> implements its default fixers as follows:
/// HTML entities with a semicolon (only for lines without '&lt;'; entity names are .NET's HTML 4 set, plus ftfy's
/// upper-cased names), mojibake = UTF-8 read as Latin-1 or Windows-1252 (whole segment, or single sequences inside
/// otherwise-correct text), C1 controls read as Windows-1252, Latin ligatures, full/half-width forms, curly quotes,
/// line breaks, lone surrogates, terminal escapes, the control characters ftfy removes, NFC.
/// Not done: ftfy's "badness" heuristic (replaced by "contains a well-formed UTF-8 sequence spelled in
/// Latin-1/Windows-1252 characters"), the other single-byte encodings (Windows-1250/1251, ISO-8859-2, MacRoman,
/// cp437), restore_byte_a0 (mojibake whose 0xA0 became a space), replace_lossy_sequences (mojibake that already
/// lost bytes to '?' or U+FFFD) and the "utf-8-variants" decoder (CESU-8, Java's modified UTF-8).
/// </para>
/// <para>
/// html.unescape is approximated by <see cref="WebUtility.HtmlDecode(string)"/>: the same for the HTML 4 entity names
/// and numeric references with a semicolon; Python also decodes HTML 5-only names (e.g. <c>&amp;NewLine;</c>), names
/// without a semicolon (<c>&amp;amp</c>, <c>&amp;copy2020</c>) and maps numeric references to C1/invalid code
/// points the HTML 5 way (<c>&amp;#x80;</c> → €).
/// </para>
/// </summary>
public static class ClipTextCleaner
{
    /// <summary><c>basic_clean</c>: ftfy.fix_text (see the class notes), html.unescape twice, strip.</summary>
    public static string BasicClean(string text, bool fixText = true)
    {
        if (fixText) text = FixText(text);
        text = WebUtility.HtmlDecode(WebUtility.HtmlDecode(text));
        return PyStrip(text);
    }

    /// <summary><c>whitespace_clean</c>: runs of Unicode white space (the regex module's \s) become one space; strip.</summary>
    public static string WhitespaceClean(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool inSpace = false;
        foreach (var r in text.EnumerateRunes())
        {
            if (IsRegexWhiteSpace(r.Value))
            {
                if (!inSpace) sb.Append(' ');
                inSpace = true;
            }
            else
            {
                sb.Append(r.ToString());
                inSpace = false;
            }
        }
        return PyStrip(sb.ToString());
    }

    /// <summary>The full clean-up of <c>SimpleTokenizer.encode</c>: whitespace_clean(basic_clean(text)).lower().</summary>
    public static string Clean(string text, bool fixText = true) => PyLower(WhitespaceClean(BasicClean(text, fixText)));

    /// <summary>White space as the <c>regex</c> module's \s (Unicode White_Space).</summary>
    public static bool IsRegexWhiteSpace(int cp) =>
        cp is >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or >= 0x2000 and <= 0x200A
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;

    /// <summary>Python's <c>str.isspace()</c>: \s plus the separators U+001C–U+001F.</summary>
    public static bool IsPyWhiteSpace(int cp) => IsRegexWhiteSpace(cp) || cp is >= 0x1C and <= 0x1F;

    /// <summary>Python's <c>str.strip()</c> with no argument.</summary>
    public static string PyStrip(string s)
    {
        int start = 0, end = s.Length;
        while (start < end && IsPyWhiteSpace(s[start])) start++;
        while (end > start && IsPyWhiteSpace(s[end - 1])) end--;
        return s.Substring(start, end - start);
    }

    /// <summary>
    /// Python's <c>str.lower()</c>: simple lowercase mappings plus the full mappings Python applies — U+0130
    /// (İ → i̇) and the final-sigma rule (Σ → ς at the end of a word; "cased"/"case-ignorable" approximated by
    /// letter categories Lu/Ll/Lt and Mn/Me/Cf/Lm/Sk plus the apostrophe, period, colon and middle dot).
    /// </summary>
    public static string PyLower(string s)
    {
        var runes = s.EnumerateRunes().ToArray();
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < runes.Length; i++)
        {
            var r = runes[i];
            if (r.Value == 0x0130) sb.Append("i\u0307");
            else if (r.Value == 0x03A3) sb.Append(IsFinalSigma(runes, i) ? 'ς' : 'σ');
            else if (r.IsAscii) sb.Append((char)(r.Value is >= 'A' and <= 'Z' ? r.Value + 32 : r.Value));
            else sb.Append(Rune.ToLowerInvariant(r).ToString());
        }
        return sb.ToString();
    }

    private static bool IsFinalSigma(Rune[] runes, int i)
    {
        int j = i - 1;
        while (j >= 0 && IsCaseIgnorable(runes[j])) j--;
        if (j < 0 || !IsCased(runes[j])) return false;
        j = i + 1;
        while (j < runes.Length && IsCaseIgnorable(runes[j])) j++;
        return j >= runes.Length || !IsCased(runes[j]);
    }

    private static bool IsCased(Rune r) =>
        Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    private static bool IsCaseIgnorable(Rune r) =>
        r.Value is '\'' or '.' or ':' or 0x00B7 or 0x2019 or 0x2018 or 0x2024 or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A
        || Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
            or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol;

    // ------------------------------------------------------------------------------------------------------------
    // ftfy.fix_text (subset, see the class notes)

    /// <summary>ftfy.fix_text with its default configuration, as far as implemented (see the class notes).</summary>
    public static string FixText(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool unescapeHtml = true;
        int pos = 0;
        while (pos < text.Length)
        {
            int br = text.IndexOf('\n', pos);
            int end = br < 0 ? text.Length : br + 1;
            var segment = text.Substring(pos, end - pos);
            // ftfy's "auto": HTML is not unescaped once a segment contains '<' (and, as there, for the rest of the text).
            if (unescapeHtml && segment.Contains('<')) unescapeHtml = false;
            sb.Append(FixSegment(segment, unescapeHtml));
            pos = end;
        }
        return sb.ToString();
    }

    private static string FixSegment(string text, bool unescapeHtml)
    {
        for (int guard = 0; guard < 16; guard++)
        {
            var orig = text;
            if (unescapeHtml) text = UnescapeHtmlEntities(text);
            text = FixEncoding(text);
            text = FixC1Controls(text);
            text = FixLatinLigatures(text);
            text = FixCharacterWidth(text);
            text = UncurlQuotes(text);
            text = FixLineBreaks(text);
            text = FixSurrogates(text);
            text = RemoveTerminalEscapes(text);
            text = RemoveControlChars(text);
            text = text.Normalize(NormalizationForm.FormC);
            if (text == orig) break;
        }
        return text;
    }

    private static readonly Regex HtmlEntityRe = new("&#?[0-9A-Za-z]{1,24};", RegexOptions.CultureInvariant);

    internal static string UnescapeHtmlEntities(string text) =>
        !text.Contains('&') ? text : HtmlEntityRe.Replace(text, m =>
        {
            var e = m.Value;
            var d = WebUtility.HtmlDecode(e);
            if (d != e) return d.Contains(';') ? e : d;
            // ftfy also decodes entity names that were upper-cased (&NTILDE; → Ñ) when the name is not itself an entity.
            if (!e.StartsWith("&#") && e.ToUpperInvariant() == e)
            {
                var lower = e.ToLowerInvariant();
                var dl = WebUtility.HtmlDecode(lower);
                if (dl != lower) return dl.ToUpperInvariant();
            }
            return e;
        });

    /// <summary>Windows-1252 with its five undefined bytes mapped to the C1 code points (Python's "sloppy-windows-1252").</summary>
    private static readonly char[] Sloppy1252 = BuildSloppy1252();
    private static readonly Dictionary<char, byte> Sloppy1252Inverse =
        Enumerable.Range(0, 256).ToDictionary(b => Sloppy1252[b], b => (byte)b);

    private static char[] BuildSloppy1252()
    {
        // The 0x80–0x9F row of Windows-1252 (the rest equals Latin-1); undefined bytes keep their C1 code point.
        string row = "\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F" +
                     "\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178";
        var map = new char[256];
        for (int b = 0; b < 256; b++) map[b] = (char)b;
        for (int b = 0x80; b < 0xA0; b++) map[b] = row[b - 0x80];
        return map;
    }

    private static bool TryEncodeLatin1(string s, out byte[] bytes)
    {
        bytes = new byte[s.Length];
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] > 0xFF) return false;
            bytes[i] = (byte)s[i];
        }
        return true;
    }

    private static bool TryEncodeSloppy1252(string s, out byte[] bytes)
    {
        bytes = new byte[s.Length];
        for (int i = 0; i < s.Length; i++)
            if (!Sloppy1252Inverse.TryGetValue(s[i], out bytes[i])) return false;
        return true;
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static bool TryDecodeUtf8(byte[] bytes, out string text)
    {
        try
        {
            text = StrictUtf8.GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            text = "";
            return false;
        }
    }

    // The byte a character stands for when UTF-8 was misread as Latin-1 (any char ≤ U+00FF) or Windows-1252.
    private static int ByteOf(char c) => c <= '\u00FF' ? c : Sloppy1252Inverse.TryGetValue(c, out var b) ? b : -1;

    /// <summary>
    /// Finds UTF-8 sequences spelled in Latin-1/Windows-1252 characters: a lead byte C2–F4 followed by the right number
    /// of continuation bytes 80–BF that together decode to one code point. Returns (start, length) in chars.
    /// </summary>
    private static IEnumerable<(int Start, int Length)> MojibakeSequences(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            int lead = ByteOf(s[i]);
            int n = lead switch { >= 0xC2 and <= 0xDF => 1, >= 0xE0 and <= 0xEF => 2, >= 0xF0 and <= 0xF4 => 3, _ => 0 };
            if (n == 0 || i + n >= s.Length) continue;
            var bytes = new byte[n + 1];
            bytes[0] = (byte)lead;
            bool ok = true;
            for (int k = 1; k <= n && ok; k++)
            {
                int b = ByteOf(s[i + k]);
                if (b is < 0x80 or > 0xBF) ok = false;
                else bytes[k] = (byte)b;
            }
            if (ok && TryDecodeUtf8(bytes, out _))
            {
                yield return (i, n + 1);
                i += n;
            }
        }
    }

    /// <summary>Mojibake repair: UTF-8 that was decoded as Latin-1 or Windows-1252, repeatedly (double encodings).</summary>
    internal static string FixEncoding(string text)
    {
        for (int guard = 0; guard < 8; guard++)
        {
            if (text.All(c => c < 0x80) || !MojibakeSequences(text).Any()) return text;
            // The whole segment re-encoded (ftfy tries latin-1, then sloppy-windows-1252).
            if ((TryEncodeLatin1(text, out var bytes) || TryEncodeSloppy1252(text, out bytes)) && TryDecodeUtf8(bytes, out var whole))
            {
                text = whole;
                continue;
            }
            // Otherwise each sequence in isolation (ftfy's decode_inconsistent_utf8).
            var sb = new StringBuilder(text.Length);
            int last = 0;
            foreach (var (start, len) in MojibakeSequences(text))
            {
                sb.Append(text, last, start - last);
                var seq = new byte[len];
                for (int k = 0; k < len; k++) seq[k] = (byte)ByteOf(text[start + k]);
                TryDecodeUtf8(seq, out var decoded);
                sb.Append(decoded);
                last = start + len;
            }
            sb.Append(text, last, text.Length - last);
            var fixedText = sb.ToString();
            if (fixedText == text) return text;
            text = fixedText;
        }
        return text;
    }

    /// <summary>C1 control characters (U+0080–U+009F) read as Windows-1252 (ftfy's fix_c1_controls).</summary>
    internal static string FixC1Controls(string text)
    {
        if (!text.Any(c => c is >= '\u0080' and <= '\u009F')) return text;
        var chars = text.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
            if (chars[i] is >= '\u0080' and <= '\u009F') chars[i] = Sloppy1252[chars[i]];
        return new string(chars);
    }

    private static readonly Dictionary<char, string> Ligatures = new()
    {
        ['Ĳ'] = "IJ", ['ĳ'] = "ij", ['ŉ'] = "ʼn", ['Ǳ'] = "DZ", ['ǲ'] = "Dz", ['ǳ'] = "dz", ['Ǆ'] = "DŽ", ['ǅ'] = "Dž",
        ['ǆ'] = "dž", ['Ǉ'] = "LJ", ['ǈ'] = "Lj", ['ǉ'] = "lj", ['Ǌ'] = "NJ", ['ǋ'] = "Nj", ['ǌ'] = "nj",
        ['ﬀ'] = "ff", ['ﬁ'] = "fi", ['ﬂ'] = "fl", ['ﬃ'] = "ffi", ['ﬄ'] = "ffl", ['ﬅ'] = "ſt", ['ﬆ'] = "st",
    };

    internal static string FixLatinLigatures(string text)
    {
        if (!text.Any(Ligatures.ContainsKey)) return text;
        var sb = new StringBuilder(text.Length + 4);
        foreach (var c in text) sb.Append(Ligatures.TryGetValue(c, out var r) ? r : c.ToString());
        return sb.ToString();
    }

    /// <summary>Ideographic space → space; U+FF01–U+FFEF (full/half-width forms) → their NFKC form.</summary>
    internal static string FixCharacterWidth(string text)
    {
        if (!text.Any(c => c == '\u3000' || c is >= '\uFF01' and <= '\uFFEF')) return text;
        var sb = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            if (c == '\u3000') sb.Append(' ');
            else if (c is >= '\uFF01' and <= '\uFFEF') sb.Append(c.ToString().Normalize(NormalizationForm.FormKC));
            else sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>‘ ’ ‚ ‛ ʼ → ' and “ ” „ ‟ → ".</summary>
    internal static string UncurlQuotes(string text)
    {
        var chars = text.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (chars[i] is '\u02BC' or >= '\u2018' and <= '\u201B') chars[i] = '\'';
            else if (chars[i] is >= '\u201C' and <= '\u201F') chars[i] = '"';
        }
        return new string(chars);
    }

    internal static string FixLineBreaks(string text) =>
        text.Replace("\r\n", "\n").Replace('\r', '\n').Replace('\u2028', '\n').Replace('\u2029', '\n').Replace('\u0085', '\n');

    /// <summary>Unpaired UTF-16 surrogates → U+FFFD (pairs are already single code points in .NET strings).</summary>
    internal static string FixSurrogates(string text)
    {
        if (!text.Any(char.IsSurrogate)) return text;
        var sb = new StringBuilder(text.Length);
        foreach (var r in text.EnumerateRunes()) sb.Append(r.ToString()); // invalid → U+FFFD
        return sb.ToString();
    }

    private static readonly Regex AnsiRe = new("\u001b\\[((?:\\d|;)*)([a-zA-Z])", RegexOptions.CultureInvariant);

    internal static string RemoveTerminalEscapes(string text) => text.Contains('\u001b') ? AnsiRe.Replace(text, "") : text;

    /// <summary>The characters ftfy removes: C0 controls except \t \n \f \r, DEL, U+206A–U+206F, BOM, U+FFF9–U+FFFC.</summary>
    internal static bool IsRemovedControl(char c) =>
        c is <= '\u0008' or '\u000B' or >= '\u000E' and <= '\u001F' or '\u007F' or >= '\u206A' and <= '\u206F'
            or '\uFEFF' or >= '\uFFF9' and <= '\uFFFC';

    internal static string RemoveControlChars(string text) =>
        text.Any(IsRemovedControl) ? new string(text.Where(c => !IsRemovedControl(c)).ToArray()) : text;
}
