using FairMedFM.Data.Segmentation;

namespace FairMedFM.Data.Tests.Segmentation;

public class SlicingAndImagingTests
{
    private static readonly int[] Shape = { 4, 3, 5 }; // Nx, Ny, Nz

    private static int Idx(int i, int j, int k) => i + Shape[0] * (j + Shape[1] * k);

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void Slices_follow_numpy_indexing_rows_are_the_lower_remaining_axis(int axis)
    {
        // Each voxel holds a code of its (i, j, k).
        var labels = new int[60];
        for (int k = 0; k < 5; k++) for (int j = 0; j < 3; j++) for (int i = 0; i < 4; i++) labels[Idx(i, j, k)] = 100 * i + 10 * j + k;
        int index = 1;
        var s = VolumeSlicer.Slice(labels, Shape, axis, index);
        var (ra, ca) = VolumeSlicer.InPlaneAxes(axis);
        Assert.Equal(Shape[ra], s.Height);
        Assert.Equal(Shape[ca], s.Width);
        for (int r = 0; r < s.Height; r++)
            for (int c = 0; c < s.Width; c++)
            {
                var ijk = new int[3];
                ijk[axis] = index; ijk[ra] = r; ijk[ca] = c;
                Assert.Equal(100 * ijk[0] + 10 * ijk[1] + ijk[2], s[c, r]);
            }
        // The 8-bit image slice uses the same geometry.
        var bytes = labels.Select(v => (byte)(v % 256)).ToArray();
        var (px, w, h) = VolumeSlicer.Slice(bytes, Shape, axis, index);
        Assert.Equal((s.Width, s.Height), (w, h));
        Assert.Equal(s.Values.Select(v => (byte)(v % 256)), px);
    }

