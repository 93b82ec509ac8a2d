using System.Globalization;

namespace FairMedFM.Metrics;

/// <summary>Why a metric has no numeric value.</summary>
public enum UndefinedReason
{
    /// <summary>The metric needs at least one positive label (y = 1) and there is none.</summary>
    NoPositives,
    /// <summary>The metric needs at least one negative label (y = 0) and there is none.</summary>
    NoNegatives,
    /// <summary>The metric needs both classes; reserved for metrics where neither
    /// <see cref="NoPositives"/> nor <see cref="NoNegatives"/> is the more precise reason.</summary>
    SingleClass,
    /// <summary>No samples at all.</summary>
    EmptyGroup,
    /// <summary>A summary over groups needs at least two groups on which the per-group metric is defined.</summary>
    TooFewGroups,
    /// <summary>The input cannot be scored (NaN score, probability outside [0, 1] where one is required).</summary>
    UndefinedInput,
    /// <summary>A rate over predicted positives (PPV) with no sample predicted positive.</summary>
    NoPredictedPositives,
    /// <summary>A ratio or quotient whose denominator is 0 (e.g. the demographic-parity ratio when no group has a
    /// positive prediction, Dice skewness when the best group's Dice is 1).</summary>
    ZeroDenominator,
    /// <summary>A segmentation metric needs a non-empty mask (Dice/IoU of two empty masks, HD95 with an empty mask).</summary>
    EmptyMask,
    /// <summary>The bootstrap left the statistic undefined in every resample (or the estimate itself is undefined).</summary>
    NoDefinedResamples,
    /// <summary>An interval cannot be had: every resample gives the same value because the strata it depends on hold a single
    /// unit (one patient in a group), which every resample keeps as it is. A zero-width interval would claim certainty.</summary>
    TooFewUnits,
}

/// <summary>
/// A metric value that is either a number or typed "undefined" with a reason — never a silent NaN or 0.
/// </summary>
/// <remarks>
/// <para><see cref="Value"/> is <see cref="double.NaN"/> when undefined, so that arithmetic on an unchecked undefined
/// value cannot produce a plausible number; always test <see cref="IsDefined"/> first.</para>
/// <para><see cref="Detail"/> is free text. On an undefined value it names what was missing; on a defined summary value it
/// can say which groups were left out of it (see <see cref="ClassificationMetrics.Evaluate"/>).</para>
/// </remarks>
public readonly record struct MetricValue(double Value, UndefinedReason? Reason, string? Detail = null)
{
    public bool IsDefined => Reason is null;

    /// <summary>A defined value. NaN is refused: a metric that cannot be computed must say why.</summary>
    public static MetricValue Of(double v)
    {
        if (double.IsNaN(v))
            throw new ArgumentException("A metric value cannot be NaN; use MetricValue.Undefined with a reason.", nameof(v));
        return new MetricValue(v, null);
    }

    /// <summary>A defined value carrying a note (e.g. which groups a summary left out).</summary>
    public static MetricValue Of(double v, string? detail) => Of(v) with { Detail = detail };

    public static MetricValue Undefined(UndefinedReason r, string? detail = null) => new(double.NaN, r, detail);

    /// <summary>"0.7824" (4 decimals, invariant culture) or "undefined (no positives)". <see cref="Detail"/> is not
    /// included, so the text stays stable for tables and logs.</summary>
    public override string ToString() =>
        Reason is { } r
            ? $"undefined ({ReasonText(r)})"
            : Value.ToString("0.0000", CultureInfo.InvariantCulture);

    /// <summary>Lower-case words for a reason, e.g. <c>NoPositives</c> → "no positives".</summary>
    public static string ReasonText(UndefinedReason r) => r switch
    {
        UndefinedReason.NoPositives => "no positives",
        UndefinedReason.NoNegatives => "no negatives",
        UndefinedReason.SingleClass => "single class",
        UndefinedReason.EmptyGroup => "empty group",
        UndefinedReason.TooFewGroups => "too few groups",
        UndefinedReason.UndefinedInput => "undefined input",
        UndefinedReason.NoPredictedPositives => "no predicted positives",
        UndefinedReason.ZeroDenominator => "zero denominator",
        UndefinedReason.EmptyMask => "empty mask",
        UndefinedReason.NoDefinedResamples => "no defined resamples",
        UndefinedReason.TooFewUnits => "too few units to resample",
        _ => r.ToString(),
    };
}
