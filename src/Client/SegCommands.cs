using System.CommandLine;
using System.Globalization;
using FairMedFM.Data.Segmentation;
using Spectre.Console;

namespace FairMedFM.Client;

/// <summary>
/// <c>fairmedfm synth-seg</c>: writes the built-in synthetic segmentation dataset (FairMedFM's segmentation layout with a
/// ready card) — the embedded default for segmentation grids and the way to see a planted group gap come out of the
/// metrics. Logic in <see cref="SyntheticSegmentation"/>.
/// </summary>
public static class SegCommands
{
    public static Command SynthSeg(IAnsiConsole console)
    {
        var outOpt = new Option<string>("--out") { Description = "Folder to write (metadata.csv, image/, label/, card.yaml, synthetic.json)", Required = true };
        var threeD = new Option<bool>("--3d") { Description = "3-D CT-like NIfTI volumes (sliced along the last axis by the card) instead of 2-D PNGs" };
        var patients = new Option<int?>("--patients") { Description = "Patients (sex alternates F, M, …); default 24 (2-D) or 12 (3-D)" };
        var items = new Option<int?>("--items-per-patient") { Description = "Images (2-D) or volumes (3-D) per patient; default 2 (2-D) or 1 (3-D)" };
        var size = new Option<int?>("--size") { Description = "2-D image side in pixels (default 64)" };
        var shape = new Option<string?>("--volume-shape") { Description = "3-D volume shape NX,NY,NZ (default 48,48,16)" };
        var affected = new Option<string>("--affected-sex") { Description = "Group that gets the planted difference: F or M", DefaultValueFactory = _ => "F" };
        var contrast = new Option<double>("--contrast-factor") { Description = "Lesion contrast of the affected group × this (1 = no difference)", DefaultValueFactory = _ => 0.5 };
        var sizeFactor = new Option<double>("--size-factor") { Description = "Lesion radii of the affected group × this (≤ 1.5)", DefaultValueFactory = _ => 0.75 };
        var noise = new Option<double>("--noise-factor") { Description = "Image noise of the affected group × this", DefaultValueFactory = _ => 1.5 };
        var seed = new Option<long>("--seed") { Description = "Generator seed", DefaultValueFactory = _ => 20240611 };
        var name = new Option<string?>("--name") { Description = "Dataset name in the card (default synthetic_seg2d / synthetic_seg3d)" };
        var cmd = new Command("synth-seg", "Write the synthetic segmentation dataset (2-D PNGs or 3-D NIfTI) with a known, adjustable gap between sexes, and its card");
        foreach (var o in new Option[] { outOpt, threeD, patients, items, size, shape, affected, contrast, sizeFactor, noise, seed, name }) cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            try
            {
                var is3d = pr.GetValue(threeD);
                var o = is3d ? SyntheticSegOptions.Default3D : SyntheticSegOptions.Default2D;
                o = o with
                {
                    Patients = pr.GetValue(patients) ?? o.Patients,
                    ItemsPerPatient = pr.GetValue(items) ?? o.ItemsPerPatient,
                    ImageSize = pr.GetValue(size) ?? o.ImageSize,
                    VolumeShape = pr.GetValue(shape) is { } s ? ParseShape(s) : o.VolumeShape,
                    AffectedSex = pr.GetValue(affected)!,
                    ContrastFactor = pr.GetValue(contrast), SizeFactor = pr.GetValue(sizeFactor), NoiseFactor = pr.GetValue(noise),
                    Seed = pr.GetValue(seed),
                    Name = pr.GetValue(name) ?? "",
                };
                if (!is3d && pr.GetValue(shape) is not null) throw new ArgumentException("--volume-shape needs --3d");
                if (is3d && pr.GetValue(size) is not null) throw new ArgumentException("--size is the 2-D image side; use --volume-shape with --3d");
                var r = SyntheticSegmentation.Generate(pr.GetValue(outOpt)!, o);
                console.MarkupLine($"wrote {r.Rows} {(is3d ? "volumes" : "images")} of {r.Patients} patients (target label {r.TargetLabel}) to [link]{Markup.Escape(r.Folder)}[/]");
                console.MarkupLine($"card: {Markup.Escape(r.CardPath)}");
                console.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                    $"[grey]planted difference for sex {o.AffectedSex}: lesion contrast ×{o.ContrastFactor}, radii ×{o.SizeFactor}, noise ×{o.NoiseFactor}[/]"));
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException or FairMedFM.Data.DataException)
            {
                console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                return 2;
            }
        });
        return cmd;
    }

    private static int[] ParseShape(string s)
    {
        var parts = s.Split(',', StringSplitOptions.TrimEntries);
        var shape = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out shape[i]))
                throw new ArgumentException($"--volume-shape '{s}': '{parts[i]}' is not a positive integer");
        if (shape.Length != 3) throw new ArgumentException($"--volume-shape '{s}': expected three sizes NX,NY,NZ");
        return shape;
    }
}
