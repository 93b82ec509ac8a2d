using System.Globalization;
using CsvHelper;
using FairMedFM.Data;

namespace FairMedFM.Engine.Evaluation;

/// <summary>Which columns of a predictions CSV hold what. Null entries are found by their default names when present.</summary>
public sealed record PredictionColumns
{
    public string Label { get; init; } = "label";
    /// <summary>P(y = 1) (or any score: AUC needs no probability). Null: "score", else "prob".</summary>
    public string? Score { get; init; }
    /// <summary>Per-class scores, class c in the c-th column (multi-class, evaluated one-vs-rest). Excludes <see cref="Score"/>.</summary>
    public IReadOnlyList<string>? ClassScores { get; init; }
    /// <summary>Sensitive-attribute columns. Empty: "group" when present.</summary>
    public IReadOnlyList<string> Attributes { get; init; } = [];
    /// <summary>Patient id (bootstrap clusters). Null: "patient_id" when present; "" disables.</summary>
    public string? Patient { get; init; }
    /// <summary>Split (train rows ignored; the threshold is chosen on validation rows and frozen for test rows). Null:
    /// "split" when present; "" disables.</summary>
    public string? Split { get; init; }
    /// <summary>Group label for a missing attribute value; null makes a missing value an error naming its row.</summary>
    public string? MissingGroup { get; init; }
}

/// <summary>A predictions file read and validated: every bad cell is an error naming the file, the 1-based data row and the column.</summary>
public sealed class Predictions
{
    public required string File { get; init; }
    public required string[] Header { get; init; }
    public required int[] Labels { get; init; }
    /// <summary>Binary scores, or null with <see cref="ClassScores"/> set.</summary>
    public float[]? Scores { get; init; }
    public float[][]? ClassScores { get; init; }
    public required string ScoreDescription { get; init; }
    /// <summary>Attribute name → group label per row.</summary>
    public required IReadOnlyDictionary<string, string[]> Attributes { get; init; }
    public string[]? Patients { get; init; }
    /// <summary>"validation" or "test" per row (train rows are dropped), or null without a split column.</summary>
    public string[]? Splits { get; init; }
    /// <summary>1-based data row of each kept row, for messages.</summary>
    public required int[] Rows { get; init; }
    public int TrainRowsDropped { get; init; }
    public int Count => Labels.Length;

    /// <summary>Values read as a missing attribute (case-insensitive), as pandas writes NaN/None.</summary>
    public static readonly string[] MissingTokens = ["", "na", "nan", "n/a", "null", "none"];

