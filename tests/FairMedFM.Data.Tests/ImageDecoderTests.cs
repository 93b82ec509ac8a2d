namespace FairMedFM.Data.Tests;

public class ImageDecoderTests
{
    [Fact]
    public void SixteenBitGreyKeepsTheHighByte()
    {
        using var t = new TempDir();
        var path = t.File("g16.png");
        File.WriteAllBytes(path, TestData.Png(4, 1, 0, 16, new[] { 0x0000, 0x01FF, 0x80FF, 0xFFFF }));
        var img = ImageDecoder.DecodeRgb(path);
        Assert.Equal((4, 1), (img.Width, img.Height));
        Assert.Equal(new byte[] { 0, 0, 0, 1, 1, 1, 0x80, 0x80, 0x80, 0xFF, 0xFF, 0xFF }, img.Pixels);
    }

    [Fact]
    public void SixteenBitRgbKeepsTheHighByteAsPilRgb16B()
    {
        using var t = new TempDir();
        var path = t.File("rgb16.png");
        File.WriteAllBytes(path, TestData.Png(2, 1, 2, 16, new[] { 0x1234, 0xABCD, 0x00FF, 0xFF00, 0x7F80, 0x8000 }));
        var img = ImageDecoder.DecodeRgb(path);
        Assert.Equal(new byte[] { 0x12, 0xAB, 0x00, 0xFF, 0x7F, 0x80 }, img.Pixels);
    }

    [Fact]
    public void SixteenBitRgbaDropsAlphaWithoutPremultiplying()
    {
        using var t = new TempDir();
        var path = t.File("rgba16.png");
        File.WriteAllBytes(path, TestData.Png(1, 1, 6, 16, new[] { 0xC8FF, 0x6400, 0x3200, 0x0000 }));
        Assert.Equal(new byte[] { 0xC8, 0x64, 0x32 }, ImageDecoder.DecodeRgb(path).Pixels);
    }

    [Fact]
    public void RgbaDropsAlphaLikePilConvertRgb()
    {
        using var t = new TempDir();
        var path = t.File("rgba.png");
        // Alpha 0 and 128 must not darken the colour (PIL convert('RGB') just drops the channel).
        File.WriteAllBytes(path, TestData.Png(2, 1, 6, 8, new[] { 200, 100, 50, 0, 10, 20, 30, 128 }));
        Assert.Equal(new byte[] { 200, 100, 50, 10, 20, 30 }, ImageDecoder.DecodeRgb(path).Pixels);
    }

    [Fact]
    public void GreyAndGreyAlphaBecomeThreeEqualChannels()
    {
        using var t = new TempDir();
        File.WriteAllBytes(t.File("g.png"), TestData.Png(3, 1, 0, 8, new[] { 0, 77, 255 }));
        Assert.Equal(new byte[] { 0, 0, 0, 77, 77, 77, 255, 255, 255 }, ImageDecoder.DecodeRgb(t.File("g.png")).Pixels);
        File.WriteAllBytes(t.File("ga.png"), TestData.Png(2, 1, 4, 8, new[] { 90, 0, 180, 255 }));
        Assert.Equal(new byte[] { 90, 90, 90, 180, 180, 180 }, ImageDecoder.DecodeRgb(t.File("ga.png")).Pixels);
    }

    [Fact]
    public void RealNihRgbaImageMatchesItsGreyValues()
    {
        // The README says 21 NIH files are RGBA with alpha 255 and R = G = B everywhere.
        var files = Directory.GetFiles(Path.Combine(TestPaths.NihDir, "images"), "*.png");
        var rgba = files.First(f => { var b = File.ReadAllBytes(f); return b[25] == 6; });
        var img = ImageDecoder.DecodeRgb(rgba);
        Assert.Equal((64, 64), (img.Width, img.Height));
        for (int i = 0; i < img.Pixels.Length; i += 3)
        {
            Assert.Equal(img.Pixels[i], img.Pixels[i + 1]);
            Assert.Equal(img.Pixels[i], img.Pixels[i + 2]);
        }
        Assert.True(img.Pixels.Distinct().Count() > 50); // a real radiograph, not a flat fill
    }

    [Fact]
    public void GammaChunkIsIgnoredLikePil()
    {
        // PIL hands back the stored samples whatever gAMA says; so must we (no colour management).
        using var t = new TempDir();
        var gamma = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(gamma, 100000); // gamma 1.0
        File.WriteAllBytes(t.File("gamma.png"), TestData.Png(3, 1, 2, 8, new[] { 10, 20, 30, 128, 128, 128, 250, 5, 60 }, ("gAMA", gamma)));
        Assert.Equal(new byte[] { 10, 20, 30, 128, 128, 128, 250, 5, 60 }, ImageDecoder.DecodeRgb(t.File("gamma.png")).Pixels);
    }

    [Fact]
    public void GarbageBytesThrowNamingThePath()
    {
        using var t = new TempDir();
        var path = t.File("corrupt.png");
        File.WriteAllBytes(path, Enumerable.Range(0, 200).Select(i => (byte)(i * 37 + 11)).ToArray());
        var e = Assert.Throws<DataException>(() => ImageDecoder.DecodeRgb(path));
        Assert.Equal(path, e.File);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void TruncatedPngThrows()
    {
        using var t = new TempDir();
        var bytes = File.ReadAllBytes(Path.Combine(TestPaths.NihDir, "images", "00000001_000.png"));
        var path = t.File("truncated.png");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<DataException>(() => ImageDecoder.DecodeRgb(path));
        Assert.Equal(path, e.File);
    }

    [Fact]
    public void MissingAndEmptyFilesThrow()
    {
        using var t = new TempDir();
        var missing = t.File("nope.png");
        Assert.Equal(missing, Assert.Throws<DataException>(() => ImageDecoder.DecodeRgb(missing)).File);
        var empty = t.File("empty.png");
        File.WriteAllBytes(empty, Array.Empty<byte>());
        Assert.Equal(empty, Assert.Throws<DataException>(() => ImageDecoder.DecodeRgb(empty)).File);
    }
}
