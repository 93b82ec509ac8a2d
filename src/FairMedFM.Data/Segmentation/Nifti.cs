using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace FairMedFM.Data.Segmentation;

/// <summary>NIfTI <c>datatype</c> codes this reader and writer support (the integer and real scalar types).</summary>
public enum NiftiDataType : short
{
    UInt8 = 2,
    Int16 = 4,
    Int32 = 8,
    Float32 = 16,
    Float64 = 64,
    Int8 = 256,
    UInt16 = 512,
    UInt32 = 768,
    Int64 = 1024,
    UInt64 = 1280,
}

/// <summary>
/// The fields of a NIfTI-1 or NIfTI-2 header that matter for reading a scalar volume, in NIfTI-2 precision
/// (64-bit dims and offsets, double-precision floats). Field names follow the standard (<c>nifti1.h</c>/<c>nifti2.h</c>).
/// </summary>
public sealed class NiftiHeader
{
    /// <summary>1 (348-byte header) or 2 (540-byte header).</summary>
    public int Version { get; init; } = 1;
    public bool BigEndian { get; init; }
    public NiftiDataType DataType { get; init; }
    public int BitPix { get; init; }
    /// <summary><c>dim[0..7]</c>: dim[0] = number of dimensions, dim[1..] = sizes.</summary>
    public long[] Dim { get; init; } = new long[8];
    /// <summary><c>pixdim[0..7]</c>: pixdim[0] = qfac (±1), pixdim[1..3] = voxel spacing (units in <see cref="XyztUnits"/>).</summary>
    public double[] PixDim { get; init; } = new double[8];
    public long VoxOffset { get; init; }
    public double SclSlope { get; init; }
    public double SclInter { get; init; }
    public int XyztUnits { get; init; }
    public int IntentCode { get; init; }
    public string IntentName { get; init; } = "";
    public string Description { get; init; } = "";
    /// <summary>0 = unknown, 1 = scanner, 2 = aligned, 3 = Talairach, 4 = MNI, 5 = template.</summary>
    public int QFormCode { get; init; }
    public int SFormCode { get; init; }
    public double QuaternB { get; init; }
    public double QuaternC { get; init; }
    public double QuaternD { get; init; }
    public double QOffsetX { get; init; }
    public double QOffsetY { get; init; }
    public double QOffsetZ { get; init; }
    public double[] SRowX { get; init; } = new double[4];
    public double[] SRowY { get; init; } = new double[4];
    public double[] SRowZ { get; init; } = new double[4];

    /// <summary>True when <c>scl_slope</c> asks for scaling (not 0, not NaN, and not the identity 1·x + 0).</summary>
    public bool HasScaling => SclSlope != 0 && !double.IsNaN(SclSlope) && !(SclSlope == 1 && (SclInter == 0 || double.IsNaN(SclInter)));

    /// <summary>
    /// Voxel (i,j,k) → world (x,y,z) as a row-major 3×4 matrix, by the standard's precedence: the sform when
    /// <c>sform_code &gt; 0</c>, else the qform when <c>qform_code &gt; 0</c>, else <c>diag(pixdim[1..3])</c> (method 1).
    /// </summary>
    public double[] Affine()
    {
        if (SFormCode > 0) return SFormAffine();
        if (QFormCode > 0) return QFormAffine();
        return new[] { PixDim[1], 0, 0, 0, 0, PixDim[2], 0, 0, 0, 0, PixDim[3], 0 };
    }

    /// <summary>The sform rows (srow_x, srow_y, srow_z) as a row-major 3×4 matrix, whatever <c>sform_code</c> says.</summary>
    public double[] SFormAffine() => SRowX.Concat(SRowY).Concat(SRowZ).ToArray();

