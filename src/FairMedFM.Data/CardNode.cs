using System.Text.Json;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace FairMedFM.Data;

/// <summary>
/// Format-neutral tree of a card (YAML or JSON), so that validation and error messages are written once.
/// Scalars stay text: the card is validated field by field and CSV cells are compared as text anyway.
/// </summary>
internal sealed class CardNode
{
    public enum NodeKind { Null, Scalar, Map, List }

    public NodeKind Kind { get; private init; }
    public string? Text { get; private init; }
    public List<KeyValuePair<string, CardNode>> Entries { get; } = new();
    public List<CardNode> Items { get; } = new();
    /// <summary>1-based source line, 0 when unknown.</summary>
    public int Line { get; private init; }

    public static CardNode Parse(string path, string text)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        try
        {
            if (ext == ".json")
            {
                using var doc = JsonDocument.Parse(text, new JsonDocumentOptions
                { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
                return FromJson(doc.RootElement, path, "");
            }
            if (ext is ".yaml" or ".yml")
            {
                var stream = new YamlStream();
                stream.Load(new StringReader(text));
                if (stream.Documents.Count != 1)
                    throw new DataException($"expected exactly one YAML document, found {stream.Documents.Count}", path);
                return FromYaml(stream.Documents[0].RootNode, path, "");
            }
        }
        catch (JsonException e)
        {
            throw new DataException($"invalid JSON: {e.Message}", path, inner: e);
        }
        catch (YamlException e)
        {
            // A tab in the indentation is reported at the start of its mapping (often line 1): name the tab itself.
            if (YamlText.FirstIndentTab(text, e) is { } tab)
                throw new DataException($"invalid YAML at line {tab.Line}, column {tab.Column}: a tab in the indentation (YAML indents with spaces only)", path, inner: e);
            throw new DataException($"invalid YAML at line {e.Start.Line}, column {e.Start.Column}: {e.Message}", path, inner: e);
        }
        throw new DataException($"unknown card extension '{ext}' (use .yaml, .yml or .json)", path);
    }

    private static CardNode FromYaml(YamlNode node, string path, string field)
    {
        int line = (int)node.Start.Line;
        switch (node)
        {
            case YamlScalarNode s:
                // A plain (unquoted) ~, null or empty scalar is YAML null; a quoted "null" stays text.
                if (s.Style == ScalarStyle.Plain && (s.Value is null or "" or "~" or "null" or "Null" or "NULL"))
                    return new CardNode { Kind = NodeKind.Null, Line = line };
                return new CardNode { Kind = NodeKind.Scalar, Text = s.Value ?? "", Line = line };
            case YamlSequenceNode seq:
            {
                var n = new CardNode { Kind = NodeKind.List, Line = line };
                int i = 0;
                foreach (var c in seq.Children) n.Items.Add(FromYaml(c, path, $"{field}[{i++}]"));
                return n;
            }
            case YamlMappingNode map:
            {
                var n = new CardNode { Kind = NodeKind.Map, Line = line };
                foreach (var (k, v) in map.Children)
                {
                    if (k is not YamlScalarNode ks || ks.Value is null)
                        throw new DataException($"non-text key at line {k.Start.Line}", path, field: field);
                    var childField = field.Length == 0 ? ks.Value : $"{field}.{ks.Value}";
                    if (n.Entries.Any(e => e.Key == ks.Value))
                        throw new DataException($"duplicate key at line {k.Start.Line}", path, field: childField);
                    n.Entries.Add(new(ks.Value, FromYaml(v, path, childField)));
                }
                return n;
            }
            default:
                throw new DataException($"unsupported YAML node at line {line} (aliases are not allowed)", path, field: field);
        }
    }

    private static CardNode FromJson(JsonElement e, string path, string field)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Null: return new CardNode { Kind = NodeKind.Null };
            case JsonValueKind.String: return new CardNode { Kind = NodeKind.Scalar, Text = e.GetString() };
            case JsonValueKind.Number: return new CardNode { Kind = NodeKind.Scalar, Text = e.GetRawText() };
            case JsonValueKind.True: return new CardNode { Kind = NodeKind.Scalar, Text = "true" };
            case JsonValueKind.False: return new CardNode { Kind = NodeKind.Scalar, Text = "false" };
            case JsonValueKind.Array:
            {
                var n = new CardNode { Kind = NodeKind.List };
                int i = 0;
                foreach (var c in e.EnumerateArray()) n.Items.Add(FromJson(c, path, $"{field}[{i++}]"));
                return n;
            }
            case JsonValueKind.Object:
            {
                var n = new CardNode { Kind = NodeKind.Map };
                foreach (var p in e.EnumerateObject())
                {
                    var childField = field.Length == 0 ? p.Name : $"{field}.{p.Name}";
                    if (n.Entries.Any(x => x.Key == p.Name))
                        throw new DataException("duplicate key", path, field: childField);
                    n.Entries.Add(new(p.Name, FromJson(p.Value, path, childField)));
                }
                return n;
            }
            default:
                throw new DataException($"unsupported JSON value {e.ValueKind}", path, field: field);
        }
    }
}

