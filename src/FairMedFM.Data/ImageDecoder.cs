using SkiaSharp;

namespace FairMedFM.Data;

/// <summary>
/// Decodes an image file to 8-bit RGB the way FairMedFM's <c>PIL.Image.open(p).convert("RGB")</c> sees it:
/// grey → three equal channels, RGBA/grey+alpha/palette+tRNS → colour with alpha dropped (not composited), no colour
/// management (ICC/gAMA ignored, as PIL does), no EXIF rotation (PIL does not apply it either).
/// 16-bit PNG: each sample is reduced to its high byte, <c>v &gt;&gt; 8</c>.
/// That equals PIL for 16-bit RGB(A) PNGs (PIL unpacks them with the "RGB;16B" raw mode, keeping the high byte).
/// For 16-bit grey PNGs PIL opens mode "I;16" and convert("RGB") clips values above 255, which saturates almost
/// every medical image; we deliberately use the high byte there too (documented deviation).
/// </summary>
public static class ImageDecoder
{
    public static RgbImage DecodeRgb(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new DataException("image file not found", full);
        byte[] bytes;
        try { bytes = File.ReadAllBytes(full); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new DataException($"cannot read image: {e.Message}", full, inner: e); }
        return DecodeRgb(bytes, full);
    }

    /// <summary>Decodes encoded bytes; <paramref name="nameForErrors"/> is used in error messages.</summary>
    public static RgbImage DecodeRgb(byte[] encoded, string nameForErrors = "<memory>")
    {
        if (encoded.Length == 0) throw new DataException("image file is empty", nameForErrors);
        // The codec owns (and disposes) the stream wrapper it is given.
        using var codec = SKCodec.Create(new MemoryStream(encoded, writable: false), out var createResult);
        if (codec is null)
            throw new DataException($"not a decodable image (unknown format or corrupt header; skia: {createResult})", nameForErrors);
        int w = codec.Info.Width, h = codec.Info.Height;
        if (w <= 0 || h <= 0) throw new DataException($"image has invalid size {w}x{h}", nameForErrors);

        // ColorSpace null = decode the stored samples without any colour conversion. For 16-bit PNGs Skia's decoder
        // reduces each sample to its high byte (v >> 8) when asked for 8888; the tests pin this with hand-made PNGs.
        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul, null);
        var buffer = new byte[info.BytesSize];
        var result = codec.GetPixels(info, buffer);
        if (result != SKCodecResult.Success)
            throw new DataException($"image could not be decoded completely (skia: {result}); the file is corrupt or truncated", nameForErrors);

        var rgb = new byte[w * h * 3];
        int n = w * h;
        for (int i = 0; i < n; i++)
        {
            rgb[i * 3 + 0] = buffer[i * 4 + 0];
            rgb[i * 3 + 1] = buffer[i * 4 + 1];
            rgb[i * 3 + 2] = buffer[i * 4 + 2];
        }
        return new RgbImage(w, h, rgb);
    }
}