    /// <summary>
    /// The qform (quaternion b, c, d with a = √(1 − b² − c² − d²), qfac = pixdim[0] sign, pixdim[1..3], qoffset) as a
    /// row-major 3×4 matrix, whatever <c>qform_code</c> says.
    /// </summary>
    public double[] QFormAffine()
    {
        var (sx, sy, sz) = (PixDim[1], PixDim[2], PixDim[3]);
        {
            double b = QuaternB, c = QuaternC, d = QuaternD;
            double a2 = 1.0 - (b * b + c * c + d * d);
            double a;
            if (a2 < 1e-7)
            {
                // Special case of the standard: a 180° rotation, renormalise (b,c,d).
                double n = Math.Sqrt(b * b + c * c + d * d);
                a = 0; b /= n; c /= n; d /= n;
            }
            else a = Math.Sqrt(a2);
            double qfac = PixDim[0] < 0 ? -1 : 1;
            double[,] r =
            {
                { a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c) },
                { 2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b) },
                { 2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b },
            };
            var s = new[] { sx, sy, sz * qfac };
            var o = new[] { QOffsetX, QOffsetY, QOffsetZ };
            var m = new double[12];
            for (int i = 0; i < 3; i++)
            {
                for (int j = 0; j < 3; j++) m[i * 4 + j] = r[i, j] * s[j];
                m[i * 4 + 3] = o[i];
            }
            return m;
        }
    }

    /// <summary>Size in bytes of one voxel of a data type.</summary>
    public static int BytesPerVoxel(NiftiDataType t) => t switch
    {
        NiftiDataType.UInt8 or NiftiDataType.Int8 => 1,
        NiftiDataType.Int16 or NiftiDataType.UInt16 => 2,
        NiftiDataType.Int32 or NiftiDataType.UInt32 or NiftiDataType.Float32 => 4,
        NiftiDataType.Float64 or NiftiDataType.Int64 or NiftiDataType.UInt64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unsupported NIfTI datatype"),
    };

    public static bool IsInteger(NiftiDataType t) => t is not (NiftiDataType.Float32 or NiftiDataType.Float64);
}

/// <summary>
/// A 3-D (or 1-D/2-D, padded to 3-D with size-1 axes) scalar volume read from a NIfTI file. Voxels are stored as in the
/// file, x fastest: voxel (i, j, k) is element <c>i + Nx·(j + Ny·k)</c>. The raw bytes are kept (converted to
/// little-endian), so memory is the file's data size; <see cref="ReadImage"/> and <see cref="ReadLabels"/> convert.
/// </summary>
public sealed class NiftiVolume
{
    public required NiftiHeader Header { get; init; }
    /// <summary>File the volume came from (for error messages), or a name given by the caller.</summary>
    public required string Source { get; init; }
    /// <summary>(Nx, Ny, Nz); missing axes are 1.</summary>
    public required int[] Shape { get; init; }
    /// <summary>Voxel spacing (pixdim[1..3]) of the three axes; 1 for an axis the file does not have.</summary>
    public required double[] Spacing { get; init; }
    /// <summary>Voxel data, little-endian, in the file's data type.</summary>
    public required byte[] RawData { get; init; }

    public int Nx => Shape[0];
    public int Ny => Shape[1];
    public int Nz => Shape[2];
    public long VoxelCount => (long)Shape[0] * Shape[1] * Shape[2];
    public NiftiDataType DataType => Header.DataType;

    /// <summary>Raw stored value of voxel <paramref name="index"/> (no scaling), as a double.</summary>
    public double RawValue(long index)
    {
        var s = RawData.AsSpan();
        switch (Header.DataType)
        {
            case NiftiDataType.UInt8: return s[(int)index];
            case NiftiDataType.Int8: return (sbyte)s[(int)index];
            case NiftiDataType.Int16: return BinaryPrimitives.ReadInt16LittleEndian(s[(int)(index * 2)..]);
            case NiftiDataType.UInt16: return BinaryPrimitives.ReadUInt16LittleEndian(s[(int)(index * 2)..]);
            case NiftiDataType.Int32: return BinaryPrimitives.ReadInt32LittleEndian(s[(int)(index * 4)..]);
            case NiftiDataType.UInt32: return BinaryPrimitives.ReadUInt32LittleEndian(s[(int)(index * 4)..]);
            case NiftiDataType.Float32: return BinaryPrimitives.ReadSingleLittleEndian(s[(int)(index * 4)..]);
            case NiftiDataType.Float64: return BinaryPrimitives.ReadDoubleLittleEndian(s[(int)(index * 8)..]);
            case NiftiDataType.Int64: return BinaryPrimitives.ReadInt64LittleEndian(s[(int)(index * 8)..]);
            case NiftiDataType.UInt64: return BinaryPrimitives.ReadUInt64LittleEndian(s[(int)(index * 8)..]);
            default: throw new InvalidOperationException("unsupported datatype");
        }
    }