    public static Predictions Read(string path, PredictionColumns columns)
    {
        ArgumentNullException.ThrowIfNull(columns);
        var file = Path.GetFullPath(path);
        if (!System.IO.File.Exists(file)) throw new DataException("predictions file not found", file);
        byte[] bytes;
        try { bytes = System.IO.File.ReadAllBytes(file); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new DataException($"cannot read: {e.Message}", file, inner: e); }

        var options = new CsvReaderOptions
        {
            Separator = ',', HasHeader = true, TrimWhitespace = false, MalformedData = CsvMalformedDataHandling.Throw,
            FieldCountMismatch = CsvFieldCountHandling.Allow, SkipEmptyLines = true,
        };
        var rows = new List<string[]>();
        string[] header;
        try
        {
            using var reader = CsvReader.Create(bytes, options);
            header = reader.Headers.Select(h => h.Trim()).ToArray();
            if (header.Length == 0) throw new DataException("the file is empty (no header row)", file);
            while (reader.Read())
            {
                int rowNo = rows.Count + 1;
                if (reader.FieldCount != header.Length)
                    throw new DataException($"row has {reader.FieldCount} fields but the header has {header.Length}", file, rowNo);
                var rec = new string[header.Length];
                for (int i = 0; i < rec.Length; i++) rec[i] = (reader.GetString(i) ?? "").Trim();
                rows.Add(rec);
            }
        }
        catch (CsvFormatException e) { throw new DataException($"malformed CSV: {e.Message}", file, rows.Count + 1, inner: e); }
        if (rows.Count == 0) throw new DataException("the file has a header but no data rows", file);

        int Col(string name, string role)
        {
            int idx = Array.IndexOf(header, name);
            if (idx < 0) throw new DataException($"{role} column not found (header has: {string.Join(", ", header)})", file, column: name);
            if (Array.IndexOf(header, name, idx + 1) >= 0) throw new DataException("column appears twice in the header", file, column: name);
            return idx;
        }
        int? Optional(string? given, string fallback, string role) =>
            given is null ? (Array.IndexOf(header, fallback) is var i && i >= 0 ? i : null) : given.Length == 0 ? null : Col(given, role);

        int labelCol = Col(columns.Label, "label");
        int[]? classCols = columns.ClassScores is { Count: > 0 } cs ? cs.Select(c => Col(c, "class score")).ToArray() : null;
        if (classCols is { Length: < 2 }) throw new DataException("--scores needs at least two class-score columns (one per class)", file);
        int scoreCol = -1;
        string scoreDesc;
        if (classCols is null)
        {
            var name = columns.Score ?? (Array.IndexOf(header, "score") >= 0 ? "score" : Array.IndexOf(header, "prob") >= 0 ? "prob" : null)
                ?? throw new DataException($"no score column: name it with --score (or --scores for per-class scores); header has: {string.Join(", ", header)}", file, column: "score");
            scoreCol = Col(name, "score");
            scoreDesc = name;
        }
        else scoreDesc = string.Join(", ", columns.ClassScores!);
        var attrNames = columns.Attributes.Count > 0 ? columns.Attributes.ToArray()
            : Array.IndexOf(header, "group") >= 0 ? ["group"]
            : throw new DataException($"no attribute column: name one or more with --attribute; header has: {string.Join(", ", header)}", file, column: "group");
        if (attrNames.GroupBy(a => a).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new DataException($"--attribute {twice.Key} is given more than once", file, column: twice.Key);
        var attrCols = attrNames.Select(a => Col(a, "attribute")).ToArray();
        int? patientCol = Optional(columns.Patient, "patient_id", "patient id");
        int? splitCol = Optional(columns.Split, "split", "split");

        var labels = new List<int>(); var scores = new List<float>(); var classScores = new List<float[]>();
        var attrs = attrNames.Select(_ => new List<string>()).ToArray();
        var patients = new List<string>(); var splits = new List<string>(); var kept = new List<int>();
        int dropped = 0;
        int k = classCols?.Length ?? 2;
        for (int r = 0; r < rows.Count; r++)
        {
            int rowNo = r + 1;
            var f = rows[r];
            string? split = null;
            if (splitCol is { } sc)
            {
                split = f[sc].ToLowerInvariant() switch
                {
                    "train" or "training" => null,
                    "validation" or "val" or "valid" => "validation",
                    "test" => "test",
                    _ => throw new DataException($"split '{f[sc]}' is not one of: train, validation (val, valid), test", file, rowNo, header[sc]),
                };
                if (split is null) { dropped++; continue; }
            }
            if (!int.TryParse(f[labelCol], NumberStyles.Integer, CultureInfo.InvariantCulture, out int y) || y < 0 || y >= k)
                throw new DataException(classCols is null
                    ? $"label '{f[labelCol]}' is not 0 or 1 (per-class scores and integer class labels: use --scores)"
                    : $"label '{f[labelCol]}' is not a class index in 0..{k - 1} (one per --scores column)", file, rowNo, header[labelCol]);
            labels.Add(y);
            if (classCols is null) scores.Add(ParseScore(f, scoreCol, header, file, rowNo));
            else classScores.Add(classCols.Select(c => ParseScore(f, c, header, file, rowNo)).ToArray());
            for (int a = 0; a < attrCols.Length; a++)
            {
                var v = f[attrCols[a]];
                if (MissingTokens.Contains(v.ToLowerInvariant()))
                {
                    if (string.IsNullOrEmpty(columns.MissingGroup))
                        throw new DataException($"attribute value is missing ('{v}'); map missing values to a group with --missing-group LABEL or drop the row", file, rowNo, header[attrCols[a]]);
                    v = columns.MissingGroup;
                }
                attrs[a].Add(v);
            }
            if (patientCol is { } pc)
            {
                if (f[pc].Length == 0) throw new DataException("empty patient id", file, rowNo, header[pc]);
                patients.Add(f[pc]);
            }
            if (split is not null) splits.Add(split);
            kept.Add(rowNo);
        }
        if (labels.Count == 0) throw new DataException("no validation or test rows (every row is a train row)", file, column: splitCol is { } s ? header[s] : null);
        return new Predictions
        {
            File = file, Header = header, Labels = labels.ToArray(),
            Scores = classCols is null ? scores.ToArray() : null, ClassScores = classCols is null ? null : classScores.ToArray(),
            ScoreDescription = scoreDesc,
            Attributes = attrNames.Select((n, i) => (n, attrs[i].ToArray())).ToDictionary(t => t.n, t => t.Item2, StringComparer.Ordinal),
            Patients = patientCol is null ? null : patients.ToArray(),
            Splits = splitCol is null ? null : splits.ToArray(),
            Rows = kept.ToArray(), TrainRowsDropped = dropped,
        };
    }

    private static float ParseScore(string[] f, int col, string[] header, string file, int rowNo)
    {
        var s = f[col];
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
            throw new DataException($"score '{s}' is not a number", file, rowNo, header[col]);
        if (double.IsNaN(v) || double.IsInfinity(v))
            throw new DataException($"score '{s}' is not finite: a model output must be a number", file, rowNo, header[col]);
        return (float)v;
    }
}
