using System.Security.Cryptography;
using FairMedFM.Data.Segmentation;

namespace FairMedFM.Data.Tests.Segmentation;

public class SegmentationDatasetTests
{
    /// <summary>
    /// A hand-made 2-D dataset in tmp/data: 4 rows (3 patients), 8×6 images, labels 0/127/255, and the card of
    /// <see cref="SegmentationCardTests.Card"/> (target 255). Row 4's label map has no 255 (empty target mask).
    /// </summary>
    private static string Tiny(TempDir tmp, string? csv = null, string? cardExtra = null)
    {
        var root = Path.Combine(tmp.Path, "data");
        for (int r = 0; r < 4; r++)
        {
            var img = new byte[48];
            for (int i = 0; i < 48; i++) img[i] = (byte)(i * 5 + r);
            SegImaging.WriteGrayPng(Path.Combine(root, "image", $"i{r}.png"), 8, 6, img);
            var lab = new int[48];
            if (r < 3) for (int y = 1; y <= 2 + r; y++) for (int x = 2; x <= 4 + r; x++) lab[y * 8 + x] = 255;
            lab[47] = 127;
            SegImaging.WriteLabelPng(Path.Combine(root, "label", $"i{r}.png"), new LabelMap(8, 6, lab));
        }
        File.WriteAllText(Path.Combine(root, "metadata.csv"), csv ?? """
            index,imagePath,labelPath,pid,sexBinary,age,site
            0,image/i0.png,label/i0.png,p1,F,70,a
            1,image/i1.png,label/i1.png,p1,F,70,b
            2,image/i2.png,label/i2.png,p2,M,30,c
            3,image/i3.png,label/i3.png,p3,M,61,a

            """);
        var card = tmp.File("card.yaml");
        File.WriteAllText(card, SegmentationCardTests.Card + (cardExtra ?? ""));
        return card;
    }

    [Fact]
    public void Loads_2d_rows_with_groups_ids_and_hash()
    {
        using var tmp = new TempDir();
        var ds = SegmentationDataset.Load(Tiny(tmp));
        Assert.Equal(4, ds.Count);
        Assert.Equal(4, ds.RowCount);
        Assert.Empty(ds.SkippedVolumes);
        var s = ds.Samples[2];
        Assert.Equal("image/i2.png", s.Id);
        Assert.Equal(3, s.Row);
        Assert.Equal("p2", s.PatientId);
        Assert.Equal("image/i2.png", s.VolumeId);
        Assert.Null(s.SliceIndex);
        Assert.False(s.FromVolume);
        Assert.Equal("M", s.Groups["sex"]);
        Assert.Equal(1, s.GroupCodes["sex"]);
        Assert.Equal("<60", s.Groups["age60"]);
        Assert.Equal("M|C", s.Groups["sex_x_site"]);
        Assert.Equal(0, ds.Samples[0].GroupCodes["sex"]);
        Assert.True(ds.FilesHashed);
        Assert.Matches("^[0-9a-f]{64}$", ds.DataHash);
        Assert.Equal(ds.DataHash, SegmentationDataset.Load(tmp.File("card.yaml")).DataHash);
        Assert.NotEqual(ds.DataHash, SegmentationDataset.Load(tmp.File("card.yaml"), hashFiles: false).DataHash);
        // A changed label file changes the hash.
        var lbl = Path.Combine(tmp.Path, "data", "label", "i3.png");
        SegImaging.WriteLabelPng(lbl, new LabelMap(8, 6, new int[48]));
        Assert.NotEqual(ds.DataHash, SegmentationDataset.Load(tmp.File("card.yaml")).DataHash);
    }