/// <summary>Reads one map of a card, tracking which keys were consumed so unknown keys are reported.</summary>
internal sealed class CardMap
{
    private readonly CardNode _node;
    private readonly HashSet<string> _used = new();
    public string File { get; }
    public string Field { get; }

    public CardMap(CardNode node, string file, string field)
    {
        File = file;
        Field = field;
        if (node.Kind != CardNode.NodeKind.Map)
            throw new DataException("expected a mapping (key: value pairs)", file, field: field.Length == 0 ? "<root>" : field);
        _node = node;
    }

    public string Path(string key) => Field.Length == 0 ? key : $"{Field}.{key}";

    public CardNode? Get(string key)
    {
        _used.Add(key);
        foreach (var e in _node.Entries)
            if (e.Key == key)
                return e.Value.Kind == CardNode.NodeKind.Null ? null : e.Value;
        return null;
    }

    public bool Has(string key) => Get(key) is not null;

    public DataException Error(string key, string reason) => new(reason, File, field: Path(key));

    public string? OptString(string key)
    {
        var n = Get(key);
        if (n is null) return null;
        if (n.Kind != CardNode.NodeKind.Scalar) throw Error(key, "expected a text value");
        return n.Text!;
    }

    private HashSet<string>? _known;

    /// <summary>Declares every key this map may hold, so a missing required key can point at a misspelt one.</summary>
    public CardMap Known(IEnumerable<string> keys)
    {
        _known = new HashSet<string>(keys, StringComparer.Ordinal);
        return this;
    }

    /// <summary>
    /// A required key is missing: the error names it and, when the map holds an unknown key spelt nearly like it
    /// (<c>path_colum</c>), that key with its line — the typo is usually the reason the required key is "missing".
    /// </summary>
    public DataException Missing(string key, string reason = "required field is missing")
    {
        foreach (var e in _node.Entries)
        {
            if (e.Key == key || _used.Contains(e.Key) || (_known?.Contains(e.Key) ?? false)) continue;
            if (EditDistance.Between(e.Key.ToLowerInvariant(), key) <= Math.Max(2, key.Length / 3))
                return Error(key, $"{reason}; unknown field '{Path(e.Key)}'" + (e.Value.Line > 0 ? $" (line {e.Value.Line})" : "") +
                                  $" — did you mean '{key}'?");
        }
        return Error(key, reason);
    }

    public string ReqString(string key)
    {
        var s = OptString(key);
        if (s is null) throw Missing(key);
        if (s.Length == 0) throw Error(key, "must not be empty");
        return s;
    }

    public double? OptDouble(string key)
    {
        var s = OptString(key);
        if (s is null) return null;
        if (!CsvNumbers.TryParse(s, out var v)) throw Error(key, $"expected a finite number, got '{s}'");
        return v;
    }

    public List<CardNode>? OptList(string key)
    {
        var n = Get(key);
        if (n is null) return null;
        if (n.Kind != CardNode.NodeKind.List) throw Error(key, "expected a list");
        return n.Items;
    }

    public List<string>? OptStringList(string key)
    {
        var items = OptList(key);
        if (items is null) return null;
        var result = new List<string>();
        for (int i = 0; i < items.Count; i++)
        {
            if (items[i].Kind != CardNode.NodeKind.Scalar)
                throw new DataException("expected a text value", File, field: $"{Path(key)}[{i}]");
            result.Add(items[i].Text!);
        }
        return result;
    }

    public List<double>? OptDoubleList(string key)
    {
        var strings = OptStringList(key);
        if (strings is null) return null;
        var result = new List<double>();
        for (int i = 0; i < strings.Count; i++)
        {
            if (!CsvNumbers.TryParse(strings[i], out var v))
                throw new DataException($"expected a finite number, got '{strings[i]}'", File, field: $"{Path(key)}[{i}]");
            result.Add(v);
        }
        return result;
    }

    public CardMap? OptMap(string key)
    {
        var n = Get(key);
        return n is null ? null : new CardMap(n, File, Path(key));
    }

    /// <summary>Call after reading every known key: any key never asked for is a typo or an unsupported option.</summary>
    public void RejectUnknown(string? context = null)
    {
        foreach (var e in _node.Entries)
            if (!_used.Contains(e.Key))
                throw new DataException(
                    $"unknown field{(context is null ? "" : " for " + context)}" + (e.Value.Line > 0 ? $" (line {e.Value.Line})" : ""),
                    File, field: Path(e.Key));
    }

    public IEnumerable<KeyValuePair<string, CardNode>> Entries => _node.Entries;
}

/// <summary>Numeric parsing used for CSV cells and card numbers alike: invariant culture, finite values only.</summary>
internal static class CsvNumbers
{
    public static bool TryParse(string s, out double value)
    {
        if (double.TryParse(s.Trim(), System.Globalization.NumberStyles.Float,
                System.Globalization.CultureInfo.InvariantCulture, out value) && double.IsFinite(value))
            return true;
        value = 0;
        return false;
    }

    public static string Format(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
}