    /// <summary>
    /// Image intensities with <c>scl_slope</c>/<c>scl_inter</c> applied (<c>v·slope + inter</c>, computed in double)
    /// when the slope is not 0/NaN, as the standard says. float32 output (what FairMedFM's SimpleITK/MONAI path uses).
    /// </summary>
    public float[] ReadImage()
    {
        var n = checked((int)VoxelCount);
        var outp = new float[n];
        bool scale = Header.HasScaling;
        double slope = Header.SclSlope, inter = double.IsNaN(Header.SclInter) ? 0 : Header.SclInter;
        if (!scale && Header.DataType == NiftiDataType.Float32)
        {
            for (int i = 0; i < n; i++) outp[i] = BinaryPrimitives.ReadSingleLittleEndian(RawData.AsSpan(i * 4));
            return outp;
        }
        for (int i = 0; i < n; i++)
        {
            double v = RawValue(i);
            outp[i] = (float)(scale ? v * slope + inter : v);
        }
        return outp;
    }

    /// <summary>
    /// Integer label map. The stored values are used as they are when <c>scl_slope</c> is 0, NaN or 1 with
    /// <c>scl_inter</c> 0 (label maps are normally written so); otherwise the scaling is applied and every result must
    /// be an integer. Non-integral values (float label files included) are an error naming the file and the voxel.
    /// </summary>
    public int[] ReadLabels()
    {
        var n = checked((int)VoxelCount);
        var outp = new int[n];
        bool scale = Header.HasScaling;
        double slope = Header.SclSlope, inter = double.IsNaN(Header.SclInter) ? 0 : Header.SclInter;
        for (int i = 0; i < n; i++)
        {
            double v = RawValue(i);
            if (scale) v = v * slope + inter;
            if (v != Math.Floor(v) || v < int.MinValue || v > int.MaxValue)
            {
                int x = i % Nx, y = i / Nx % Ny, z = i / Nx / Ny;
                throw new DataException(
                    $"label map voxel (i={x}, j={y}, k={z}) has value {v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}"
                    + (scale ? $" after scl_slope={Header.SclSlope}, scl_inter={Header.SclInter}" : "")
                    + "; label maps must hold integers", Source, field: "voxel data");
            }
            outp[i] = (int)v;
        }
        return outp;
    }
}

/// <summary>What to write: a volume of values in x-fastest order and how to encode it.</summary>
public sealed class NiftiWriteOptions
{
    /// <summary>(Nx, Ny, Nz); use Nz = 1 for a 2-D image (dim[0] is then 2).</summary>
    public required int[] Shape { get; init; }
    public required NiftiDataType DataType { get; init; }
    /// <summary>Voxel spacing (mm) of the three axes.</summary>
    public double[] Spacing { get; init; } = { 1, 1, 1 };
    /// <summary>World position of voxel (0,0,0) (qoffset and the sform's last column).</summary>
    public double[] Origin { get; init; } = { 0, 0, 0 };
    /// <summary>1 = NIfTI-1 (348-byte header), 2 = NIfTI-2 (540 bytes).</summary>
    public int Version { get; init; } = 1;
    public bool BigEndian { get; init; }
    /// <summary>Stored as <c>scl_slope</c>/<c>scl_inter</c>; the values written are <c>(value − inter)/slope</c>.</summary>
    public double SclSlope { get; init; } = 1;
    public double SclInter { get; init; }
    public int QFormCode { get; init; } = 1;
    public int SFormCode { get; init; } = 1;
    public string Description { get; init; } = "";
}

/// <summary>
/// NIfTI-1/NIfTI-2 single-file reader and writer (<c>.nii</c>, and <c>.nii.gz</c> recognised by the gzip magic bytes),
/// little- and big-endian, scalar data types of <see cref="NiftiDataType"/>, up to 3 dimensions (further
/// dimensions of size 1 are accepted). Header extensions are skipped. Errors name the file and the header field.
/// Not supported (clear error): separate <c>.hdr/.img</c> pairs, complex/RGB data types, 4-D series.
/// </summary>
public static class Nifti
{
    private const int Nifti1HeaderSize = 348;
    private const int Nifti2HeaderSize = 540;
    private static readonly byte[] Nifti2Magic = { (byte)'n', (byte)'+', (byte)'2', 0, 0x0D, 0x0A, 0x1A, 0x0A };

    public static NiftiVolume Read(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new DataException("NIfTI file not found", full);
        byte[] bytes;
        try { bytes = File.ReadAllBytes(full); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new DataException($"cannot read NIfTI file: {e.Message}", full, inner: e); }
        return Read(bytes, full);
    }