    [Fact]
    public void Items_have_mask_of_the_target_value_prompts_and_reference_resizes()
    {
        using var tmp = new TempDir();
        var ds = SegmentationDataset.Load(Tiny(tmp));
        var it = ds.LoadItem(0, runSeed: 5);
        Assert.Equal((8, 6), (it.Width, it.Height));
        Assert.Equal(255, it.TargetValue);
        Assert.Equal(6, it.Mask.Count(b => b == 1)); // x 2..4, y 1..2
        Assert.Equal(new PromptBox(2, 1, 4, 2), it.Prompts.Box);
        Assert.Equal(new PromptPoint(3, 1), it.Prompts.Center);
        Assert.Equal(127, it.Labels[7, 5]);
        Assert.Equal(0, it.Mask[47]); // label 127 is not the target
        Assert.Equal(48 * 3, it.ImageHwc().Length);
        Assert.Equal(5f, it.ImageGrayHw()[1]);
        Assert.Equal(3 * 48, it.ImageChw(AlbumentationsNormalization.FairMedFMSegmentation).Length);

        // Resize to S×S: cv2 bilinear for the image, nearest for the labels; prompts in the resized grid.
        var r = ds.LoadItem(0, new SegmentationTransform(16), runSeed: 5);
        Assert.Equal((16, 16), (r.Width, r.Height));
        var xs = SegImaging.NearestIndices(8, 16);
        var ys = SegImaging.NearestIndices(6, 16);
        for (int y = 0; y < 16; y++) for (int x = 0; x < 16; x++) Assert.Equal(it.Labels[xs[x], ys[y]], r.Labels[x, y]);
        Assert.Equal(Preprocess.ResizeBilinearCv2(it.Image, 16, 16).Pixels, r.Image.Pixels);
        Assert.Equal(new PromptBox(4, 3, 9, 7), r.Prompts.Box);
        Assert.Equal(r.Prompts.Rand, ds.LoadItem(0, new SegmentationTransform(16), runSeed: 5).Prompts.Rand);
    }

    [Fact]
    public void An_empty_target_mask_is_a_skipped_sample_with_its_reason()
    {
        using var tmp = new TempDir();
        var ds = SegmentationDataset.Load(Tiny(tmp));
        var it = ds.LoadItem(3);
        Assert.True(it.EmptyMask);
        Assert.Equal(PromptSkipReason.EmptyMask, it.Prompts.SkipReason);
        Assert.Contains("image/i3.png", it.Prompts.SkipMessage);
    }

    [Fact]
    public void Missing_image_or_label_file_names_the_file_and_metadata_row()
    {
        using var tmp = new TempDir();
        var card = Tiny(tmp);
        File.Delete(Path.Combine(tmp.Path, "data", "label", "i2.png"));
        var e = Assert.Throws<DataException>(() => SegmentationDataset.Load(card));
        Assert.Equal(3, e.Row);
        Assert.Equal("labelPath", e.Column);
        Assert.Contains("i2.png", e.Message);
        Assert.Contains("metadata.csv", e.Message);
        File.Delete(Path.Combine(tmp.Path, "data", "image", "i1.png"));
        e = Assert.Throws<DataException>(() => SegmentationDataset.Load(card));
        Assert.Equal(2, e.Row);
        Assert.Equal("imagePath", e.Column);
        Assert.Contains("image file not found", e.Message);
    }

