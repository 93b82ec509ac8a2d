namespace FairMedFM.Data;

/// <summary>
/// Any problem with a dataset card, metadata CSV or image. The message always names the file and, where it applies,
/// the data row and the column (or card field), so a user can fix the input without a debugger.
/// </summary>
/// <remarks>
/// Row convention: <see cref="Row"/> is the 1-based data row of the CSV; the header line is row 0.
/// (So data row 1 is the second physical line of the file, barring quoted newlines.)
/// </remarks>
public sealed class DataException : Exception
{
    public string? File { get; }
    /// <summary>1-based data row (header = row 0); null when the error is not about one row.</summary>
    public int? Row { get; }
    public string? Column { get; }
    /// <summary>Dotted card field path, e.g. <c>attributes[1].threshold</c>, for card errors.</summary>
    public string? Field { get; }
    /// <summary>The bare reason, without the location prefix.</summary>
    public string Reason { get; }

    public DataException(string reason, string? file = null, int? row = null, string? column = null,
        string? field = null, Exception? inner = null)
        : base(Compose(reason, file, row, column, field), inner)
    {
        Reason = reason;
        File = file;
        Row = row;
        Column = column;
        Field = field;
    }

    private static string Compose(string reason, string? file, int? row, string? column, string? field)
    {
        var parts = new List<string>();
        if (file is not null) parts.Add($"file '{file}'");
        if (row is not null) parts.Add($"data row {row} (1-based; header is row 0)");
        if (column is not null) parts.Add($"column '{column}'");
        if (field is not null) parts.Add($"field '{field}'");
        return parts.Count == 0 ? reason : string.Join(", ", parts) + ": " + reason;
    }
}
