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
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}': malformed safetensors header (not valid JSON: {e.Message}).", e);
        }
    }

    /// <summary>Each safetensors dtype this reader knows: the tensor type it becomes and its bytes per element.</summary>
    private static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new(StringComparer.Ordinal)
    {
        ["F64"] = (ScalarType.Float64, 8), ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2), ["BF16"] = (ScalarType.BFloat16, 2),
        ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4), ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1),
        ["U8"] = (ScalarType.Byte, 1), ["BOOL"] = (ScalarType.Bool, 1),
    };

    /// <summary>
    /// Parses and validates the header before any tensor is made: every entry is an object with a known dtype, a shape of
    /// non-negative integers and two data_offsets [begin ≤ end] whose length is exactly elements × dtype size (computed
    /// without overflow); no name appears twice. Each error names the file and the tensor.
    /// </summary>
    private static (IReadOnlyList<Entry>, IReadOnlyDictionary<string, string>, long) ParseHeader(byte[] json, string path, long dataStart)
    {
        using var doc = JsonDocument.Parse(json);
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"'{path}': malformed safetensors header (not a JSON object).");
        var entries = new List<Entry>();
        var meta = new Dictionary<string, string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        InvalidDataException Bad(string name, string what) => new($"'{path}': tensor '{name}' {what}");
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            var name = prop.Name;
            if (!seen.Add(name)) throw new InvalidDataException($"'{path}': duplicate tensor '{name}' in the safetensors header");
            var node = prop.Value;
            if (name == "__metadata__")
            {
                if (node.ValueKind == JsonValueKind.Object)
                    foreach (var m in node.EnumerateObject()) meta[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                continue;
            }
            if (node.ValueKind != JsonValueKind.Object) throw Bad(name, "has a malformed header entry (not an object with dtype, shape and data_offsets)");
            if (!node.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
                throw Bad(name, "has no dtype");
            var dtype = dt.GetString()!;
            if (!DTypes.TryGetValue(dtype, out var known))
                throw Bad(name, $"has unsupported dtype '{dtype}' (supported: {string.Join(", ", DTypes.Keys)})");
            int size = known.Size;
            long[] Longs(string key)
            {
                if (!node.TryGetProperty(key, out var a) || a.ValueKind != JsonValueKind.Array)
                    throw Bad(name, $"has no {key} array");
                var r = new long[a.GetArrayLength()];
                int i = 0;
                foreach (var v in a.EnumerateArray())
                {
                    if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var x))
                        throw Bad(name, $"has a {key} entry that is not an integer ({v.GetRawText()})");
                    r[i++] = x;
                }
                return r;
            }
            var shape = Longs("shape");
            if (shape.Any(d => d < 0)) throw Bad(name, $"has a negative dimension in its shape [{string.Join(", ", shape)}]");
            var offs = Longs("data_offsets");
            if (offs.Length != 2 || offs[0] < 0 || offs[1] < offs[0])
                throw Bad(name, $"has invalid data_offsets [{string.Join(", ", offs)}] (expected [begin, end] with 0 ≤ begin ≤ end)");
            long bytes;
            try
            {
                bytes = checked(shape.Aggregate(1L, (a, d) => a * d) * size);
            }
            catch (OverflowException)
            {
                throw Bad(name, $"has shape [{string.Join(", ", shape)}], too large to be real (its byte size overflows)");
            }
            if (offs[1] - offs[0] != bytes)
                throw Bad(name, $"has {offs[1] - offs[0]} bytes in data_offsets, but shape [{string.Join(", ", shape)}] × {dtype} needs {bytes}");
            entries.Add(new Entry(name, dtype, shape, offs[0], offs[1]));
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
                // The header was validated (dtype, shape, byte count, bounds): nothing here can reach libtorch malformed.
                long expected = e.End - e.Begin;
                if (expected > int.MaxValue) throw new NotSupportedException($"'{path}': tensor '{e.Name}' is over 2 GB.");
                Tensor t;
                try { t = torch.empty(e.Shape, dtype: ToScalarType(e.DType, path)); }
                catch (System.Runtime.InteropServices.ExternalException x)
                {
                    throw new InvalidDataException($"'{path}': tensor '{e.Name}' cannot be created ({TorchErrors.Clean(x.Message)})", x);
                }
                result[e.Name] = t;
                if (expected == 0) continue;
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

    public static ScalarType ToScalarType(string dtype, string? path = null) => DTypes.TryGetValue(dtype, out var known) ? known.Type
        : throw new NotSupportedException($"{(path is null ? "" : $"'{path}': ")}unsupported safetensors dtype '{dtype}'.");

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