    [Theory]
    [InlineData("index,imagePath,labelPath,pid,sexBinary,age\n0,image/i0.png,label/i0.png,p1,F,70\n", null, "site", "column not found")]
    [InlineData("index,imagePath,labelPath,pid,sexBinary,age,site\n0,image/i0.png,label/i0.png,p1,X,70,a\n", 1, "sexBinary", "not in the card's map")]
    [InlineData("index,imagePath,labelPath,pid,sexBinary,age,site\n0,image/i0.png,label/i0.png,p1,F,old,a\n", 1, "age", "not a number")]
    [InlineData("index,imagePath,labelPath,pid,sexBinary,age,site\n0,image/i0.png,label/i0.png,p1,F,70,a\n1,image/i0.png,label/i1.png,p1,F,70,a\n", 2, "imagePath", "listed twice")]
    [InlineData("index,imagePath,labelPath,pid,sexBinary,age,site\n0,image/i0.png,,p1,F,70,a\n", 1, "labelPath", "empty label path")]
    [InlineData("index,imagePath,labelPath,pid,sexBinary,age,site\n0,image/i0.png,label/i0.png,,F,70,a\n", 1, "pid", "empty patient id")]
    [InlineData("index,imagePath,labelPath,pid,sexBinary,age,site\n0,image/i0.png,label/x.nii.gz,p1,F,70,a\n", 1, "labelPath", "not found")]
    public void Bad_metadata_names_row_and_column(string csv, int? row, string column, string reason)
    {
        using var tmp = new TempDir();
        var card = Tiny(tmp, csv);
        var e = Assert.Throws<DataException>(() => SegmentationDataset.Load(card));
        Assert.Equal(row, e.Row);
        Assert.Equal(column, e.Column);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void Image_and_label_of_different_sizes_is_an_error_at_load_item()
    {
        using var tmp = new TempDir();
        var card = Tiny(tmp);
        SegImaging.WriteLabelPng(Path.Combine(tmp.Path, "data", "label", "i1.png"), new LabelMap(7, 6, new int[42]));
        var ds = SegmentationDataset.Load(card);
        var e = Assert.Throws<DataException>(() => ds.LoadItem(1));
        Assert.Equal(2, e.Row);
        Assert.Contains("7x6", e.Message);
        Assert.Contains("8x6", e.Message);
    }

    [Fact]
    public void Pre_cut_slices_keep_their_volume_and_slice_index()
    {
        using var tmp = new TempDir();
        var card = Tiny(tmp, """
            index,imagePath,labelPath,pid,sexBinary,age,site,case,z
            0,image/i0.png,label/i0.png,p1,F,70,a,case1,4
            1,image/i1.png,label/i1.png,p1,F,70,a,case1,5
            2,image/i2.png,label/i2.png,p2,M,30,a,case2,0

            """, "volume_id_column: case\nslice_index_column: z\n");
        var ds = SegmentationDataset.Load(card);
        Assert.Equal(new[] { "case1", "case2" }, ds.VolumeIds);
        Assert.Equal(new[] { 0, 1 }, ds.SamplesOfVolume("case1"));
        Assert.Equal(5, ds.Samples[1].SliceIndex);
        Assert.False(ds.Samples[1].FromVolume);

        File.WriteAllText(Path.Combine(tmp.Path, "data", "metadata.csv"),
            "index,imagePath,labelPath,pid,sexBinary,age,site,case,z\n0,image/i0.png,label/i0.png,p1,F,70,a,case1,x\n");
        var e = Assert.Throws<DataException>(() => SegmentationDataset.Load(card));
        Assert.Equal(("z", 1), (e.Column, e.Row));
    }

    [Fact]
    public void Split_is_patient_level_and_seeded()
    {
        using var tmp = new TempDir();
        var gen = SyntheticSegmentation.Generate(tmp.File("syn"), SyntheticSegOptions.Default2D with { Patients = 20, ItemsPerPatient = 3 });
        var ds = SegmentationDataset.Load(gen.CardPath, hashFiles: false);
        var split = ds.Split(7, new SplitFractions(0.6, 0.2, 0.2), stratifyAttribute: "sex");
        var all = split.Train.Concat(split.Validation).Concat(split.Test).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, ds.Count), all);
        var where = new Dictionary<string, int>();
        foreach (var (list, k) in new[] { (split.Train, 0), (split.Validation, 1), (split.Test, 2) })
            foreach (var i in list)
            {
                var p = ds.Samples[i].PatientId;
                if (where.TryGetValue(p, out var prev)) Assert.Equal(prev, k);
                where[p] = k;
            }
        Assert.Equal(36, split.Train.Length);
        Assert.Equal(split.SplitHash, ds.Split(7, new SplitFractions(0.6, 0.2, 0.2), "sex").SplitHash);
        Assert.NotEqual(split.SplitHash, ds.Split(8, new SplitFractions(0.6, 0.2, 0.2), "sex").SplitHash);
        // Stratified by sex: as many F as M images in test.
        Assert.Equal(split.Test.Count(i => ds.Samples[i].Groups["sex"] == "F"), split.Test.Count(i => ds.Samples[i].Groups["sex"] == "M"));
    }

    [Fact]
    public void Volumes_are_cut_into_target_slices_with_volume_id_and_slice_index()
    {
        using var tmp = new TempDir();
        var gen = SyntheticSegmentation.Generate(tmp.File("syn3"), SyntheticSegOptions.Default3D with { Patients = 3 });
        var ds = SegmentationDataset.Load(gen.CardPath);
        Assert.Equal(3, ds.RowCount);
        Assert.Equal(3, ds.VolumeIds.Count);
        Assert.Empty(ds.SkippedVolumes);
        foreach (var vid in ds.VolumeIds)
        {
            var idx = ds.SamplesOfVolume(vid);
            var vol = Nifti.Read(ds.Samples[idx[0]].LabelPath);
            var labels = vol.ReadLabels();
            var expected = VolumeSlicer.SelectSlices(labels, vol.Shape, 2, 2, SliceKeep.Target);
            Assert.Equal(expected, idx.Select(i => ds.Samples[i].SliceIndex!.Value));
            Assert.True(expected.Length < vol.Nz); // the lesion does not span every slice
            foreach (var i in idx)
            {
                var s = ds.Samples[i];
                Assert.True(s.FromVolume);
                Assert.Equal(2, s.SliceAxis);
                Assert.Equal($"{vid}#axis2/{s.SliceIndex}", s.Id);
                var it = ds.LoadItem(i);
                Assert.False(it.EmptyMask);
                Assert.Equal((48, 48), (it.Width, it.Height));
                // The slice equals the volume's min–max-scaled voxels at z = SliceIndex (row = i, column = j).
                var img = Nifti.Read(s.ImagePath).ReadImage();
                var scaled = VolumeSlicer.ScaleToUint8(img, IntensityScaling.MinMax);
                int z = s.SliceIndex!.Value;
                for (int r = 0; r < 48; r += 7)
                    for (int c = 0; c < 48; c += 5)
                    {
                        Assert.Equal(scaled[r + 48 * (c + 48 * z)], it.Image[c, r, 0]);
                        Assert.Equal(labels[r + 48 * (c + 48 * z)], it.Labels[c, r]);
                    }
            }
        }
        // The reference's rule (any label > 0) keeps more slices; some of them have no target → skipped prompts.
        var refCard = File.ReadAllText(gen.CardPath).Replace("keep: target", "keep: any_label");
        var refPath = Path.Combine(gen.Folder, "card_ref.yaml");
        File.WriteAllText(refPath, refCard);
        var dsRef = SegmentationDataset.Load(refPath, hashFiles: false);
        Assert.True(dsRef.Count > ds.Count);
        Assert.Contains(Enumerable.Range(0, dsRef.Count), i => dsRef.LoadItem(i).EmptyMask);
    }

    [Fact]
    public void A_volume_without_the_target_is_reported_not_silently_dropped()
    {
        using var tmp = new TempDir();
        var gen = SyntheticSegmentation.Generate(tmp.File("syn3"), SyntheticSegOptions.Default3D with { Patients = 2, VolumeShape = new[] { 16, 16, 4 } });
        var card = File.ReadAllText(gen.CardPath).Replace("label_value: 2", "label_value: 9");
        File.WriteAllText(gen.CardPath, card);
        var e = Assert.Throws<DataException>(() => SegmentationDataset.Load(gen.CardPath));
        Assert.Contains("no slice along axis 2 contains label 9", e.Message);

        // One good and one empty volume: the empty one is listed in SkippedVolumes.
        var lbl = Path.Combine(gen.Folder, "label", "P0001_00.nii.gz");
        var v = Nifti.Read(lbl);
        var labels = v.ReadLabels().Select(x => x == 2 ? 9 : x).ToArray();
        Nifti.Write(lbl, new NiftiWriteOptions { Shape = v.Shape, DataType = NiftiDataType.UInt8, Spacing = v.Spacing, Origin = new[] { -6.4, -6.4, 0 } }, labels);
        var ds = SegmentationDataset.Load(gen.CardPath);
        var skipped = Assert.Single(ds.SkippedVolumes);
        Assert.Equal(1, skipped.Row);
        Assert.Equal("image/P0000_00.nii.gz", skipped.VolumeId);
        Assert.All(ds.Samples, s => Assert.Equal("image/P0001_00.nii.gz", s.VolumeId));
    }

    [Fact]
    public void Volume_errors_name_the_csv_row_and_the_nifti_field()
    {
        using var tmp = new TempDir();
        var gen = SyntheticSegmentation.Generate(tmp.File("syn3"), SyntheticSegOptions.Default3D with { Patients = 2, VolumeShape = new[] { 16, 16, 4 } });
        var lbl = Path.Combine(gen.Folder, "label", "P0001_00.nii.gz");
        Nifti.Write(lbl, new NiftiWriteOptions { Shape = new[] { 16, 16, 5 }, DataType = NiftiDataType.UInt8, Spacing = new[] { 0.8, 0.8, 2.5 } }, new int[16 * 16 * 5]);
        var e = Assert.Throws<DataException>(() => SegmentationDataset.Load(gen.CardPath));
        Assert.Equal((2, "labelPath"), (e.Row, e.Column));
        Assert.Contains("16x16x5", e.Message);

        File.WriteAllBytes(Path.Combine(gen.Folder, "image", "P0001_00.nii.gz"), new byte[] { 0x1F, 0x8B, 8, 0, 0, 0 });
        e = Assert.Throws<DataException>(() => SegmentationDataset.Load(gen.CardPath));
        Assert.Equal((2, "imagePath"), (e.Row, e.Column));
        Assert.Contains("P0001_00.nii.gz", e.Message);
    }

    [Fact]
    public void Cache_key_helpers_and_transform_ids_are_stable()
    {
        Assert.Equal("native", new SegmentationTransform().Id);
        Assert.Equal("cv2-linear1024+mask-nearest1024", new SegmentationTransform(1024).Id);
        Assert.True(SegmentationDataset.IsNifti("a/b.NII.GZ"));
        Assert.False(SegmentationDataset.IsNifti("a/b.png"));
    }
}

