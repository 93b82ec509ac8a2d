using System.Globalization;
using FairMedFM.Data.Segmentation;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Segmentation;

namespace FairMedFM.Engine.Tests.Segmentation;

/// <summary>Segmentation cells in-process (no grains): the tiny golden SAM and the Otsu baseline on small synthetic data.</summary>
[Collection(SegCollection.Name)]
public sealed class SegmentationCellTests : IDisposable
{
    private readonly TempDir _tmp = new();
    private readonly CellRunner _runner;

    public SegmentationCellTests()
    {
        SegTestSupport.Register();
        _runner = new CellRunner(_tmp.Workspace());
    }

    public void Dispose() => _tmp.Dispose();

    private static double V(CellResult r, string key) =>
        r.Summary!.TryGetValue(key, out var e) && e.Value is { } v ? v : throw new Xunit.Sdk.XunitException($"{key}: {(e is null ? "missing" : e.ToString())}");

    private static void Done(CellResult r) => Assert.True(r.Status == "done", r.Error);

    private static double Parse(string s) => double.Parse(s, CultureInfo.InvariantCulture);

    [Fact]
    public void A_sam_cell_scores_every_sample_per_group_with_intervals_and_writes_its_records()
    {
        var data = SegTestSupport.Synth2D(_tmp.Sub("d2"));
        long before = SegEmbeddingStore.EncoderForwardImages;
        var r = _runner.Run(SegTestSupport.Cell(data.CardPath, SegTestSupport.TinySam, SegUsages.Box));
        Done(r);
        Assert.Equal(8, SegEmbeddingStore.EncoderForwardImages - before); // one encoder pass per image
        Assert.Equal(8, r.Segmentation!.EncoderForwards);
        Assert.False(r.EmbeddingCacheHit);
        Assert.Equal("bbox", r.Segmentation.Prompt);
        Assert.Equal("sam", r.Segmentation.Segmenter);
        Assert.Equal(SegTestSupport.TinySize, r.Segmentation.InputSize);
        Assert.Equal(8, r.Segmentation.Evaluated);
        Assert.Equal(0, r.Segmentation.Skipped);
        Assert.False(r.Segmentation.VolumeAggregation);
        Assert.Equal("seg2d_test", r.DatasetName);
        Assert.Equal(SegDatasetCatalog.Get(data.CardPath).DataHash, r.DataHash);
        Assert.Equal(Engine.Hashing.Of(r.Spec), r.ConfigHash);
        Assert.Equal(WeightsSha(), r.WeightsHash);

        // Spec §6.4 summaries (generalised to any number of groups) for Dice, FairMedFM's Dice, IoU and HD95, with intervals.
        foreach (var m in new[] { "dice", "dice-ref", "iou" })
            foreach (var k in new[] { "mean_", "min_", "max_", "delta_", "std_", "skewness_", "es_" })
                Assert.True(r.Summary!.ContainsKey(k + m), k + m);
        foreach (var k in new[] { "mean_hd95", "delta_hd95", "std_hd95" }) Assert.True(r.Summary!.ContainsKey(k), k);
        var mean = r.Summary!["mean_dice"];
        Assert.NotNull(mean.Lower);
        Assert.True(mean.Lower <= mean.Value && mean.Value <= mean.Upper, mean.ToString());
        Assert.Equal(V(r, "mean_dice") / (1 + V(r, "std_dice")), V(r, "es_dice"), 12);
        Assert.Equal(V(r, "max_dice") - V(r, "min_dice"), V(r, "delta_dice"), 12);
        Assert.Equal(new IntervalInfo(50, "percentile", 0.95, 0, true, 8), r.Intervals);

        // Groups: F and M, 4 samples each, all scored; their means with intervals.
        Assert.Equal(new[] { "F", "M" }, r.Groups!.Select(g => g.Group));
        Assert.All(r.Groups!, g => { Assert.Equal(4, g.N); Assert.Equal(4, g.Positives); Assert.Equal(0, g.Negatives); });
        Assert.All(r.Groups!, g => Assert.NotNull(g.Values["dice"].Lower));
        Assert.Equal(8, r.Overall!.N);

        // The records: one row per sample with group, prompt, metrics, best mask and areas; they reproduce the summary.
        var rows = SegTestSupport.ReadRecords(r.Segmentation.RecordsFile!);
        Assert.Equal(8, rows.Count);
        Assert.All(rows, x =>
        {
            Assert.Equal("scored", x["status"]);
            Assert.Equal("bbox", x["prompt_type"]);
            Assert.StartsWith("box ", x["prompt"]);
            Assert.InRange(int.Parse(x["best_mask"], CultureInfo.InvariantCulture), 0, 2);
            Assert.Equal("64", x["height"]); // masks compared at the label's size (64²), not the model's 128²
            long inter = long.Parse(x["intersection"], CultureInfo.InvariantCulture), p = long.Parse(x["predicted_area"], CultureInfo.InvariantCulture),
                t = long.Parse(x["target_area"], CultureInfo.InvariantCulture);
            Assert.True(t > 0);
            Assert.Equal(2.0 * inter / (p + t), Parse(x["dice"]), 12);
        });
        Assert.Equal(rows.Average(x => Parse(x["dice"])), V(r, "mean_dice"), 12);
        Assert.Equal(rows.Where(x => x["group"] == "F").Average(x => Parse(x["dice"])), r.Groups![0].Values["dice"].Value!.Value, 12);
        Assert.Equal(8, rows.Select(x => x["patient_id"]).Distinct().Count());
    }