    /// <summary>
    /// Reads and checks only the header (a <c>.nii.gz</c> is decompressed only as far as the header): the same
    /// checks as <see cref="Read(string)"/> except that the data is not required to be present.
    /// Returns the header, the (Nx, Ny, Nz) shape and the spacing.
    /// </summary>
    public static (NiftiHeader Header, int[] Shape, double[] Spacing) ReadHeader(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new DataException("NIfTI file not found", full);
        byte[] head;
        try
        {
            using var fs = File.OpenRead(full);
            var first = new byte[2];
            int got = fs.ReadAtLeast(first, 2, throwOnEndOfStream: false);
            fs.Position = 0;
            Stream s = got == 2 && first[0] == 0x1F && first[1] == 0x8B ? new GZipStream(fs, CompressionMode.Decompress) : fs;
            using (s)
            {
                head = new byte[Nifti2HeaderSize];
                int n = s.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
                Array.Resize(ref head, n);
            }
        }
        catch (InvalidDataException e) { throw new DataException($"corrupt gzip stream: {e.Message}", full, field: "gzip", inner: e); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new DataException($"cannot read NIfTI file: {e.Message}", full, inner: e); }
        var (h, shape, spacing, _) = ParseHeader(head, full, requireData: false);
        return (h, shape, spacing);
    }

    /// <summary>Reads a NIfTI file's bytes (gzip-compressed or not); <paramref name="source"/> names it in errors.</summary>
    public static NiftiVolume Read(byte[] bytes, string source)
    {
        if (bytes.Length >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B) bytes = Gunzip(bytes, source);
        var (h, shape, spacing, dataBytes) = ParseHeader(bytes, source, requireData: true);
        int bpv = NiftiHeader.BytesPerVoxel(h.DataType);
        var raw = new byte[dataBytes];
        Buffer.BlockCopy(bytes, (int)h.VoxOffset, raw, 0, (int)dataBytes);
        if (h.BigEndian && bpv > 1)
            for (int o = 0; o < raw.Length; o += bpv) Array.Reverse(raw, o, bpv);
        return new NiftiVolume { Header = h, Source = source, Shape = shape, Spacing = spacing, RawData = raw };
    }

    private static (NiftiHeader Header, int[] Shape, double[] Spacing, long DataBytes) ParseHeader(byte[] bytes, string source, bool requireData)
    {
        DataException Err(string field, string reason) => new(reason, source, field: field);

        if (bytes.Length < 4) throw Err("sizeof_hdr", $"file is {bytes.Length} bytes long: too short for a NIfTI header");
        int le = BinaryPrimitives.ReadInt32LittleEndian(bytes), be = BinaryPrimitives.ReadInt32BigEndian(bytes);
        int version; bool big;
        if (le == Nifti1HeaderSize) { version = 1; big = false; }
        else if (be == Nifti1HeaderSize) { version = 1; big = true; }
        else if (le == Nifti2HeaderSize) { version = 2; big = false; }
        else if (be == Nifti2HeaderSize) { version = 2; big = true; }
        else throw Err("sizeof_hdr", $"is {le} (little-endian) / {be} (big-endian); a NIfTI-1 header has 348, NIfTI-2 540: not a NIfTI file");
        int hdrSize = version == 1 ? Nifti1HeaderSize : Nifti2HeaderSize;
        if (bytes.Length < hdrSize)
            throw Err("sizeof_hdr", $"file is truncated: {bytes.Length} bytes, but the NIfTI-{version} header alone needs {hdrSize}");

        var r = new Reader(bytes, big);
        NiftiHeader h = version == 1 ? ReadHeader1(r, Err) : ReadHeader2(r, Err);

        // Data type and bit depth.
        if (!Enum.IsDefined(h.DataType))
            throw Err("datatype", $"datatype code {(short)h.DataType} is not supported (supported: {string.Join(", ", Enum.GetValues<NiftiDataType>().Select(t => $"{(short)t} {t}"))}); complex and RGB volumes cannot be read");
        int bpv = NiftiHeader.BytesPerVoxel(h.DataType);
        if (h.BitPix != bpv * 8)
            throw Err("bitpix", $"is {h.BitPix} but datatype {h.DataType} has {bpv * 8} bits per voxel");

        // Dimensions: up to 3 spatial axes; further axes must have size 1.
        long ndim = h.Dim[0];
        if (ndim < 1 || ndim > 7) throw Err("dim[0]", $"number of dimensions is {ndim}; it must be 1..7");
        for (int i = 1; i <= ndim; i++)
            if (h.Dim[i] < 1) throw Err($"dim[{i}]", $"size is {h.Dim[i]}; it must be at least 1");
        for (int i = 4; i <= ndim; i++)
            if (h.Dim[i] != 1)
                throw Err($"dim[{i}]", $"is {h.Dim[i]}: {ndim}-D data (e.g. a time series) is not supported; only volumes of up to 3 dimensions (a 4th dimension of size 1 is accepted)");
        var shape = new int[3];
        var spacing = new double[3];
        for (int i = 0; i < 3; i++)
        {
            long n = i + 1 <= ndim ? h.Dim[i + 1] : 1;
            if (n > int.MaxValue) throw Err($"dim[{i + 1}]", $"size {n} is too large");
            shape[i] = (int)n;
            if (i + 1 <= ndim)
            {
                double p = h.PixDim[i + 1];
                if (!double.IsFinite(p) || p <= 0) throw Err($"pixdim[{i + 1}]", $"voxel spacing is {p}; it must be a positive number");
                spacing[i] = p;
            }
            else spacing[i] = 1;
        }
        long nvox = (long)shape[0] * shape[1] * shape[2];
        long dataBytes = nvox * bpv;
        if (dataBytes > Array.MaxLength) throw Err("dim", $"volume of {nvox} voxels ({dataBytes} bytes) is too large to hold in memory");

        if (h.VoxOffset < hdrSize) throw Err("vox_offset", $"is {h.VoxOffset}; in a single-file NIfTI the data starts after the {hdrSize}-byte header");
        if (requireData && h.VoxOffset + dataBytes > bytes.Length)
            throw Err("vox_offset", $"file is truncated: {nvox} voxels of {h.DataType} need {dataBytes} bytes from offset {h.VoxOffset}, but the file has only {Math.Max(0, bytes.Length - h.VoxOffset)} bytes there");

        if (double.IsInfinity(h.SclSlope)) throw Err("scl_slope", $"is {h.SclSlope}");
        if (h.HasScaling && double.IsInfinity(h.SclInter)) throw Err("scl_inter", $"is {h.SclInter}");
        return (h, shape, spacing, dataBytes);
    }

