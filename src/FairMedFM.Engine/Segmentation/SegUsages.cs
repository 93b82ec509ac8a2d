using FairMedFM.Data;
using FairMedFM.Data.Segmentation;
using FairMedFM.Engine.Config;

namespace FairMedFM.Engine.Segmentation;

/// <summary>
/// The segmentation usages of a grid: zero-shot promptable segmentation with one of FairMedFM's prompt types
/// (spec §2.7 / §5.5, <c>--prompt center|rand|rands|bbox</c>). The usage name carries from the grid key to the cell
/// (<see cref="CellSpec.Usage"/>) to the report column unchanged: <c>seg-center</c>, <c>seg-rand</c>, <c>seg-rands</c>,
/// <c>seg-bbox</c>. Nothing is trained (method <c>erm</c> only).
/// </summary>
public static class SegUsages
{
    public const string Center = "seg-center";
    public const string Rand = "seg-rand";
    public const string Rands = "seg-rands";
    public const string Box = "seg-bbox";

    /// <summary>Every segmentation usage, in FairMedFM's prompt order.</summary>
    public static IReadOnlyList<string> All { get; } = [Center, Rand, Rands, Box];

    public static bool IsSegmentation(string usage) => All.Contains(usage);

    /// <summary>The prompt of a segmentation usage.</summary>
    public static PromptKind Prompt(string usage) => usage switch
    {
        Center => PromptKind.Center,
        Rand => PromptKind.Rand,
        Rands => PromptKind.Rands,
        Box => PromptKind.Box,
        _ => throw new ConfigException($"usage '{usage}' is not a segmentation usage (segmentation usages: {string.Join(", ", All)})"),
    };

    /// <summary>FairMedFM's <c>--prompt</c> name of a usage (center, rand, rands, bbox).</summary>
    public static string ReferenceName(string usage) => usage["seg-".Length..];
}

/// <summary>
/// Which task a dataset card is for (classification or segmentation), read after the data-roots guard has allowed the
/// card, so that a card outside the roots is refused before any of it is parsed.
/// </summary>
public static class DatasetTask
{
    public const string Classification = "classification";
    public const string Segmentation = SegmentationCard.TaskName;

    public static string Of(string cardPath)
    {
        var full = Path.GetFullPath(cardPath);
        PathGuard.Current.Check(full, "dataset card");
        return DatasetCardTask.Detect(full);
    }

    public static bool IsSegmentation(string cardPath) => Of(cardPath) == Segmentation;

    /// <summary>
    /// The usage/dataset pairing of a cell: a segmentation usage needs a segmentation card and a classification usage a
    /// classification card; the error names both.
    /// </summary>
    public static void CheckPairing(string usage, string cardPath, string task)
    {
        bool segUsage = SegUsages.IsSegmentation(usage);
        if (segUsage && task != Segmentation)
            throw new ConfigException($"usage '{usage}' is a segmentation usage but dataset card {cardPath} is a {task} card " +
                                      $"(segmentation usages need a card with 'task: {Segmentation}'; classification usages: {string.Join(", ", GridSpec.KnownUsages)})");
        if (!segUsage && task == Segmentation)
            throw new ConfigException($"usage '{usage}' is a classification usage but dataset card {cardPath} is a segmentation card " +
                                      $"(task: {Segmentation}); use one of the segmentation usages {string.Join(", ", SegUsages.All)}");
    }
}
