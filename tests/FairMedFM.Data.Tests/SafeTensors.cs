using System.Buffers.Binary;
using System.Text.Json;

namespace FairMedFM.Data.Tests;

/// <summary>
/// Minimal safetensors reader (public format): 8-byte little-endian header length N, N bytes of JSON
/// {name: {dtype, shape, data_offsets: [begin, end]}} (offsets relative to the end of the header), then raw
/// little-endian row-major data.
/// </summary>
internal sealed class SafeTensors
{
    public sealed record Entry(string DType, long[] Shape, long Begin, long End);

    private readonly byte[] _bytes;
    private readonly long _dataStart;
    public IReadOnlyDictionary<string, Entry> Entries { get; }

    public SafeTensors(string path)
    {
        _bytes = File.ReadAllBytes(path);
        long n = BinaryPrimitives.ReadInt64LittleEndian(_bytes.AsSpan(0, 8));
        _dataStart = 8 + n;
        using var doc = JsonDocument.Parse(_bytes.AsMemory(8, (int)n));
        var d = new Dictionary<string, Entry>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__") continue;
            var offs = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            d[p.Name] = new Entry(p.Value.GetProperty("dtype").GetString()!,
                p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray(), offs[0], offs[1]);
        }
        Entries = d;
    }

    private ReadOnlySpan<byte> Raw(string name, string dtype)
    {
        var e = Entries[name];
        if (e.DType != dtype) throw new InvalidOperationException($"{name} is {e.DType}, not {dtype}");
        return _bytes.AsSpan((int)(_dataStart + e.Begin), (int)(e.End - e.Begin));
    }

    public long[] Shape(string name) => Entries[name].Shape;
    public byte[] U8(string name) => Raw(name, "U8").ToArray();

    public float[] F32(string name)
    {
        var raw = Raw(name, "F32");
        var r = new float[raw.Length / 4];
        for (int i = 0; i < r.Length; i++) r[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.Slice(i * 4, 4));
        return r;
    }

    public double[] F64(string name)
    {
        var raw = Raw(name, "F64");
        var r = new double[raw.Length / 8];
        for (int i = 0; i < r.Length; i++) r[i] = BinaryPrimitives.ReadDoubleLittleEndian(raw.Slice(i * 8, 8));
        return r;
    }
}