    [Fact]
    public void Embeddings_are_computed_once_per_image_and_reused_across_prompts_cells_and_cards()
    {
        var data = SegTestSupport.Synth2D(_tmp.Sub("d2"));
        long before = SegEmbeddingStore.EncoderForwardImages;
        var box = _runner.Run(SegTestSupport.Cell(data.CardPath, SegTestSupport.TinySam, SegUsages.Box));
        Done(box);
        Assert.Equal(8, SegEmbeddingStore.EncoderForwardImages - before);

        // Other prompts, another seed and another attribute: the decoder only.
        foreach (var (usage, seed, attr) in new[] { (SegUsages.Center, 0, "sex"), (SegUsages.Rands, 1, "sex"), (SegUsages.Rand, 0, "age60") })
        {
            var r = _runner.Run(SegTestSupport.Cell(data.CardPath, SegTestSupport.TinySam, usage, attr, seed));
            Done(r);
            Assert.True(r.EmbeddingCacheHit);
            Assert.Equal(0, r.Segmentation!.EncoderForwards);
            Assert.Equal(box.EmbeddingKey, r.EmbeddingKey);
        }
        Assert.Equal(8, SegEmbeddingStore.EncoderForwardImages - before);

        // The same cell again: its stored result (idempotent by configuration and data), nothing recomputed.
        var again = _runner.Run(SegTestSupport.Cell(data.CardPath, SegTestSupport.TinySam, SegUsages.Box));
        Assert.Equal(box.FinishedUtc, again.FinishedUtc);

        // Content-addressed per image: another card over half of the same images needs no encoder pass.
        var csv = File.ReadAllLines(data.MetadataCsv);
        var half = Path.Combine(data.Folder, "half.csv");
        File.WriteAllLines(half, csv.Take(5));
        var halfCard = Path.Combine(data.Folder, "half.yaml");
        File.WriteAllText(halfCard, File.ReadAllText(data.CardPath).Replace("name: seg2d_test", "name: seg2d_half\nmetadata_csv: half.csv"));
        var h = _runner.Run(SegTestSupport.Cell(halfCard, SegTestSupport.TinySam, SegUsages.Box));
        Done(h);
        Assert.Equal(4, h.Segmentation!.Evaluated);
        Assert.Equal(0, h.Segmentation.EncoderForwards);
        Assert.NotEqual(box.EmbeddingKey, h.EmbeddingKey);
        // Same images, same prompts, same decoder: the same per-sample Dice as in the full card.
        var full = SegTestSupport.ReadRecords(box.Segmentation!.RecordsFile!).Take(4).Select(x => x["dice"]);
        Assert.Equal(full, SegTestSupport.ReadRecords(h.Segmentation.RecordsFile!).Select(x => x["dice"]));

        // Another normalisation is another input to the encoder: new entries.
        before = SegEmbeddingStore.EncoderForwardImages;
        var ds = _runner.Run(SegTestSupport.Cell(data.CardPath, SegTestSupport.TinySam, SegUsages.Box, normalization: "dataset"));
        Done(ds);
        Assert.Equal(8, ds.Segmentation!.EncoderForwards);
        Assert.StartsWith("albu:bgr:", ds.Segmentation.NormalizationId);
        Assert.StartsWith("sam-pixel:", box.Segmentation.NormalizationId);

        // A damaged entry is found by its size and recomputed, never read.
        var store = _runner.SegEmbeddings;
        var set = store.TryGetCompleteSet(box.EmbeddingKey!)!;
        File.WriteAllBytes(store.PathFor(set.SampleKeys[3]), new byte[10]);
        Assert.Null(store.TryGetCompleteSet(box.EmbeddingKey!));
        before = SegEmbeddingStore.EncoderForwardImages;
        var (_, forwards) = _runner.PrepareSegEmbeddings(data.CardPath, SegTestSupport.TinySam, "model");
        Assert.Equal(1, forwards);
        Assert.Equal(1, SegEmbeddingStore.EncoderForwardImages - before);
    }