    private static byte[] Gunzip(byte[] bytes, string source)
    {
        try
        {
            using var gz = new GZipStream(new MemoryStream(bytes, writable: false), CompressionMode.Decompress);
            using var ms = new MemoryStream();
            gz.CopyTo(ms);
            return ms.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new DataException($"corrupt or truncated gzip stream: {e.Message}", source, field: "gzip", inner: e);
        }
        catch (EndOfStreamException e)
        {
            throw new DataException($"truncated gzip stream: {e.Message}", source, field: "gzip", inner: e);
        }
    }

    private static NiftiHeader ReadHeader1(Reader r, Func<string, string, DataException> err)
    {
        var magic = r.Bytes(344, 4);
        if (magic[0] == 'n' && magic[1] == 'i' && magic[2] == '1')
            throw err("magic", "'ni1' means a separate .hdr/.img pair, which is not supported; convert it to a single .nii(.gz) file");
        if (!(magic[0] == 'n' && magic[1] == '+' && magic[2] == '1' && magic[3] == 0))
            throw err("magic", $"is '{Printable(magic)}', expected 'n+1' for a NIfTI-1 single file");
        var dim = new long[8];
        for (int i = 0; i < 8; i++) dim[i] = r.I16(40 + 2 * i);
        var pix = new double[8];
        for (int i = 0; i < 8; i++) pix[i] = r.F32(76 + 4 * i);
        double vox = r.F32(108);
        if (!double.IsFinite(vox) || vox != Math.Floor(vox)) throw err("vox_offset", $"is {vox}; it must be a whole number of bytes");
        return new NiftiHeader
        {
            Version = 1, BigEndian = r.Big,
            Dim = dim, IntentCode = r.I16(68), DataType = (NiftiDataType)r.I16(70), BitPix = r.I16(72), PixDim = pix,
            VoxOffset = (long)vox, SclSlope = r.F32(112), SclInter = r.F32(116), XyztUnits = r.Bytes(123, 1)[0],
            Description = r.Text(148, 80), QFormCode = r.I16(252), SFormCode = r.I16(254),
            QuaternB = r.F32(256), QuaternC = r.F32(260), QuaternD = r.F32(264),
            QOffsetX = r.F32(268), QOffsetY = r.F32(272), QOffsetZ = r.F32(276),
            SRowX = Enumerable.Range(0, 4).Select(i => (double)r.F32(280 + 4 * i)).ToArray(),
            SRowY = Enumerable.Range(0, 4).Select(i => (double)r.F32(296 + 4 * i)).ToArray(),
            SRowZ = Enumerable.Range(0, 4).Select(i => (double)r.F32(312 + 4 * i)).ToArray(),
            IntentName = r.Text(328, 16),
        };
    }

