using System.Security.Cryptography;
using System.Text;
using CsvHelper;

namespace FairMedFM.Data;

/// <summary>One image row of the metadata CSV.</summary>
public sealed class Sample
{
    /// <summary>0-based position in <see cref="LoadedDataset.Samples"/> (= CSV data row − 1).</summary>
    public required int Index { get; init; }
    /// <summary>Absolute image path.</summary>
    public required string ImagePath { get; init; }
    /// <summary>The path column's value as written in the CSV.</summary>
    public required string RelativePath { get; init; }
    public required string PatientId { get; init; }
    /// <summary>0 or 1.</summary>
    public required int Label { get; init; }
    /// <summary>Attribute or intersection name → group label.</summary>
    public required IReadOnlyDictionary<string, string> Groups { get; init; }
    /// <summary>Attribute or intersection name → group code (index in <see cref="DatasetCard.GroupLabels"/>).</summary>
    public required IReadOnlyDictionary<string, int> GroupCodes { get; init; }
}

/// <summary>A card's CSV read, validated and (optionally) fingerprinted.</summary>
public sealed class LoadedDataset
{
    public required DatasetCard Card { get; init; }
    public required IReadOnlyList<Sample> Samples { get; init; }
    /// <summary>Attribute names, then intersection names.</summary>
    public required IReadOnlyList<string> AttributeNames { get; init; }
    /// <summary>
    /// sha256 (hex) over the card's semantic JSON, the sha256 of the CSV bytes and every referenced image's sha256
    /// in sample order. With <c>hashImages: false</c> the image part is replaced by the list of image paths (marked
    /// as such), so such a hash never equals a full one.
    /// </summary>
    public required string DataHash { get; init; }
    public required bool ImagesHashed { get; init; }
    /// <summary>sha256 (hex) of each image file in sample order, or null when images were not hashed.</summary>
    public IReadOnlyList<string>? ImageHashes { get; init; }

    public int Count => Samples.Count;

    /// <summary>Group labels of an attribute or intersection, in code order.</summary>
    public IReadOnlyList<string> GroupLabels(string attributeOrIntersection) => Card.GroupLabels(attributeOrIntersection);

    /// <param name="guard">Where the CSV and the images may lie; <see cref="PathGuard.Current"/> when null. A path column
    /// entry that is absolute or climbs out with <c>..</c> (or through a symlink) beyond the roots is an error naming its row.</param>
    public static LoadedDataset Load(DatasetCard card, bool hashImages = true, PathGuard? guard = null)
    {
        guard ??= PathGuard.Current;
        card.Validate();
        var csvPath = Path.GetFullPath(card.MetadataCsv);
        var imageRoot = Path.GetFullPath(card.ImageRoot);
        guard.Check(csvPath, "metadata CSV", card.SourceFile, field: "metadata_csv");
        if (!File.Exists(csvPath)) throw new DataException("metadata CSV not found", csvPath);
        byte[] csvBytes;
        try { csvBytes = File.ReadAllBytes(csvPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new DataException($"cannot read metadata CSV: {e.Message}", csvPath, inner: e); }

        var rows = ReadCsv(csvPath, csvBytes, out var header);
        int Col(string name)
        {
            int idx = Array.IndexOf(header, name);
            if (idx < 0)
                throw new DataException($"column not found in the CSV header (card '{card.Name}' needs it; header has: {string.Join(", ", header)})", csvPath, column: name);
            if (Array.IndexOf(header, name, idx + 1) >= 0)
                throw new DataException("column appears twice in the CSV header", csvPath, column: name);
            return idx;
        }

        int pathCol = Col(card.PathColumn);
        int? patientCol = card.PatientIdColumn is null ? null : Col(card.PatientIdColumn);
        int labelCol = Col(card.Label.Column);
        var attrCols = card.Attributes.Select(a => Col(a.Column)).ToArray();
        var attrCodes = card.Attributes.Select(a => a.GroupLabels).ToArray();
        var interLabels = card.Intersections.Select(x => card.GroupLabels(x.Name)).ToArray();

        var samples = new List<Sample>(rows.Count);
        var seenImages = new Dictionary<string, (int Row, string Rel)>(StringComparer.Ordinal);
        var perPatient = new PatientAttributeCheck(card.Attributes, csvPath);
        for (int r = 0; r < rows.Count; r++)
        {
            int rowNo = r + 1;
            var f = rows[r];
            var rel = f[pathCol].Trim();
            if (rel.Length == 0) throw new DataException("empty image path", csvPath, rowNo, card.PathColumn);
            var abs = Path.GetFullPath(Path.Combine(imageRoot, rel));
            // One image, one row: a repeat would be scored twice and, under another patient or label, leak across splits.
            if (seenImages.TryGetValue(abs, out var prev))
                throw new DataException(DuplicateImage(prev.Row, prev.Rel, rowNo, rel), csvPath, rowNo, card.PathColumn);
            seenImages[abs] = (rowNo, rel);
            guard.Check(abs, "image", csvPath, rowNo, card.PathColumn);
            if (!File.Exists(abs))
                throw new DataException($"image file not found: '{abs}'", csvPath, rowNo, card.PathColumn);
            string patient = patientCol is { } pc ? f[pc].Trim() : rel;
            if (patient.Length == 0) throw new DataException("empty patient id", csvPath, rowNo, card.PatientIdColumn);
            int label = card.Label.Encode(f[labelCol], csvPath, rowNo);

            var groups = new Dictionary<string, string>(StringComparer.Ordinal);
            var codes = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int a = 0; a < card.Attributes.Count; a++)
            {
                var g = card.Attributes[a].Encode(f[attrCols[a]], csvPath, rowNo);
                groups[card.Attributes[a].Name] = g;
                codes[card.Attributes[a].Name] = IndexOf(attrCodes[a], g);
            }
            for (int i = 0; i < card.Intersections.Count; i++)
            {
                var x = card.Intersections[i];
                var g = string.Join(IntersectionSpec.Separator, x.Of.Select(m => groups[m]));
                groups[x.Name] = g;
                codes[x.Name] = IndexOf(interLabels[i], g);
            }
            if (patientCol is not null) perPatient.Add(patient, rowNo, f, attrCols, groups);
            samples.Add(new Sample
            {
                Index = r, ImagePath = abs, RelativePath = rel, PatientId = patient, Label = label,
                Groups = groups, GroupCodes = codes,
            });
        }
        if (samples.Count == 0) throw new DataException("the metadata CSV has no data rows", csvPath);

        string[]? imageHashes = null;
        if (hashImages)
        {
            imageHashes = new string[samples.Count];
            for (int i = 0; i < samples.Count; i++)
            {
                try { imageHashes[i] = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(samples[i].ImagePath))); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                { throw new DataException($"cannot read image '{samples[i].ImagePath}': {e.Message}", csvPath, i + 1, card.PathColumn, inner: e); }
            }
        }