    [Fact]
    public void The_otsu_baseline_finds_the_planted_contrast_gap_with_the_right_sign()
    {
        // Planted: sex F has half the lesion contrast and 1.5× the noise. Control: no difference at all.
        var planted = SegTestSupport.Synth2D(_tmp.Sub("planted"), patients: 16);
        var control = SegTestSupport.Synth2D(_tmp.Sub("control"), patients: 16, contrast: 1, size: 1, noise: 1, name: "seg2d_control");
        var p = _runner.Run(SegTestSupport.Cell(planted.CardPath, OtsuBaseline.Id, SegUsages.Box));
        var c = _runner.Run(SegTestSupport.Cell(control.CardPath, OtsuBaseline.Id, SegUsages.Box));
        Done(p); Done(c);
        Assert.Equal(OtsuBaseline.WeightsId, p.WeightsHash);
        Assert.Null(p.EmbeddingKey);
        Assert.Equal("otsu-threshold", p.Segmentation!.Segmenter);
        double Group(CellResult r, string g, string m) => r.Groups!.Single(x => x.Group == g).Values[m].Value!.Value;
        // Lower contrast → lower Dice and IoU for F, and F is the worst group.
        Assert.True(Group(p, "F", "dice") < Group(p, "M", "dice") - 0.05, $"F {Group(p, "F", "dice")} vs M {Group(p, "M", "dice")}");
        Assert.True(Group(p, "F", "iou") < Group(p, "M", "iou"));
        Assert.Equal(Group(p, "F", "dice"), V(p, "min_dice"), 12);
        Assert.True(V(p, "es_dice") < V(p, "mean_dice"));
        // Every M lesion is found exactly here, so FairMedFM's skewness (1 − min)/(1 − max) divides by zero: typed, not ∞.
        Assert.Equal(1.0, V(p, "max_dice"), 12);
        Assert.Equal("ZeroDenominator", p.Summary!["skewness_dice"].Undefined);
        // The planted gap is far larger than the chance gap of the control.
        Assert.True(V(p, "delta_dice") > 3 * V(c, "delta_dice"), $"planted {V(p, "delta_dice")} vs control {V(c, "delta_dice")}");
        Assert.True(V(c, "mean_dice") > 0.9, $"control Dice {V(c, "mean_dice")}");
        // The interval of the gap excludes 0 with the planted difference.
        Assert.True(p.Summary!["delta_dice"].Lower > 0);

        // Point prompts run too (a weaker rule: whole-image threshold + the connected region of the points).
        var pts = _runner.Run(SegTestSupport.Cell(planted.CardPath, OtsuBaseline.Id, SegUsages.Rands));
        Done(pts);
        Assert.StartsWith("points ", SegTestSupport.ReadRecords(pts.Segmentation!.RecordsFile!)[0]["prompt"]);
    }

    [Fact]
    public void Volumes_are_aggregated_from_their_stacked_slices()
    {
        var data = SegTestSupport.Synth3D(_tmp.Sub("d3"));
        foreach (var model in new[] { OtsuBaseline.Id, SegTestSupport.TinySam })
        {
            var r = _runner.Run(SegTestSupport.Cell(data.CardPath, model, SegUsages.Box));
            Done(r);
            var seg = r.Segmentation!;
            Assert.True(seg.VolumeAggregation);
            Assert.Equal(4, seg.Volumes);
            Assert.True(seg.Evaluated > 4, $"{seg.Evaluated} slices"); // several slices per volume
            var rows = SegTestSupport.ReadRecords(seg.RecordsFile!);
            Assert.All(rows, x => Assert.NotEqual("", x["slice"]));
            // Volume Dice = Dice of the stacked slice masks: 2ΣI / (ΣP + ΣT) per volume, then averaged.
            var perVolume = rows.GroupBy(x => x["volume_id"]).Select(v => (Group: v.First()["group"],
                Dice: 2.0 * v.Sum(x => Parse(x["intersection"])) / (v.Sum(x => Parse(x["predicted_area"])) + v.Sum(x => Parse(x["target_area"]))))).ToList();
            Assert.Equal(4, perVolume.Count);
            Assert.Equal(perVolume.Average(v => v.Dice), V(r, "vol_mean_dice"), 12);
            Assert.Equal(perVolume.Where(v => v.Group == "F").Average(v => v.Dice), r.Groups!.Single(g => g.Group == "F").Values["vol_dice"].Value!.Value, 12);
            Assert.Equal(V(r, "vol_mean_dice") / (1 + V(r, "vol_std_dice")), V(r, "vol_es_dice"), 12);
            Assert.True(r.Summary!.ContainsKey("vol_mean_iou"));
            Assert.Equal(perVolume.Average(v => v.Dice), r.Overall!.Values["vol_dice"].Value!.Value, 12);
            // Slice-level summaries are there too.
            Assert.Equal(rows.Average(x => Parse(x["dice"])), V(r, "mean_dice"), 12);
            Assert.All(seg.GroupCounts, g => Assert.Equal(2, g.Volumes));
        }
    }

