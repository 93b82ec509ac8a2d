using System.Globalization;
using System.Reflection;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace FairMedFM.Engine.Config;

/// <summary>
/// Checks a grid's YAML tree against the keys and value kinds of <see cref="GridSpec"/> (and its nested blocks) before it
/// is deserialised: an unknown key (with the nearest valid one), a list where text belongs, a word where a number belongs,
/// each with the file, line and column. Messages use the grid's vocabulary only, never .NET type names.
/// </summary>
internal static class GridYamlCheck
{
    public static void Check(string text, string source)
    {
        var stream = new YamlStream();
        try { stream.Load(new StringReader(text)); }
        catch (YamlException e)
        {
            var msg = e.Message.Contains("Duplicate key", StringComparison.OrdinalIgnoreCase)
                ? $"duplicate key{KeyAt(text, e.Start)} (each key may appear once)" : e.Message;
            // YamlDotNet places a tab in the indentation at the start of the enclosing mapping (often line 1): name the tab.
            if (FairMedFM.Data.YamlText.FirstIndentTab(text, e) is { } tab)
                throw new ConfigException($"{source}: line {tab.Line}, column {tab.Column}: a tab in the indentation (YAML indents with spaces only)");
            throw new ConfigException($"{source}: line {e.Start.Line}, column {e.Start.Column}: {msg}");
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner gives up without a position on some broken input (an unclosed flow list): find the
            // last place it could still read and name that.
            var (line, column) = LastReadable(text);
            throw new ConfigException($"{source}: line {line}, column {column}: the YAML cannot be read after this point (an unclosed [ ] or {{ }}, or a stray quote?)");
        }
        if (stream.Documents.Count == 0) throw new ConfigException($"{source}: empty grid");
        if (stream.Documents.Count > 1) throw new ConfigException($"{source}: expected one YAML document, found {stream.Documents.Count}");
        var root = stream.Documents[0].RootNode;
        if (IsNull(root)) throw new ConfigException($"{source}: empty grid");
        Node(root, typeof(GridSpec), "", source);
    }

    /// <summary>" 'seeds'" for the key that starts at <paramref name="at"/>, or "" when the text there is not a plain key.</summary>
    private static string KeyAt(string text, Mark at)
    {
        var lines = text.Split('\n');
        if (at.Line < 1 || at.Line > lines.Length) return "";
        var line = lines[at.Line - 1];
        var start = (int)Math.Clamp(at.Column - 1, 0, line.Length);
        var colon = line.IndexOf(':', start);
        var key = (colon < 0 ? "" : line[start..colon]).Trim().Trim('"', '\'');
        return key.Length == 0 ? "" : $" '{key}'";
    }

    private static (long Line, long Column) LastReadable(string text)
    {
        var parser = new Parser(new StringReader(text));
        (long, long) last = (1, 1);
        try { while (parser.MoveNext()) if (parser.Current is { } ev) last = (ev.End.Line, ev.End.Column); }
        catch (Exception e) when (e is YamlException or InvalidOperationException) { }
        return last;
    }