    [Fact]
    public void Slice_selection_target_any_label_and_all()
    {
        var labels = new int[60];
        labels[Idx(1, 1, 1)] = 2; // target in z = 1
        labels[Idx(2, 0, 3)] = 1; // other class in z = 3
        Assert.Equal(new[] { 1 }, VolumeSlicer.SelectSlices(labels, Shape, 2, 2, SliceKeep.Target));
        Assert.Equal(new[] { 1, 3 }, VolumeSlicer.SelectSlices(labels, Shape, 2, 2, SliceKeep.AnyLabel));
        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, VolumeSlicer.SelectSlices(labels, Shape, 2, 2, SliceKeep.All));
        Assert.Equal(new[] { 1 }, VolumeSlicer.SelectSlices(labels, Shape, 0, 2, SliceKeep.Target));
        Assert.Equal(new[] { 0, 1 }, VolumeSlicer.SelectSlices(labels, Shape, 1, 2, SliceKeep.AnyLabel));
    }

    [Fact]
    public void Minmax_scaling_is_per_volume_float32_then_round_half_even()
    {
        // min 0, max 2: 1 → 0.5·255 = 127.5 → 128; 0.25 → 31.875 → 32; 1.75 → 223.125 → 223.
        var vol = new float[] { 0, 1, 2, 0.25f, 1.75f };
        Assert.Equal(new byte[] { 0, 128, 255, 32, 223 }, VolumeSlicer.ScaleToUint8(vol, IntensityScaling.MinMax));
        // Offset volumes (CT HU): min maps to 0, max to 255 — one scaling for the whole volume, not per slice.
        var ct = new float[] { -1000, -1000, 3000, 1000 };
        Assert.Equal(new byte[] { 0, 0, 255, 128 }, VolumeSlicer.ScaleToUint8(ct, IntensityScaling.MinMax));
        // Constant volume: 0 everywhere (the reference's 0/0 → NaN → 0).
        Assert.Equal(new byte[3], VolumeSlicer.ScaleToUint8(new float[] { 7, 7, 7 }, IntensityScaling.MinMax));
    }

    [Fact]
    public void A_volume_with_an_infinite_or_nan_voxel_is_refused_in_every_mode()
    {
        // One +Inf under min–max scaling would map every real voxel to 0: a silently wrong image, so it is an error.
        var inf = new float[] { 0, 1, float.PositiveInfinity, 2 };
        foreach (var mode in new[] { IntensityScaling.MinMax, new IntensityScaling(IntensityMode.Window, -100, 400), new IntensityScaling(IntensityMode.Percentile, 1, 99) })
        {
            var e = Assert.Throws<ArgumentException>(() => VolumeSlicer.ScaleToUint8(inf, mode));
            Assert.Contains("1 non-finite value(s)", e.Message);
            Assert.Contains("at voxel 2", e.Message);
        }
        Assert.Contains("non-finite", Assert.Throws<ArgumentException>(() => VolumeSlicer.ScaleToUint8(new float[] { float.NaN, 1 }, IntensityScaling.MinMax)).Message);
    }

    [Fact]
    public void Window_and_percentile_scaling_clip_first()
    {
        var vol = new float[] { -2000, -100, 0, 100, 400, 3000 };
        var w = VolumeSlicer.ScaleToUint8(vol, new IntensityScaling(IntensityMode.Window, -100, 400));
        Assert.Equal(new byte[] { 0, 0, 51, 102, 255, 255 }, w);
        // Percentiles of 0..100 (101 values): p10 = 10, p90 = 90.
        var ramp = Enumerable.Range(0, 101).Select(i => (float)i).ToArray();
        Assert.Equal(10, VolumeSlicer.Percentile(ramp, 10), 9);
        Assert.Equal(12.5, VolumeSlicer.Percentile(new float[] { 0, 10, 20, 30, 40 }, 31.25), 9);
        var p = VolumeSlicer.ScaleToUint8(ramp, new IntensityScaling(IntensityMode.Percentile, 10, 90));
        Assert.Equal(0, p[5]);
        Assert.Equal(0, p[10]);
        Assert.Equal(255, p[90]);
        Assert.Equal(255, p[100]);
        Assert.Equal(128, p[50]); // 40/80·255 = 127.5 → 128
        Assert.Throws<DataException>(() => new IntensityScaling(IntensityMode.Percentile, 90, 10).Validate());
    }

    [Fact]
    public void Nearest_indices_are_opencv_inter_nearest()
    {
        // OpenCV INTER_NEAREST: sx = floor(dx · src/dst) (not pixel-centre aligned).
        Assert.Equal(new[] { 0, 0, 0, 1, 1, 2, 2 }, SegImaging.NearestIndices(3, 7));
        Assert.Equal(new[] { 0, 2, 4 }, SegImaging.NearestIndices(6, 3));
        Assert.Equal(new[] { 0, 1, 2, 4, 5, 7, 8 }, SegImaging.NearestIndices(10, 7));
        Assert.Equal(Enumerable.Range(0, 5), SegImaging.NearestIndices(5, 5));
    }

    [Fact]
    public void Nearest_resize_of_a_label_map_never_invents_labels()
    {
        var rng = new SegRandom(3);
        var values = Enumerable.Range(0, 13 * 9).Select(_ => new[] { 0, 1, 2, 255 }[rng.NextInt(4)]).ToArray();
        var map = new LabelMap(13, 9, values);
        foreach (var (w, h) in new[] { (64, 64), (5, 3), (13, 40), (256, 7) })
        {
            var r = SegImaging.ResizeNearest(map, w, h);
            Assert.Equal(w, r.Width);
            Assert.Equal(h, r.Height);
            Assert.Subset(new HashSet<int> { 0, 1, 2, 255 }, r.Values.ToHashSet());
            var xs = SegImaging.NearestIndices(13, w);
            var ys = SegImaging.NearestIndices(9, h);
            for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) Assert.Equal(map[xs[x], ys[y]], r[x, y]);
        }
    }

    [Fact]
    public void Exact_2x_downscale_uses_the_2x2_rounded_mean_and_other_sizes_the_bilinear_path()
    {
        var px = new byte[4 * 4 * 3];
        for (int i = 0; i < px.Length; i++) px[i] = (byte)(i * 7 % 256);
        var img = new RgbImage(4, 4, px);
        var half = SegImaging.ResizeLinearCv2(img, 2, 2);
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 2; x++)
                for (int c = 0; c < 3; c++)
                {
                    int sum = img[2 * x, 2 * y, c] + img[2 * x + 1, 2 * y, c] + img[2 * x, 2 * y + 1, c] + img[2 * x + 1, 2 * y + 1, c];
                    Assert.Equal((byte)((sum + 2) >> 2), half[x, y, c]);
                }
        var up = SegImaging.ResizeLinearCv2(img, 8, 6);
        Assert.Equal(Preprocess.ResizeBilinearCv2(img, 8, 6).Pixels, up.Pixels);
    }

    [Fact]
    public void Label_pngs_decode_to_integers_and_colour_or_16_bit_masks_are_refused()
    {
        using var tmp = new TempDir();
        var map = new LabelMap(5, 4, Enumerable.Range(0, 20).Select(i => new[] { 0, 1, 127, 255 }[i % 4]).ToArray());
        var path = tmp.File("m.png");
        SegImaging.WriteLabelPng(path, map);
        var back = SegImaging.DecodeLabelMap(path);
        Assert.Equal(map.Values, back.Values);
        Assert.Equal(0, File.ReadAllBytes(path)[25]); // PNG colour type 0: grey
        Assert.Equal(8, File.ReadAllBytes(path)[24]); // bit depth 8

        var rgb = TestData.Png(2, 1, 2, 8, new[] { 5, 5, 5, 1, 2, 3 });
        var e = Assert.Throws<DataException>(() => SegImaging.DecodeLabelMap(rgb, "colour.png"));
        Assert.Contains("(x=1, y=0)", e.Message);
        Assert.Contains("single-channel", e.Message);
        // RGB with equal channels (a grey mask saved as colour) is fine.
        Assert.Equal(new[] { 5, 9 }, SegImaging.DecodeLabelMap(TestData.Png(2, 1, 2, 8, new[] { 5, 5, 5, 9, 9, 9 }), "g.png").Values);
        var g16 = TestData.Png(2, 1, 0, 16, new[] { 300, 2 });
        Assert.Contains("16-bit", Assert.Throws<DataException>(() => SegImaging.DecodeLabelMap(g16, "g16.png")).Message);
    }
}