public class SyntheticSegmentationTests
{
    private static Dictionary<string, string> Hashes(string root) =>
        Directory.GetFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f), f => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f))));

    [Theory]
    [InlineData(SyntheticDimensionality.TwoD)]
    [InlineData(SyntheticDimensionality.ThreeD)]
    public void Generation_is_deterministic(SyntheticDimensionality dim)
    {
        using var tmp = new TempDir();
        var o = (dim == SyntheticDimensionality.TwoD ? SyntheticSegOptions.Default2D : SyntheticSegOptions.Default3D) with { Patients = 4 };
        SyntheticSegmentation.Generate(tmp.File("a"), o);
        SyntheticSegmentation.Generate(tmp.File("b"), o);
        var a = Hashes(tmp.File("a"));
        var b = Hashes(tmp.File("b"));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var k in a.Keys) Assert.True(a[k] == b[k], $"{k} differs between two runs");
        SyntheticSegmentation.Generate(tmp.File("c"), o with { Seed = o.Seed + 1 });
        var c = Hashes(tmp.File("c"));
        Assert.NotEqual(a[dim == SyntheticDimensionality.TwoD ? "image/P0000_00.png" : "image/P0000_00.nii.gz"],
                        c[dim == SyntheticDimensionality.TwoD ? "image/P0000_00.png" : "image/P0000_00.nii.gz"]);
        // More patients: the first patients' files are unchanged (per-item seeds).
        SyntheticSegmentation.Generate(tmp.File("d"), o with { Patients = 6 });
        var d = Hashes(tmp.File("d"));
        foreach (var k in a.Keys.Where(k => k.StartsWith("image/") || k.StartsWith("label/"))) Assert.Equal(a[k], d[k]);
    }

    [Fact]
    public void A_3d_volume_round_trips_values_spacing_and_dims()
    {
        using var tmp = new TempDir();
        var o = SyntheticSegOptions.Default3D with { Patients = 1, VolumeShape = new[] { 20, 18, 6 }, VoxelSpacing = new[] { 0.7, 0.9, 3.0 } };
        var gen = SyntheticSegmentation.Generate(tmp.File("s"), o);
        var img = Nifti.Read(Path.Combine(gen.Folder, "image", "P0000_00.nii.gz"));
        Assert.Equal(new[] { 20, 18, 6 }, img.Shape);
        Assert.Equal(new[] { 0.7, 0.9, 3.0 }, img.Spacing.Select(s => Math.Round(s, 6)));
        Assert.Equal(NiftiDataType.Int16, img.DataType);
        // Write what was read to a new file (NIfTI-2, big-endian, uncompressed) and read it again: identical.
        var values = img.ReadImage();
        var again = tmp.File("again.nii");
        Nifti.Write(again, new NiftiWriteOptions { Shape = img.Shape, Spacing = img.Spacing, DataType = NiftiDataType.Int16, Version = 2, BigEndian = true }, values);
        var back = Nifti.Read(again);
        Assert.Equal(values, back.ReadImage());
        Assert.Equal(img.Spacing, back.Spacing);
        Assert.Equal(img.Shape, back.Shape);
        Assert.Equal(img.RawData, back.RawData);
    }

    [Theory]
    [InlineData(SyntheticDimensionality.TwoD)]
    [InlineData(SyntheticDimensionality.ThreeD)]
    public void The_layout_loader_reads_what_the_generator_writes(SyntheticDimensionality dim)
    {
        using var tmp = new TempDir();
        var o = (dim == SyntheticDimensionality.TwoD ? SyntheticSegOptions.Default2D : SyntheticSegOptions.Default3D) with { Patients = 6 };
        var gen = SyntheticSegmentation.Generate(tmp.File("g"), o);
        Assert.Equal(2, gen.TargetLabel);
        var ds = SegmentationDataset.Load(gen.CardPath);
        Assert.Equal(o.Patients * o.ItemsPerPatient, ds.RowCount);
        Assert.Equal(new[] { "sex", "age60", "age_bins", "sex_x_age60" }, ds.AttributeNames);
        Assert.Equal(6, ds.Samples.Select(s => s.PatientId).Distinct().Count());
        Assert.All(Enumerable.Range(0, ds.Count), i => Assert.False(ds.LoadItem(i).EmptyMask));
        var it = ds.LoadItem(0, new SegmentationTransform(32));
        Assert.Equal((32, 32), (it.Width, it.Height));
        Assert.Subset(new HashSet<int> { 0, 1, 2 }, it.Labels.Values.ToHashSet());
    }

    [Fact]
    public void The_planted_difference_is_measurable_and_adjustable()
    {
        using var tmp = new TempDir();
        (double F, double M) Stats(SyntheticSegOptions o, string name, Func<SegmentationItem, double> f)
        {
            var gen = SyntheticSegmentation.Generate(tmp.File(name), o);
            var ds = SegmentationDataset.Load(gen.CardPath, hashFiles: false);
            var items = Enumerable.Range(0, ds.Count).Select(i => ds.LoadItem(i)).ToList();
            return (items.Where(i => i.Sample.Groups["sex"] == "F").Average(f), items.Where(i => i.Sample.Groups["sex"] == "M").Average(f));
        }
        static double Area(SegmentationItem it) => it.Mask.Count(b => b == 1);
        static double Contrast(SegmentationItem it)
        {
            double les = 0, org = 0; int nl = 0, no = 0;
            var g = it.ImageGrayHw();
            for (int i = 0; i < g.Length; i++)
            {
                if (it.Labels.Values[i] == 2) { les += g[i]; nl++; }
                else if (it.Labels.Values[i] == 1) { org += g[i]; no++; }
            }
            return les / nl - org / no;
        }
        var o = SyntheticSegOptions.Default2D with { Patients = 16 };
        var area = Stats(o, "a", Area);
        var contrast = Stats(o, "b", Contrast);
        Assert.True(area.F < 0.8 * area.M, $"lesion area F {area.F} vs M {area.M}");
        Assert.InRange(contrast.F / contrast.M, 0.35, 0.65); // ContrastFactor 0.5
        // Factors of 1: no planted difference (areas within chance).
        var none = o with { ContrastFactor = 1, SizeFactor = 1, NoiseFactor = 1 };
        var c1 = Stats(none, "c", Contrast);
        Assert.InRange(c1.F / c1.M, 0.85, 1.15);
        // The affected group can be switched.
        var areaM = Stats(o with { AffectedSex = "M" }, "d", Area);
        Assert.True(areaM.M < 0.8 * areaM.F);
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.Throws<ArgumentException>(() => (SyntheticSegOptions.Default2D with { Patients = 0 }).Validate());
        Assert.Throws<ArgumentException>(() => (SyntheticSegOptions.Default2D with { AffectedSex = "X" }).Validate());
        Assert.Throws<ArgumentException>(() => (SyntheticSegOptions.Default2D with { SizeFactor = 0 }).Validate());
        Assert.Throws<ArgumentException>(() => (SyntheticSegOptions.Default3D with { VolumeShape = new[] { 8, 8, 8 } }).Validate());
    }
}
