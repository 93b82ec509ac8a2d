using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace FairMedFM.Data.Tests;

/// <summary>Builders for small on-disk datasets and hand-made PNG files.</summary>
internal static class TestData
{
    /// <summary>The first <paramref name="n"/> real NIH images, copied to <c>dir/images</c>, plus a CSV of the given rows.</summary>
    public static string[] CopyNihImages(string dir, int n)
    {
        Directory.CreateDirectory(Path.Combine(dir, "images"));
        var files = Directory.GetFiles(Path.Combine(TestPaths.NihDir, "images"), "*.png").OrderBy(f => f, StringComparer.Ordinal).Take(n).ToArray();
        var rel = new string[n];
        for (int i = 0; i < n; i++)
        {
            rel[i] = "images/" + Path.GetFileName(files[i]);
            File.Copy(files[i], Path.Combine(dir, rel[i]));
        }
        return rel;
    }

    /// <summary>
    /// A small dataset in <paramref name="dir"/>: 6 real images, columns path,pid,age,sex,y,site, and a card.
    /// Rows: (pid, age, sex, y) chosen to cover the threshold/bin boundaries.
    /// </summary>
    public static string SmallDataset(string dir, string? cardOverride = null, string[]? csvLines = null)
    {
        var rel = CopyNihImages(dir, 6);
        csvLines ??= new[]
        {
            "path,pid,age,sex,y,site",
            $"{rel[0]},p1,49.9,M,1,a",
            $"{rel[1]},p1,50,M,0,a",
            $"{rel[2]},p2,59,F,1,b",
            $"{rel[3]},p3,60,F,0,b",
            $"{rel[4]},p4,64.99,M,0,a",
            $"{rel[5]},p5,65,F,1,c",
        };
        File.WriteAllText(Path.Combine(dir, "meta.csv"), string.Join("\n", csvLines) + "\n");
        var card = cardOverride ?? SmallCard;
        var path = Path.Combine(dir, "card.yaml");
        File.WriteAllText(path, card);
        return path;
    }

    public const string SmallCard = """
        name: small
        metadata_csv: meta.csv
        image_root: .
        path_column: path
        patient_id_column: pid
        label:
          column: y
          positive: ["1"]
        attributes:
          - name: sex
            column: sex
            kind: categorical
            map: {M: male, F: female}
          - name: age60
            column: age
            kind: threshold
            threshold: 60
          - name: agebins
            column: age
            kind: bins
            edges: [50, 65]
          - name: site
            column: site
            kind: categorical
            map: {a: A, b: B}
            other: other
        intersections:
          - name: sex_x_age60
            of: [sex, age60]
        """ + "\n";

    // ------------------------------------------------------------------ PNG writer (for 16-bit and alpha cases)

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    private static uint Crc(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)data.Length);
        s.Write(len);
        var td = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(td);
        BinaryPrimitives.WriteUInt32BigEndian(len, Crc(td));
        s.Write(len);
    }

    /// <summary>
    /// Minimal PNG: colour type 0 (grey), 2 (RGB), 4 (grey+alpha) or 6 (RGBA); bit depth 8 or 16; samples given
    /// per row as big-endian-ready values (one value per sample), filter 0.
    /// </summary>
    public static byte[] Png(int width, int height, int colorType, int bitDepth, int[] samples, params (string Type, byte[] Data)[] extraChunks)
    {
        int channels = colorType switch { 0 => 1, 2 => 3, 4 => 2, 6 => 4, _ => throw new ArgumentException("colour type") };
        int bps = bitDepth / 8;
        if (samples.Length != width * height * channels) throw new ArgumentException("sample count");
        var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0);
            for (int i = 0; i < width * channels; i++)
            {
                int v = samples[y * width * channels + i];
                if (bps == 2) raw.WriteByte((byte)(v >> 8));
                raw.WriteByte((byte)v);
            }
        }
        var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) raw.WriteTo(zs);

        var png = new MemoryStream();
        png.Write(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A });
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(0), (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)height);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = (byte)colorType;
        Chunk(png, "IHDR", ihdr);
        foreach (var (type, data) in extraChunks) Chunk(png, type, data);
        Chunk(png, "IDAT", z.ToArray());
        Chunk(png, "IEND", Array.Empty<byte>());
        return png.ToArray();
    }
}
