using System.Buffers.Binary;
using System.IO.Compression;
using System.Text.Json;
using FairMedFM.Data.Segmentation;

namespace FairMedFM.Data.Tests.Segmentation;

public class NiftiTests
{
    private static string Fixtures => Path.Combine(TestPaths.RepoRoot, "tests", "FairMedFM.Data.Tests", "Segmentation", "Fixtures");

    public static IEnumerable<object[]> NibabelCases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures, "nifti_expected.json")));
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
            yield return new object[] { c.GetProperty("file").GetString()! };
    }

    [Theory]
    [MemberData(nameof(NibabelCases))]
    public void Reads_files_written_by_nibabel_as_nibabel_reads_them(string file)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures, "nifti_expected.json")));
        var c = doc.RootElement.GetProperty("cases").EnumerateArray().Single(x => x.GetProperty("file").GetString() == file);
        var v = Nifti.Read(Path.Combine(Fixtures, file));

        Assert.Equal(c.GetProperty("version").GetInt32(), v.Header.Version);
        Assert.Equal(c.GetProperty("big_endian").GetBoolean(), v.Header.BigEndian);
        Assert.Equal(c.GetProperty("datatype").GetInt32(), (int)v.DataType);
        var shape = c.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        for (int i = 0; i < 3; i++) Assert.Equal(i < shape.Length ? shape[i] : 1, v.Shape[i]);
        var zooms = c.GetProperty("zooms").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        for (int i = 0; i < Math.Min(3, zooms.Length); i++) Assert.Equal(zooms[i], v.Spacing[i], 1e-6);
        Assert.Equal(c.GetProperty("qform_code").GetInt32(), v.Header.QFormCode);
        Assert.Equal(c.GetProperty("sform_code").GetInt32(), v.Header.SFormCode);

        var affine = c.GetProperty("affine").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var ours = v.Header.Affine();
        if (v.Header.QFormCode > 0 || v.Header.SFormCode > 0)
            for (int i = 0; i < 12; i++) Assert.Equal(affine[i], ours[i], 1e-5);
        else
            // No orientation: the standard's method 1, diag(pixdim). (nibabel falls back to an ANALYZE-style
            // affine with a flipped, centred x axis instead; we follow nifti1.h.)
            Assert.Equal(new[] { v.Spacing[0], 0, 0, 0, 0, v.Spacing[1], 0, 0, 0, 0, v.Spacing[2], 0 }, ours);
        if (v.Header.QFormCode > 0)
        {
            var q = c.GetProperty("qform").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            var oq = v.Header.QFormAffine();
            for (int i = 0; i < 12; i++) Assert.Equal(q[i], oq[i], 1e-5);
        }

        var expected = c.GetProperty("values").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var img = v.ReadImage();
        Assert.Equal(expected.Length, img.Length);
        for (int i = 0; i < img.Length; i++)
            Assert.True(Math.Abs(expected[i] - img[i]) <= 1e-6 * Math.Max(1, Math.Abs(expected[i])), $"voxel {i}: {img[i]} vs nibabel {expected[i]}");
        if (NiftiHeader.IsInteger(v.DataType))
        {
            var labels = v.ReadLabels();
            for (int i = 0; i < labels.Length; i++) Assert.Equal(expected[i], labels[i]);
        }
    }

    [Fact]
    public void Scaling_is_applied_to_images_and_integral_scaled_labels()
    {
        var v = Nifti.Read(Path.Combine(Fixtures, "nib_n1_le_int16_scaled.nii.gz"));
        Assert.Equal(2.0, v.Header.SclSlope);
        Assert.Equal(-10.0, v.Header.SclInter);
        Assert.True(v.Header.HasScaling);
        // raw value r -> 2r - 10
        Assert.Equal(v.RawValue(0) * 2 - 10, v.ReadImage()[0]);
        Assert.Equal((int)(v.RawValue(0) * 2 - 10), v.ReadLabels()[0]);
    }

    [Fact]
    public void A_4d_series_is_refused_naming_dim4()
    {
        var e = Assert.Throws<DataException>(() => Nifti.Read(Path.Combine(Fixtures, "nib_n1_4d3.nii")));
        Assert.Equal("dim[4]", e.Field);
        Assert.Contains("nib_n1_4d3.nii", e.Message);
        Assert.Contains("is 3", e.Message);
    }

    public static IEnumerable<object[]> RoundTripCases()
    {
        foreach (var t in Enum.GetValues<NiftiDataType>())
            foreach (var version in new[] { 1, 2 })
                foreach (var big in new[] { false, true })
                    yield return new object[] { t, version, big, (int)t % 3 == 0 };
    }

    [Theory]
    [MemberData(nameof(RoundTripCases))]
    public void Writer_round_trips_every_datatype_version_and_endianness(NiftiDataType type, int version, bool big, bool gz)
    {
        using var tmp = new TempDir();
        var shape = new[] { 5, 4, 3 };
        var values = new double[60];
        var (lo, hi) = type switch
        {
            NiftiDataType.UInt8 => (0.0, 255.0),
            NiftiDataType.Int8 => (-128.0, 127.0),
            NiftiDataType.Int16 => (-32768.0, 32767.0),
            NiftiDataType.UInt16 => (0.0, 65535.0),
            NiftiDataType.UInt32 or NiftiDataType.UInt64 => (0.0, 4e9),
            _ => (-2e9, 2e9),
        };
        var rng = new SegRandom(42);
        for (int i = 0; i < values.Length; i++)
        {
            double x = lo + (hi - lo) * rng.NextDouble();
            values[i] = NiftiHeader.IsInteger(type) ? Math.Floor(x) : type == NiftiDataType.Float32 ? (float)(x / 1e6) : x / 1e6;
        }
        values[0] = lo; values[1] = hi;
        if (type == NiftiDataType.Float32) { values[0] = (float)values[0]; values[1] = (float)values[1]; }
        var path = tmp.File("v.nii" + (gz ? ".gz" : ""));
        Nifti.Write(path, new NiftiWriteOptions
        {
            Shape = shape, DataType = type, Version = version, BigEndian = big,
            Spacing = new[] { 0.5, 0.75, 2.5 }, Origin = new[] { -10.0, 20.0, 3.5 }, Description = "round trip",
        }, values);
        if (gz) Assert.Equal(0x1F, File.ReadAllBytes(path)[0]);

        var v = Nifti.Read(path);
        Assert.Equal(version, v.Header.Version);
        Assert.Equal(big, v.Header.BigEndian);
        Assert.Equal(type, v.DataType);
        Assert.Equal(shape, v.Shape);
        Assert.Equal(new[] { 0.5, 0.75, 2.5 }, v.Spacing);
        Assert.Equal("round trip", v.Header.Description);
        for (int i = 0; i < values.Length; i++) Assert.Equal(values[i], v.RawValue(i));
        var aff = v.Header.Affine();
        Assert.Equal(new[] { 0.5, 0, 0, -10, 0, 0.75, 0, 20, 0, 0, 2.5, 3.5 }, aff);
        Assert.Equal(aff, v.Header.QFormAffine());
        var (h, hs, sp) = Nifti.ReadHeader(path);
        Assert.Equal(shape, hs);
        Assert.Equal(v.Spacing, sp);
        Assert.Equal(type, h.DataType);
    }

    [Fact]
    public void Writer_applies_slope_and_intercept_and_a_2d_image_has_dim0_2()
    {
        using var tmp = new TempDir();
        var path = tmp.File("s.nii");
        var values = new double[] { -10, -8, 0, 100, 2, 4 };
        Nifti.Write(path, new NiftiWriteOptions { Shape = new[] { 3, 2, 1 }, DataType = NiftiDataType.Int16, SclSlope = 2, SclInter = -10 }, values);
        var v = Nifti.Read(path);
        Assert.Equal(2, v.Header.Dim[0]);
        Assert.Equal(new double[] { 0, 1, 5, 55, 6, 7 }, Enumerable.Range(0, 6).Select(i => v.RawValue(i)));
        Assert.Equal(values.Select(x => (float)x), v.ReadImage());
        // A value the integer type cannot hold exactly is an error, not a silent rounding.
        var e = Assert.Throws<DataException>(() => Nifti.Write(tmp.File("bad.nii"), new NiftiWriteOptions { Shape = new[] { 1, 1, 1 }, DataType = NiftiDataType.UInt8 }, new double[] { 256 }));
        Assert.Equal("datatype", e.Field);
        Assert.Throws<DataException>(() => Nifti.Write(tmp.File("bad.nii"), new NiftiWriteOptions { Shape = new[] { 1, 1, 1 }, DataType = NiftiDataType.Int16 }, new double[] { 1.5 }));
    }

    // ---------------------------------------------------------------------------------------------- bad input

    private static byte[] Valid(int version = 1, bool big = false, NiftiDataType type = NiftiDataType.Int16) =>
        Nifti.Encode(new NiftiWriteOptions { Shape = new[] { 4, 3, 2 }, DataType = type, Version = version, BigEndian = big },
            Enumerable.Range(0, 24).Select(i => (double)i).ToArray());

    private static DataException ReadBad(byte[] bytes) => Assert.Throws<DataException>(() => Nifti.Read(bytes, "bad.nii"));

    [Fact]
    public void Wrong_sizeof_hdr_is_named()
    {
        var b = Valid();
        BinaryPrimitives.WriteInt32LittleEndian(b, 349);
        var e = ReadBad(b);
        Assert.Equal("sizeof_hdr", e.Field);
        Assert.Equal("bad.nii", e.File);
        Assert.Contains("348", e.Message);
    }

    [Theory]
    [InlineData(1, 100)]
    [InlineData(2, 300)]
    public void A_truncated_header_is_named(int version, int keep)
    {
        var e = ReadBad(Valid(version)[..keep]);
        Assert.Equal("sizeof_hdr", e.Field);
        Assert.Contains("truncated", e.Message);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, true)]
    public void Truncated_voxel_data_is_named(int version, bool big)
    {
        var b = Valid(version, big);
        var e = ReadBad(b[..^5]);
        Assert.Equal("vox_offset", e.Field);
        Assert.Contains("truncated", e.Message);
        Assert.Contains("48 bytes", e.Message); // 24 int16 voxels
    }

    [Fact]
    public void A_truncated_gzip_file_is_an_error()
    {
        var raw = Valid();
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Optimal, leaveOpen: true)) gz.Write(raw);
        var all = ms.ToArray();
        var e = Assert.Throws<DataException>(() => Nifti.Read(all[..(all.Length / 2)], "cut.nii.gz"));
        Assert.Equal("cut.nii.gz", e.File);
        Assert.True(e.Field is "gzip" or "vox_offset" or "sizeof_hdr", e.Message);
    }

    [Theory]
    [InlineData(32, "datatype")]   // complex64
    [InlineData(128, "datatype")]  // RGB24
    [InlineData(0, "datatype")]
    public void Unsupported_datatypes_are_named(short code, string field)
    {
        var b = Valid();
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(70), code);
        var e = ReadBad(b);
        Assert.Equal(field, e.Field);
        Assert.Contains(code.ToString(), e.Message);
    }

    [Fact]
    public void Bitpix_datatype_mismatch_is_named()
    {
        var b = Valid(2, big: true);
        BinaryPrimitives.WriteInt16BigEndian(b.AsSpan(14), 8);
        Assert.Equal("bitpix", ReadBad(b).Field);
    }

    [Fact]
    public void Bad_magic_and_hdr_img_pairs_are_named()
    {
        var b = Valid();
        b[345] = (byte)'i';
        Assert.Contains("'ni1'", ReadBad(b).Message);
        b[345] = (byte)'x';
        Assert.Equal("magic", ReadBad(b).Field);
        var b2 = Valid(2);
        b2[8] = 0x0A; // \r\n\x1a\n altered (a \r turned into \n)
        Assert.Contains("text mode", ReadBad(b2).Message);
    }

    [Fact]
    public void Bad_dims_and_spacing_are_named()
    {
        var b = Valid();
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(40), 9);
        Assert.Equal("dim[0]", ReadBad(b).Field);
        b = Valid();
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(44), 0);
        Assert.Equal("dim[2]", ReadBad(b).Field);
        b = Valid();
        BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(76 + 12), -1f);
        Assert.Equal("pixdim[3]", ReadBad(b).Field);
        b = Valid();
        BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(108), 100f);
        Assert.Equal("vox_offset", ReadBad(b).Field);
    }

    [Fact]
    public void Float_label_volumes_must_hold_integers()
    {
        var b = Nifti.Encode(new NiftiWriteOptions { Shape = new[] { 2, 2, 1 }, DataType = NiftiDataType.Float32 }, new double[] { 0, 1, 2, 2.5 });
        var v = Nifti.Read(b, "lab.nii");
        var e = Assert.Throws<DataException>(() => v.ReadLabels());
        Assert.Contains("(i=1, j=1, k=0)", e.Message);
        Assert.Contains("2.5", e.Message);
        Assert.Equal(new[] { 0, 1, 2 }, Nifti.Read(Nifti.Encode(new NiftiWriteOptions { Shape = new[] { 3, 1, 1 }, DataType = NiftiDataType.Float32 }, new double[] { 0, 1, 2 }), "ok.nii").ReadLabels());
    }

    [Fact]
    public void A_missing_file_is_named()
    {
        var e = Assert.Throws<DataException>(() => Nifti.Read("/nonexistent/x.nii.gz"));
        Assert.Contains("not found", e.Message);
        Assert.Equal("/nonexistent/x.nii.gz", e.File);
    }
}
