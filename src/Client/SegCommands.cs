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
        // Whole numbers are read here (not by the parser) so that a bad one gets a message naming the flag and its range.
        var patients = new Option<string?>("--patients") { Description = $"Patients (sex alternates F, M, …); default 24 (2-D) or 12 (3-D); at most {SyntheticSegOptions.MaxPatients:N0}" };
        var items = new Option<string?>("--items-per-patient") { Description = $"Images (2-D) or volumes (3-D) per patient; default 2 (2-D) or 1 (3-D); at most {SyntheticSegOptions.MaxItemsPerPatient:N0}" };
        var size = new Option<string?>("--size") { Description = $"2-D image side in pixels, 16 to {SyntheticSegOptions.MaxImageSize} (default 64)" };
        var shape = new Option<string?>("--volume-shape") { Description = $"3-D volume shape NX,NY,NZ (default 48,48,16; at most {SyntheticSegOptions.MaxVolumeSide} per side and {SyntheticSegOptions.MaxVolumeVoxels:N0} voxels)" };
        var affected = new Option<string>("--affected-sex") { Description = "Group that gets the planted difference: F or M", DefaultValueFactory = _ => "F" };
        var contrast = new Option<double>("--contrast-factor") { Description = "Lesion contrast of the affected group × this (1 = no difference)", DefaultValueFactory = _ => 0.5 };
        var sizeFactor = new Option<double>("--size-factor") { Description = "Lesion radii of the affected group × this (≤ 1.5)", DefaultValueFactory = _ => 0.75 };
        var noise = new Option<double>("--noise-factor") { Description = "Image noise of the affected group × this", DefaultValueFactory = _ => 1.5 };
        var seed = new Option<long>("--seed") { Description = "Generator seed", DefaultValueFactory = _ => 20240611 };
        var name = new Option<string?>("--name") { Description = "Dataset name in the card (default synthetic_seg2d / synthetic_seg3d)" };
        var force = new Option<bool>("--force") { Description = "Write into a non-empty folder that synth-seg did not write (files of the same names are overwritten)" };
        var cmd = new Command("synth-seg", "Write the synthetic segmentation dataset (2-D PNGs or 3-D NIfTI) with a known, adjustable gap between sexes, and its card");
        foreach (var o in new Option[] { outOpt, threeD, patients, items, size, shape, affected, contrast, sizeFactor, noise, seed, name, force }) cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            var outDir = pr.GetValue(outOpt)!;
            try
            {
                var is3d = pr.GetValue(threeD);
                var o = is3d ? SyntheticSegOptions.Default3D : SyntheticSegOptions.Default2D;
                if (!is3d && pr.GetValue(shape) is not null) throw new ArgumentException("--volume-shape needs --3d");
                if (is3d && pr.GetValue(size) is not null) throw new ArgumentException("--size is the 2-D image side; use --volume-shape with --3d");
                o = o with
                {
                    Patients = Whole(pr.GetValue(patients), "--patients", 1, SyntheticSegOptions.MaxPatients) ?? o.Patients,
                    ItemsPerPatient = Whole(pr.GetValue(items), "--items-per-patient", 1, SyntheticSegOptions.MaxItemsPerPatient) ?? o.ItemsPerPatient,
                    ImageSize = Whole(pr.GetValue(size), "--size", 16, SyntheticSegOptions.MaxImageSize) ?? o.ImageSize,
                    VolumeShape = pr.GetValue(shape) is { } s ? ParseShape(s) : o.VolumeShape,
                    AffectedSex = pr.GetValue(affected)!,
                    ContrastFactor = pr.GetValue(contrast), SizeFactor = pr.GetValue(sizeFactor), NoiseFactor = pr.GetValue(noise),
                    Seed = pr.GetValue(seed),
                    Name = pr.GetValue(name) ?? "",
                };
                o.Validate(Flag); // the limits, in flag words (--size must be …), before anything is written
                var r = SyntheticSegmentation.Generate(outDir, o, pr.GetValue(force));
                console.MarkupLine($"wrote {r.Rows} {(is3d ? "volumes" : "images")} of {r.Patients} patients (target label {r.TargetLabel}) to [link]{Markup.Escape(r.Folder)}[/]");
                console.MarkupLine($"card: {Markup.Escape(r.CardPath)}");
                console.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                    $"[grey]planted difference for sex {o.AffectedSex}: lesion contrast ×{o.ContrastFactor}, radii ×{o.SizeFactor}, noise ×{o.NoiseFactor}[/]"));
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or SyntheticOutputFolderException or FairMedFM.Data.DataException)
            {
                console.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                return 2;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                console.MarkupLine($"[red]error:[/] cannot write --out '{Markup.Escape(Path.GetFullPath(outDir))}': {Markup.Escape(OutputFolder.Reason(e))}");
                return 2;
            }
        });
        return cmd;
    }

    /// <summary>The flag a <see cref="SyntheticSegOptions"/> property is set by.</summary>
    private static string Flag(string property) => property switch
    {
        "Patients" => "--patients",
        "ItemsPerPatient" => "--items-per-patient",
        "ImageSize" => "--size",
        "VolumeShape" => "--volume-shape",
        "AffectedSex" => "--affected-sex",
        "ContrastFactor" => "--contrast-factor",
        "SizeFactor" => "--size-factor",
        "NoiseFactor" => "--noise-factor",
        "Name" => "--name",
        _ => property,
    };

    private static int? Whole(string? text, string flag, int min, int max)
    {
        if (text is null) return null;
        var t = text.Trim();
        if (int.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)) return v;
        // Digits beyond int: out of range, said as the range (not as a parser error).
        if (t.TrimStart('-', '+').Length > 0 && t.TrimStart('-', '+').All(char.IsAsciiDigit))
            throw new ArgumentException($"{flag} must be from {min:N0} to {max:N0}, got {t}");
        throw new ArgumentException($"{flag} expects a whole number from {min:N0} to {max:N0}, got '{t}'");
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
