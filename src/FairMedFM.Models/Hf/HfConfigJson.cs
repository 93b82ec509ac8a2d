using System.Text.Json;
using System.Text.Json.Nodes;

namespace FairMedFM.Models.Hf;

/// <summary>A config.json value of the wrong kind, named by its key path (the caller adds the file).</summary>
public sealed class HfConfigValueException(string key, string message) : Exception(message)
{
    public string Key { get; } = key;
}

/// <summary>
/// Reads a Hugging Face config.json so that every error names the file, the key and, where it can, the line: invalid JSON
/// ("line 3, column 5"), a value of the wrong kind ("'hidden_size' is "big", expected an integer").
/// </summary>
public static class HfConfigJson
{
    public static JsonObject Read(string path)
    {
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                    ?? throw new InvalidDataException($"'{path}' is not a JSON object.");
            _ = o.Count; // materialises the properties: a repeated key fails here, not at first use
            return o;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON{Describe(e)}", e);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"'{path}': a key appears twice ({e.Message})", e);
        }
    }

    /// <summary>" (line 3, column 5): what is wrong" for a JSON parse error: 1-based, without System.Text.Json's own
    /// 0-based "LineNumber: … | BytePositionInLine: …" tail.</summary>
    public static string Describe(JsonException e)
    {
        var what = e.Message;
        int cut = what.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (cut > 0) what = what[..cut].TrimEnd();
        var where = e.LineNumber is { } l ? $" (line {l + 1}, column {(e.BytePositionInLine ?? 0) + 1})" : "";
        return $"{where}: {what}";
    }

    /// <summary>Runs <paramref name="read"/> over the config at <paramref name="path"/>, naming the file (and the key's line when the key is
    /// written once in it) in a <see cref="HfConfigValueException"/>.</summary>
    public static T Named<T>(string path, Func<T> read)
    {
        try { return read(); }
        catch (HfConfigValueException e)
        {
            string line = "";
            try
            {
                var lines = File.ReadAllLines(path);
                var leaf = "\"" + e.Key.Split('.')[^1] + "\"";
                var hits = lines.Select((s, i) => (s, i)).Where(x => x.s.Contains(leaf, StringComparison.Ordinal)).ToList();
                if (hits.Count == 1) line = $" (line {hits[0].i + 1})";
            }
            catch (IOException) { }
            throw new InvalidDataException($"'{path}'{line}: {e.Message}", e);
        }
    }

    private static string Key(JsonNode n)
    {
        var p = n.GetPath();
        return p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : p.TrimStart('$');
    }

    private static HfConfigValueException Wrong(JsonNode n, string expected) =>
        new(Key(n), $"'{Key(n)}' is {n.ToJsonString()}, expected {expected}");

    public static int Int(JsonObject o, string k, int d) => o[k] is { } n ? AsInt(n) : d;

    /// <summary>A size or count (hidden_size, patch_size, …): a positive integer, else an error naming the key.</summary>
    public static int PositiveInt(JsonObject o, string k, int d)
    {
        int v = Int(o, k, d);
        return v > 0 ? v : throw new HfConfigValueException(KeyIn(o, k), $"'{KeyIn(o, k)}' is {v}, expected a positive integer");
    }

    /// <summary>The transformer's shapes must fit together (else the module's own message would name no file or key):
    /// hidden_size a multiple of num_attention_heads, image_size a multiple of patch_size.</summary>
    public static void CheckShapes(JsonObject o, int hidden, int heads, int? image = null, int? patch = null)
    {
        if (hidden % heads != 0)
            throw new HfConfigValueException(KeyIn(o, "hidden_size"), $"'{KeyIn(o, "hidden_size")}' {hidden} is not a multiple of '{KeyIn(o, "num_attention_heads")}' {heads}");
        if (image is { } i && patch is { } p && i % p != 0)
            throw new HfConfigValueException(KeyIn(o, "image_size"), $"'{KeyIn(o, "image_size")}' {i} is not a multiple of '{KeyIn(o, "patch_size")}' {p}");
    }

    private static string KeyIn(JsonObject o, string k)
    {
        var p = o.GetPath();
        return p is "$" or "" ? k : (p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : p.TrimStart('$')) + "." + k;
    }

    public static int? IntOrNull(JsonObject o, string k) => o[k] is { } n ? AsInt(n) : null;

    public static int AsInt(JsonNode n)
    {
        if (n is JsonValue v)
        {
            if (v.TryGetValue<int>(out var i)) return i;
            if (v.TryGetValue<double>(out var x) && x == Math.Floor(x) && x is >= int.MinValue and <= int.MaxValue) return (int)x;
        }
        throw Wrong(n, "an integer");
    }

    public static double Dbl(JsonObject o, string k, double d)
    {
        if (o[k] is not { } n) return d;
        if (n is JsonValue v && v.TryGetValue<double>(out var x)) return x;
        throw Wrong(n, "a number");
    }

    public static string? Str(JsonObject o, string k)
    {
        if (o[k] is not { } n) return null;
        if (n is JsonValue v && v.TryGetValue<string>(out var s)) return s;
        throw Wrong(n, "a string");
    }

    public static string Str(JsonObject o, string k, string d) => Str(o, k) ?? d;

    public static bool? Bool(JsonObject o, string k)
    {
        if (o[k] is not { } n) return null;
        if (n is JsonValue v && v.TryGetValue<bool>(out var b)) return b;
        throw Wrong(n, "true or false");
    }
}