    private static bool IsNull(YamlNode n) =>
        n is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any } s && s.Value is null or "" or "~" or "null" or "Null" or "NULL";

    private static string Kind(YamlNode n) => n switch { YamlSequenceNode => "a list", YamlMappingNode => "a map", _ => "a value" };

    private static ConfigException Error(string source, YamlNode at, string key, string what) =>
        new($"{source}: line {at.Start.Line}, column {at.Start.Column}: {(key.Length == 0 ? "" : key + ": ")}{what}");

    private static void Node(YamlNode node, Type type, string key, string source)
    {
        var underlying = Nullable.GetUnderlyingType(type);
        if (IsNull(node))
        {
            // A key with no value: lists and blocks are reported by GridSpec.Validate with their own wording.
            if (type.IsValueType && underlying is null) throw Error(source, node, key, $"has no value (expected {Expected(type)})");
            return;
        }
        type = underlying ?? type;
        if (type == typeof(string))
        {
            if (node is not YamlScalarNode sv) throw Error(source, node, key, $"expected a text value, found {Kind(node)}");
            CheckValue(sv, key, source);
            return;
        }
        if (type == typeof(int) || type == typeof(long) || type == typeof(double) || type == typeof(bool))
        {
            if (node is not YamlScalarNode s) throw Error(source, node, key, $"expected {Expected(type)}, found {Kind(node)}");
            var v = s.Value ?? "";
            bool ok = type == typeof(bool) ? bool.TryParse(v, out _)
                : type == typeof(double) ? double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out _)
                : long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) && (type == typeof(long) || l is >= int.MinValue and <= int.MaxValue);
            if (!ok && type == typeof(int) && long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out _))
                throw Error(source, node, key, $"'{v}' is out of range (from {int.MinValue} to {int.MaxValue})");
            if (!ok) throw Error(source, node, key, $"'{v}' is not {Expected(type)}");
            // "1" in quotes is text in YAML and JSON alike: a quoted number would otherwise be read as the number silently.
            if (s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted)
                throw Error(source, node, key, $"'{v}' is quoted text; write {Expected(type)} without quotes");
            return;
        }
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>))
        {
            if (node is not YamlSequenceNode seq) throw Error(source, node, key, $"expected a list, found {Kind(node)}");
            var item = type.GetGenericArguments()[0];
            foreach (var c in seq.Children)
            {
                // One bad entry of a list is named by the list's key ("seeds: 'zero' is not an integer").
                if (IsNull(c)) throw Error(source, c, key, "a list entry is empty");
                Node(c, item, key, source);
            }
            return;
        }
        // A block of settings (the grid itself, training, metrics, split, lora).
        if (node is not YamlMappingNode map) throw Error(source, node, key, $"expected a block of settings (key: value lines), found {Kind(node)}");
        var props = Keys(type);
        foreach (var (k, v) in map.Children)
        {
            if (k is not YamlScalarNode ks || ks.Value is null) throw Error(source, k, key, "expected a key name here");
            var name = ks.Value;
            var full = key.Length == 0 ? name : $"{key}.{name}";
            var match = props.FirstOrDefault(p => string.Equals(p.Key, name, StringComparison.OrdinalIgnoreCase));
            if (match.Key is null)
            {
                var names = props.Select(p => p.Key).ToList();
                var hint = Nearest(name, names) is { } near ? $"did you mean '{near}'? " : "";
                throw Error(source, k, "", $"unknown key '{full}' ({hint}valid keys{(key.Length == 0 ? "" : " of " + key)}: {string.Join(", ", names)})");
            }
            Node(v, match.Value, full, source);
        }
    }

    /// <summary>Keys whose values come from a fixed catalogue, with the singular word the messages use.</summary>
    private static readonly Dictionary<string, (string Word, IReadOnlyList<string> Choices)> Catalogues = new(StringComparer.OrdinalIgnoreCase)
    {
        ["usages"] = ("usage", GridSpec.AllUsages),
        ["normalization"] = ("normalization", GridSpec.KnownNormalizations),
        ["training.optimizer"] = ("training.optimizer", TrainingConfig.Optimizers),
        ["training.selection"] = ("training.selection", TrainingConfig.Selections),
        ["metrics.mode"] = ("metrics.mode", MetricsConfig.Modes),
        ["metrics.threshold"] = ("metrics.threshold", MetricsConfig.Thresholds),
        ["metrics.ci"] = ("metrics.ci", MetricsConfig.Cis),
    };

    /// <summary>A text value checked where it stands: catalogue values (with the nearest one) and the grid name.</summary>
    private static void CheckValue(YamlScalarNode s, string key, string source)
    {
        var v = s.Value ?? "";
        if (Catalogues.TryGetValue(key, out var cat) && !cat.Choices.Contains(v))
        {
            var list = string.Join(", ", cat.Choices);
            var what = key.Equals("usages", StringComparison.OrdinalIgnoreCase)
                ? $"usage '{v}' is not available (available: {list})" : $"{cat.Word} '{v}' is not one of: {list}";
            var hint = Nearest(v, cat.Choices) is { } n ? $"; did you mean '{n}'?" : "";
            throw Error(source, s, key, what + hint);
        }
        if (key.Equals("name", StringComparison.OrdinalIgnoreCase) && GridSpec.NameProblem(v) is { } why)
            throw Error(source, s, key, why);
    }

    /// <summary>The closest of <paramref name="choices"/> to <paramref name="value"/>, ignoring case, when it is close enough to be
    /// a likely typo (else null): for names outside grids too (silo settings).</summary>
    public static string? NearestName(string value, IEnumerable<string> choices)
    {
        var list = choices.ToList();
        var lower = Nearest(value, list.Select(c => c.ToLowerInvariant()));
        return lower is null ? null : list.First(c => c.Equals(lower, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The closest choice when it is close enough to be a likely typo, else null.</summary>
    private static string? Nearest(string value, IEnumerable<string> choices)
    {
        var best = choices.Select(c => (c, d: FairMedFM.Data.EditDistance.Between(c, value.ToLowerInvariant()))).OrderBy(x => x.d).FirstOrDefault();
        return best.c is not null && best.d <= Math.Max(2, value.Length / 3) ? best.c : null;
    }

    private static string Expected(Type t) =>
        t == typeof(bool) ? "true or false" : t == typeof(double) ? "a number" : "an integer";

    private static List<KeyValuePair<string, Type>> Keys(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.GetCustomAttribute<YamlIgnoreAttribute>() is null)
            .Select(p => new KeyValuePair<string, Type>(UnderscoredNamingConvention.Instance.Apply(p.Name), p.PropertyType))
            .ToList();
}
