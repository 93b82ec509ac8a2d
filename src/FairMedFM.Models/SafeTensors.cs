using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Models;

/// <summary>
/// Minimal safetensors reader/writer (public spec: 8-byte LE header length N, N bytes of JSON, raw LE row-major
/// data). Own code rather than PyBridge's because it keeps rank-0 shapes, reads <c>__metadata__</c> and writes a
/// deterministic file (sorted names, 8-byte aligned header) so cached files hash identically on every machine.
/// </summary>
public static class SafeTensors
{
    public sealed record Entry(string Name, string DType, long[] Shape, long Begin, long End);

    /// <summary>Header entries (sorted by data offset) and the metadata map, without reading tensor data.</summary>
    public static (IReadOnlyList<Entry> Entries, IReadOnlyDictionary<string, string> Metadata, long DataStart) ReadHeader(string path)
    {
        using var fs = File.OpenRead(path);
        return ReadHeader(fs, path);
    }

    private static (IReadOnlyList<Entry>, IReadOnlyDictionary<string, string>, long) ReadHeader(Stream fs, string path)
    {
        Span<byte> lenBytes = stackalloc byte[8];
        fs.ReadExactly(lenBytes);
        ulong n = BitConverter.ToUInt64(lenBytes);
        if (n == 0 || n > 100_000_000 || (long)n > fs.Length - 8)
            throw new InvalidDataException($"'{path}' is not a safetensors file (header length {n}).");
        var json = new byte[n];
        fs.ReadExactly(json);
        try
        {
            return ParseHeader(json, path, 8 + (long)n);
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"'{path}': malformed safetensors header ({e.Message}).", e);
        }
    }

    private static (IReadOnlyList<Entry>, IReadOnlyDictionary<string, string>, long) ParseHeader(byte[] json, string path, long dataStart)
    {
        var root = JsonNode.Parse(json) as JsonObject
                   ?? throw new InvalidDataException($"'{path}': safetensors header is not a JSON object.");
        var entries = new List<Entry>();
        var meta = new Dictionary<string, string>();
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__")
            {
                if (node is JsonObject m)
                    foreach (var (k, v) in m) meta[k] = v?.ToString() ?? "";
                continue;
            }
            var o = node as JsonObject ?? throw new InvalidDataException($"'{path}': bad header entry '{name}'.");
            var shape = o["shape"]!.AsArray().Select(v => v!.GetValue<long>()).ToArray();
            var offs = o["data_offsets"]!.AsArray().Select(v => v!.GetValue<long>()).ToArray();
            entries.Add(new Entry(name, o["dtype"]!.GetValue<string>(), shape, offs[0], offs[1]));
        }
        entries.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        return (entries, meta, dataStart);
    }

    /// <summary>The first tensor whose bytes lie (partly) past the end of a file of <paramref name="fileLength"/> bytes, as an
    /// error naming the tensor and the bytes expected and present (a truncated download); null when every tensor fits.</summary>
    public static string? Truncation(IReadOnlyList<Entry> entries, long dataStart, long fileLength, string path)
    {
        foreach (var e in entries)
        {
            if (e.Begin < 0 || e.End < e.Begin)
                return $"'{path}': tensor '{e.Name}' has invalid data_offsets [{e.Begin}, {e.End}]";
            if (dataStart + e.End > fileLength)
                return $"'{path}' is truncated: tensor '{e.Name}' needs bytes {dataStart + e.Begin}–{dataStart + e.End} of the file, " +
                       $"which has {fileLength} bytes ({Math.Max(0, fileLength - dataStart - e.Begin)} of its {e.End - e.Begin} bytes present; " +
                       "an interrupted download?)";
        }
        return null;
    }

    /// <summary>Reads every tensor (CPU). The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> Load(string path) => Load(path, out _);

    public static Dictionary<string, Tensor> Load(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors data is little-endian.");
        using var fs = File.OpenRead(path);
        var (entries, meta, dataStart) = ReadHeader(fs, path);
        if (Truncation(entries, dataStart, fs.Length, path) is { } truncated) throw new InvalidDataException(truncated);
        metadata = meta;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var e in entries)
            {
                var dtype = ToScalarType(e.DType, path);
                var t = torch.empty(e.Shape, dtype: dtype);
                result[e.Name] = t;
                long expected = t.NumberOfElements * t.ElementSize;
                if (e.End - e.Begin != expected)
                    throw new InvalidDataException($"'{path}': tensor '{e.Name}' has {e.End - e.Begin} bytes, expected {expected}.");
                if (expected == 0) continue;
                if (expected > int.MaxValue) throw new NotSupportedException($"'{path}': tensor '{e.Name}' is over 2 GB.");
                var buf = new byte[expected];
                fs.Position = dataStart + e.Begin;
                fs.ReadExactly(buf);
                t.bytes = buf;
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>Writes tensors (any device; copied to CPU) in sorted-name order. Written to a temp file, then moved.</summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors data is little-endian.");
        var names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var m = new JsonObject();
            foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) m[k] = v;
            header["__metadata__"] = m;
        }
        long offset = 0;
        foreach (var name in names)
        {
            var t = tensors[name];
            long len = t.NumberOfElements * t.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = ToSafeTensorsDType(t.dtype),
                ["shape"] = new JsonArray(t.shape.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
                ["data_offsets"] = new JsonArray(JsonValue.Create(offset), JsonValue.Create(offset + len)),
            };
            offset += len;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;

        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                fs.Write(BitConverter.GetBytes((ulong)padded));
                fs.Write(json);
                for (int i = json.Length; i < padded; i++) fs.WriteByte((byte)' ');
                foreach (var name in names)
                {
                    using var scope = NewDisposeScope();
                    var t = tensors[name].detach().cpu().contiguous();
                    if (t.NumberOfElements > 0) fs.Write(t.bytes);
                }
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static ScalarType ToScalarType(string dtype, string? path = null) => dtype switch
    {
        "F64" => ScalarType.Float64,
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new NotSupportedException($"{(path is null ? "" : $"'{path}': ")}unsupported safetensors dtype '{dtype}'."),
    };

    public static string ToSafeTensorsDType(ScalarType t) => t switch
    {
        ScalarType.Float64 => "F64",
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"dtype {t} has no safetensors name."),
    };
}