        var sb = new StringBuilder();
        sb.Append("fairmedfm.data.v1\ncard:").Append(card.SemanticJson());
        sb.Append("\ncsv_sha256:").Append(Convert.ToHexStringLower(SHA256.HashData(csvBytes)));
        if (imageHashes is not null)
        {
            sb.Append("\nimages_sha256:");
            foreach (var h in imageHashes) sb.Append('\n').Append(h);
        }
        else
        {
            // Paths are already inside the CSV bytes; the marker alone keeps the two kinds of hash apart.
            sb.Append("\nimages:not-hashed");
        }
        var dataHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));

        return new LoadedDataset
        {
            Card = card, Samples = samples, AttributeNames = card.AttributeNames, DataHash = dataHash,
            ImagesHashed = hashImages, ImageHashes = imageHashes,
        };
    }

    /// <summary>"rows 2 and 250 both name image 'images/x.png' …" (with the other spelling when the paths differ only by normalisation).</summary>
    internal static string DuplicateImage(int firstRow, string firstRel, int row, string rel) =>
        $"rows {firstRow} and {row} both name image '{rel}'" + (firstRel == rel ? "" : $" (row {firstRow} writes it '{firstRel}')") +
        ": an image is listed twice; each image must be one row (a repeat is scored twice and, under another patient or label, leaks across the train/validation/test split)";

    private static int IndexOf(IReadOnlyList<string> list, string value)
    {
        for (int i = 0; i < list.Count; i++) if (list[i] == value) return i;
        return -1; // unreachable: Encode only returns labels from GroupLabels
    }

    internal static List<string[]> ReadCsv(string csvPath, byte[] bytes, out string[] header)
    {
        var options = new CsvReaderOptions
        {
            Separator = ',',
            HasHeader = true,
            TrimWhitespace = false, // cells are trimmed where they are interpreted, so hashes see the raw bytes
            MalformedData = CsvMalformedDataHandling.Throw,
            FieldCountMismatch = CsvFieldCountHandling.Allow, // checked below, with a row number in the message
            SkipEmptyLines = true,
        };
        var rows = new List<string[]>();
        try
        {
            using var reader = CsvReader.Create(bytes, options);
            header = reader.Headers.Select(h => h.Trim()).ToArray();
            if (header.Length == 0) throw new DataException("the metadata CSV is empty (no header)", csvPath);
            while (reader.Read())
            {
                int rowNo = rows.Count + 1;
                if (reader.FieldCount != header.Length)
                    throw new DataException($"row has {reader.FieldCount} fields but the header has {header.Length}", csvPath, rowNo);
                var rec = new string[header.Length];
                for (int i = 0; i < rec.Length; i++) rec[i] = reader.GetString(i) ?? "";
                rows.Add(rec);
            }
        }
        catch (CsvFormatException e)
        {
            throw new DataException($"malformed CSV: {e.Message}", csvPath, rows.Count + 1, inner: e);
        }
        return rows;
    }
}