    private static NiftiHeader ReadHeader2(Reader r, Func<string, string, DataException> err)
    {
        var magic = r.Bytes(4, 8);
        if (magic[0] == 'n' && magic[1] == 'i' && magic[2] == '2')
            throw err("magic", "'ni2' means a separate .hdr/.img pair, which is not supported; convert it to a single .nii(.gz) file");
        if (!magic.AsSpan(0, 4).SequenceEqual(Nifti2Magic.AsSpan(0, 4)))
            throw err("magic", $"is '{Printable(magic)}', expected 'n+2' for a NIfTI-2 single file");
        if (!magic.AsSpan().SequenceEqual(Nifti2Magic))
            throw err("magic", "the NIfTI-2 magic's line-ending check bytes (\\r\\n\\x1a\\n) are altered: the file was probably transferred in text mode");
        var dim = new long[8];
        for (int i = 0; i < 8; i++) dim[i] = r.I64(16 + 8 * i);
        var pix = new double[8];
        for (int i = 0; i < 8; i++) pix[i] = r.F64(104 + 8 * i);
        return new NiftiHeader
        {
            Version = 2, BigEndian = r.Big,
            DataType = (NiftiDataType)r.I16(12), BitPix = r.I16(14), Dim = dim, PixDim = pix,
            VoxOffset = r.I64(168), SclSlope = r.F64(176), SclInter = r.F64(184),
            Description = r.Text(240, 80), QFormCode = r.I32(344), SFormCode = r.I32(348),
            QuaternB = r.F64(352), QuaternC = r.F64(360), QuaternD = r.F64(368),
            QOffsetX = r.F64(376), QOffsetY = r.F64(384), QOffsetZ = r.F64(392),
            SRowX = Enumerable.Range(0, 4).Select(i => r.F64(400 + 8 * i)).ToArray(),
            SRowY = Enumerable.Range(0, 4).Select(i => r.F64(432 + 8 * i)).ToArray(),
            SRowZ = Enumerable.Range(0, 4).Select(i => r.F64(464 + 8 * i)).ToArray(),
            XyztUnits = r.I32(500), IntentCode = r.I32(504), IntentName = r.Text(508, 16),
        };
    }

    private static string Printable(byte[] b) =>
        string.Concat(b.Select(c => c >= 32 && c < 127 ? ((char)c).ToString() : $"\\x{c:x2}"));