    [Fact]
    public void An_empty_mask_sample_is_skipped_with_its_reason_and_counted()
    {
        var data = SegTestSupport.Synth2D(_tmp.Sub("d2"));
        // Image 3 (patient P0002, sex F) loses its lesion: its label map is organ only.
        var label = Path.Combine(data.Folder, "label", "P0002_00.png");
        var map = SegImaging.DecodeLabelMap(label);
        SegImaging.WriteLabelPng(label, new LabelMap(map.Width, map.Height, map.Values.Select(v => v == 2 ? 1 : v).ToArray()));
        foreach (var model in new[] { SegTestSupport.TinySam, OtsuBaseline.Id })
        {
            var r = _runner.Run(SegTestSupport.Cell(data.CardPath, model, SegUsages.Center));
            Done(r);
            Assert.Equal(1, r.Segmentation!.Skipped);
            Assert.Equal(7, r.Segmentation.Evaluated);
            var s = Assert.Single(r.Segmentation.SkippedSamples);
            Assert.Equal("image/P0002_00.png", s.SampleId);
            Assert.Equal("F", s.Group);
            Assert.Contains("empty mask", s.Reason);
            var f = r.Groups!.Single(g => g.Group == "F");
            Assert.Equal((4, 3, 1), (f.N, f.Positives, f.Negatives));
            Assert.Equal(new SegGroupCount("F", 4, 3, 1, 4), r.Segmentation.GroupCounts[0]);
            var row = SegTestSupport.ReadRecords(r.Segmentation.RecordsFile!).Single(x => x["sample_id"] == "image/P0002_00.png");
            Assert.Equal("skipped", row["status"]);
            Assert.Contains("empty mask", row["skip_reason"]);
            Assert.Equal("", row["dice"]);
            Assert.Equal(7, SegTestSupport.ReadRecords(r.Segmentation.RecordsFile!).Count(x => x["status"] == "scored"));
        }
    }

    [Fact]
    public void An_undefined_hd95_is_typed_and_left_out_of_its_group_mean()
    {
        // HD95 needs a non-empty prediction: every scored sample has either a number or a typed reason, never both, never
        // neither; an undefined one is left out of the mean (the random-weight tiny SAM does predict empty masks).
        var data = SegTestSupport.Synth2D(_tmp.Sub("d2"));
        var r = _runner.Run(SegTestSupport.Cell(data.CardPath, SegTestSupport.TinySam, SegUsages.Rand));
        Done(r);
        var rows = SegTestSupport.ReadRecords(r.Segmentation!.RecordsFile!);
        Assert.All(rows, x => Assert.True((x["hd95"] == "") != (x["hd95_undefined"] == ""), $"{x["hd95"]} / {x["hd95_undefined"]}"));
        Assert.All(rows.Where(x => x["hd95_undefined"] != ""), x => Assert.Equal("0", x["predicted_area"]));
        var defined = rows.Where(x => x["hd95"] != "").Select(x => Parse(x["hd95"])).ToList();
        if (defined.Count > 0) Assert.Equal(defined.Average(), V(r, "mean_hd95"), 9);
        else Assert.Null(r.Summary!["mean_hd95"].Value);
    }