    private sealed class Reader(byte[] b, bool big)
    {
        public bool Big => big;
        public short I16(int o) => big ? BinaryPrimitives.ReadInt16BigEndian(b.AsSpan(o)) : BinaryPrimitives.ReadInt16LittleEndian(b.AsSpan(o));
        public int I32(int o) => big ? BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(o)) : BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(o));
        public long I64(int o) => big ? BinaryPrimitives.ReadInt64BigEndian(b.AsSpan(o)) : BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(o));
        public float F32(int o) => big ? BinaryPrimitives.ReadSingleBigEndian(b.AsSpan(o)) : BinaryPrimitives.ReadSingleLittleEndian(b.AsSpan(o));
        public double F64(int o) => big ? BinaryPrimitives.ReadDoubleBigEndian(b.AsSpan(o)) : BinaryPrimitives.ReadDoubleLittleEndian(b.AsSpan(o));
        public byte[] Bytes(int o, int n) => b.AsSpan(o, n).ToArray();
        public string Text(int o, int n)
        {
            var s = b.AsSpan(o, n);
            int end = s.IndexOf((byte)0);
            return Encoding.ASCII.GetString(end < 0 ? s : s[..end]);
        }
    }

    // ------------------------------------------------------------------------------------------------ writer

    /// <summary>
    /// Writes <paramref name="values"/> (x fastest, length Nx·Ny·Nz) as a single-file NIfTI; gzip-compressed when the
    /// path ends in <c>.gz</c>. Each value is stored as <c>(value − scl_inter)/scl_slope</c> in the data type: for an
    /// integer type a stored value that is not an integer or out of range is an error; float32 rounds to nearest
    /// (a finite value beyond float32's range is an error).
    /// Both qform and sform describe an axis-aligned grid: diag(spacing) plus <see cref="NiftiWriteOptions.Origin"/>.
    /// </summary>
    public static void Write(string path, NiftiWriteOptions o, ReadOnlySpan<double> values)
    {
        var bytes = Encode(o, values, path);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        if (path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
        {
            using var fs = File.Create(path);
            using var gz = new GZipStream(fs, CompressionLevel.Optimal);
            gz.Write(bytes);
        }
        else File.WriteAllBytes(path, bytes);
    }

    public static void Write(string path, NiftiWriteOptions o, float[] values)
    {
        var d = new double[values.Length];
        for (int i = 0; i < d.Length; i++) d[i] = values[i];
        Write(path, o, d);
    }

    public static void Write(string path, NiftiWriteOptions o, int[] values)
    {
        var d = new double[values.Length];
        for (int i = 0; i < d.Length; i++) d[i] = values[i];
        Write(path, o, d);
    }

    /// <summary>The uncompressed file bytes (header, 4-byte empty extension flag, data).</summary>
    public static byte[] Encode(NiftiWriteOptions o, ReadOnlySpan<double> values, string nameForErrors = "<memory>")
    {
        if (o.Shape is not { Length: 3 } || o.Shape.Any(s => s < 1)) throw new ArgumentException("Shape must be 3 positive sizes (use 1 for a missing axis)");
        if (o.Version == 1 && o.Shape.Any(s => s > short.MaxValue)) throw new ArgumentException($"NIfTI-1 stores sizes as int16 (max {short.MaxValue}); write NIfTI-2 for larger axes");
        if (o.Spacing is not { Length: 3 } || o.Spacing.Any(s => !double.IsFinite(s) || s <= 0)) throw new ArgumentException("Spacing must be 3 positive numbers");
        if (o.Origin is not { Length: 3 } || o.Origin.Any(s => !double.IsFinite(s))) throw new ArgumentException("Origin must be 3 finite numbers");
        if (o.Version is not (1 or 2)) throw new ArgumentException("Version must be 1 or 2");
        if (!Enum.IsDefined(o.DataType)) throw new ArgumentException($"unsupported data type {o.DataType}");
        if (!(o.SclSlope != 0 && double.IsFinite(o.SclSlope) && double.IsFinite(o.SclInter))) throw new ArgumentException("scl_slope must be finite and non-zero, scl_inter finite");
        long nvox = (long)o.Shape[0] * o.Shape[1] * o.Shape[2];
        if (values.Length != nvox) throw new ArgumentException($"{values.Length} values given for a {o.Shape[0]}x{o.Shape[1]}x{o.Shape[2]} volume ({nvox} voxels)");
        int bpv = NiftiHeader.BytesPerVoxel(o.DataType);
        int hdr = o.Version == 1 ? Nifti1HeaderSize : Nifti2HeaderSize;
        int voxOffset = hdr + 4;
        var buf = new byte[checked(voxOffset + nvox * bpv)];
        var w = new Writer(buf, o.BigEndian);
        int ndim = o.Shape[2] > 1 ? 3 : o.Shape[1] > 1 ? 2 : 1;
        var dims = new long[8];
        dims[0] = ndim;
        for (int i = 0; i < 7; i++) dims[i + 1] = i < 3 ? o.Shape[i] : 1;
        var pix = new double[8];
        pix[0] = 1;
        for (int i = 0; i < 3; i++) pix[i + 1] = o.Spacing[i];
        for (int i = 4; i < 8; i++) pix[i] = 1;
        double[] srowX = { o.Spacing[0], 0, 0, o.Origin[0] }, srowY = { 0, o.Spacing[1], 0, o.Origin[1] }, srowZ = { 0, 0, o.Spacing[2], o.Origin[2] };
        const int units = 2 | 8; // mm, seconds
        var desc = Encoding.ASCII.GetBytes(o.Description.Length > 79 ? o.Description[..79] : o.Description);

        if (o.Version == 1)
        {
            w.I32(0, hdr);
            buf[38] = (byte)'r';
            for (int i = 0; i < 8; i++) w.I16(40 + 2 * i, checked((short)dims[i]));
            w.I16(70, (short)o.DataType);
            w.I16(72, (short)(bpv * 8));
            for (int i = 0; i < 8; i++) w.F32(76 + 4 * i, (float)pix[i]);
            w.F32(108, voxOffset);
            w.F32(112, (float)o.SclSlope);
            w.F32(116, (float)o.SclInter);
            buf[123] = units;
            desc.CopyTo(buf, 148);
            w.I16(252, (short)o.QFormCode);
            w.I16(254, (short)o.SFormCode);
            // quatern_b/c/d = 0 (identity rotation)
            w.F32(268, (float)o.Origin[0]); w.F32(272, (float)o.Origin[1]); w.F32(276, (float)o.Origin[2]);
            for (int i = 0; i < 4; i++) { w.F32(280 + 4 * i, (float)srowX[i]); w.F32(296 + 4 * i, (float)srowY[i]); w.F32(312 + 4 * i, (float)srowZ[i]); }
            buf[344] = (byte)'n'; buf[345] = (byte)'+'; buf[346] = (byte)'1'; buf[347] = 0;
        }
        else
        {
            w.I32(0, hdr);
            Nifti2Magic.CopyTo(buf, 4);
            w.I16(12, (short)o.DataType);
            w.I16(14, (short)(bpv * 8));
            for (int i = 0; i < 8; i++) w.I64(16 + 8 * i, dims[i]);
            for (int i = 0; i < 8; i++) w.F64(104 + 8 * i, pix[i]);
            w.I64(168, voxOffset);
            w.F64(176, o.SclSlope);
            w.F64(184, o.SclInter);
            desc.CopyTo(buf, 240);
            w.I32(344, o.QFormCode);
            w.I32(348, o.SFormCode);
            w.F64(376, o.Origin[0]); w.F64(384, o.Origin[1]); w.F64(392, o.Origin[2]);
            for (int i = 0; i < 4; i++) { w.F64(400 + 8 * i, srowX[i]); w.F64(432 + 8 * i, srowY[i]); w.F64(464 + 8 * i, srowZ[i]); }
            w.I32(500, units);
        }

        bool isInt = NiftiHeader.IsInteger(o.DataType);
        var (lo, hi) = Range(o.DataType);
        for (long i = 0; i < nvox; i++)
        {
            double v = (values[(int)i] - o.SclInter) / o.SclSlope;
            if (isInt && (v != Math.Floor(v) || v < lo || v > hi) || o.DataType == NiftiDataType.Float32 && double.IsFinite(v) && !float.IsFinite((float)v))
                throw new DataException($"value {values[(int)i]} at voxel {i} cannot be stored exactly as {o.DataType} (stored value {v})", nameForErrors, field: "datatype");
            int off = (int)(voxOffset + i * bpv);
            switch (o.DataType)
            {
                case NiftiDataType.UInt8: buf[off] = (byte)v; break;
                case NiftiDataType.Int8: buf[off] = (byte)(sbyte)v; break;
                case NiftiDataType.Int16: w.I16(off, (short)v); break;
                case NiftiDataType.UInt16: w.I16(off, unchecked((short)(ushort)v)); break;
                case NiftiDataType.Int32: w.I32(off, (int)v); break;
                case NiftiDataType.UInt32: w.I32(off, unchecked((int)(uint)v)); break;
                case NiftiDataType.Int64: w.I64(off, (long)v); break;
                case NiftiDataType.UInt64: w.I64(off, unchecked((long)(ulong)v)); break;
                case NiftiDataType.Float32: w.F32(off, (float)v); break;
                case NiftiDataType.Float64: w.F64(off, v); break;
            }
        }
        return buf;
    }

    private static (double Lo, double Hi) Range(NiftiDataType t) => t switch
    {
        NiftiDataType.UInt8 => (0, byte.MaxValue),
        NiftiDataType.Int8 => (sbyte.MinValue, sbyte.MaxValue),
        NiftiDataType.Int16 => (short.MinValue, short.MaxValue),
        NiftiDataType.UInt16 => (0, ushort.MaxValue),
        NiftiDataType.Int32 => (int.MinValue, int.MaxValue),
        NiftiDataType.UInt32 => (0, uint.MaxValue),
        // Only integers up to 2^53 are exact in a double anyway.
        NiftiDataType.Int64 => (-9007199254740992.0, 9007199254740992.0),
        NiftiDataType.UInt64 => (0, 9007199254740992.0),
        _ => (double.NegativeInfinity, double.PositiveInfinity),
    };

    private sealed class Writer(byte[] b, bool big)
    {
        public void I16(int o, short v) { if (big) BinaryPrimitives.WriteInt16BigEndian(b.AsSpan(o), v); else BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(o), v); }
        public void I32(int o, int v) { if (big) BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(o), v); else BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(o), v); }
        public void I64(int o, long v) { if (big) BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(o), v); else BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(o), v); }
        public void F32(int o, float v) { if (big) BinaryPrimitives.WriteSingleBigEndian(b.AsSpan(o), v); else BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(o), v); }
        public void F64(int o, double v) { if (big) BinaryPrimitives.WriteDoubleBigEndian(b.AsSpan(o), v); else BinaryPrimitives.WriteDoubleLittleEndian(b.AsSpan(o), v); }
    }
}