    [Fact]
    public void Bad_inputs_fail_the_cell_with_a_reason_that_names_them()
    {
        var data = SegTestSupport.Synth2D(_tmp.Sub("d2"));
        var clsCard = TinyData.WriteCard(_tmp.Sub("cls"), "cls_tiny");

        // A segmentation usage on a classification card, and a classification usage on a segmentation card.
        var a = _runner.Run(SegTestSupport.Cell(clsCard, SegTestSupport.TinySam, SegUsages.Box));
        Assert.Equal("failed", a.Status);
        Assert.True(a.Error!.Contains("'seg-bbox' is a segmentation usage"), a.Error);
        Assert.Contains(Path.GetFullPath(clsCard), a.Error);
        Assert.Contains("classification card", a.Error);
        Assert.False(a.Retryable);
        var b = _runner.Run(SegTestSupport.Cell(data.CardPath, TinyData.Model, "lp"));
        Assert.Equal("failed", b.Status);
        Assert.Contains("'lp' is a classification usage", b.Error);
        Assert.Contains(data.CardPath, b.Error);
        Assert.Contains("segmentation card", b.Error);

        // A classification model, an unknown model, a not-yet-available model, an unknown attribute, another method.
        Assert.Contains("is a classification model", _runner.Run(SegTestSupport.Cell(data.CardPath, TinyData.Model, SegUsages.Box)).Error);
        Assert.Contains("unknown segmentation model 'nope'", _runner.Run(SegTestSupport.Cell(data.CardPath, "nope", SegUsages.Box)).Error);
        Assert.Contains("not available yet", _runner.Run(SegTestSupport.Cell(data.CardPath, "sam-med3d", SegUsages.Box)).Error);
        Assert.Contains("attribute 'race' is not defined", _runner.Run(SegTestSupport.Cell(data.CardPath, OtsuBaseline.Id, SegUsages.Box, attribute: "race")).Error);
        Assert.Contains("method 'fairprune'", _runner.Run(SegTestSupport.Cell(data.CardPath, OtsuBaseline.Id, SegUsages.Box) with { Method = "fairprune" }).Error);

        // A zoo card whose checkpoint is not in the weights folder: the expected file is named.
        var noWeights = _runner.Run(SegTestSupport.Cell(data.CardPath, "sam-vit-b", SegUsages.Box));
        Assert.Equal("failed", noWeights.Status);
        Assert.Contains("sam_vit_b_01ec64.pth", noWeights.Error);

        // A missing label file fails the cell with the file, row and column; a good cell of the same sweep still runs.
        var broken = SegTestSupport.Synth2D(_tmp.Sub("broken"), patients: 6, name: "seg2d_broken");
        File.Delete(Path.Combine(broken.Folder, "label", "P0005_00.png"));
        var missing = _runner.Run(SegTestSupport.Cell(broken.CardPath, OtsuBaseline.Id, SegUsages.Center));
        Assert.Equal("failed", missing.Status);
        Assert.Contains("label file not found", missing.Error);
        Assert.Contains("P0005_00.png", missing.Error);
        Assert.Contains("labelPath", missing.Error);
        Assert.Equal("failed", _runner.Results.TryGet(missing.CellId)!.Status);
        var other = SegTestSupport.Synth2D(_tmp.Sub("other"), patients: 4, name: "seg2d_other");
        Done(_runner.Run(SegTestSupport.Cell(other.CardPath, OtsuBaseline.Id, SegUsages.Center)));
    }

    [Fact]
    public void Grids_accept_segmentation_usages_and_list_them()
    {
        var g = GridSpec.Parse("datasets: [a.yaml]\nmodels: [sam-vit-b, otsu-threshold]\nusages: [seg-center, seg-rand, seg-rands, seg-bbox]\nattributes: [sex]\n");
        g.Validate();
        var cells = g.Expand();
        Assert.Equal(8, cells.Count);
        Assert.Equal(new[] { "seg-center", "seg-rand", "seg-rands", "seg-bbox" }, cells.Select(c => c.Usage).Distinct());
        Assert.All(cells, c => Assert.Null(c.Lora));
        // Refused where it stands (parse time), with its line and column.
        var e = Assert.Throws<ConfigException>(() => GridSpec.Parse("datasets: [a.yaml]\nmodels: [m]\nusages: [seg-box]\nattributes: [sex]\n", "g.yaml"));
        Assert.Contains("usage 'seg-box' is not available", e.Message);
        Assert.Contains("seg-bbox", e.Message);
        Assert.Equal(new[] { "center", "rand", "rands", "bbox" }, SegUsages.All.Select(SegUsages.ReferenceName));
    }

    private static string WeightsSha() => Models.WeightLoader.FileSha256(SegTestSupport.GoldenWeights);
}
