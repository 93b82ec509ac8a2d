namespace FairMedFM.Metrics;

/// <summary>How a bootstrap confidence interval is formed from the resampled statistics.</summary>
public enum CiMethod
{
    /// <summary>The α/2 and 1 − α/2 quantiles of the bootstrap distribution (linear interpolation, numpy's default).</summary>
    Percentile,
    /// <summary>Bias-corrected and accelerated (Efron 1987): quantiles shifted by the bias z₀ (share of resamples below the
    /// estimate) and the acceleration a (jackknife skewness, over clusters/samples or blocks of them).</summary>
    Bca,
}

/// <param name="Resamples">Number of bootstrap resamples (≥ 1; 1,000 or more for publication, the sweep default is 200).</param>
/// <param name="Seed">Seed: the same seed and data give the same intervals on any machine and thread count.</param>
/// <param name="Method">Percentile or BCa.</param>
/// <param name="Level">Two-sided confidence level in (0, 1).</param>
/// <param name="MaxJackknifeBlocks">BCa's acceleration is estimated by a leave-one-unit-out jackknife when there are at most
/// this many units (samples or clusters), else by a delete-a-block jackknife over this many random blocks of units.</param>
/// <param name="MaxDegreeOfParallelism">Threads used for the resamples (null: all cores). Results do not depend on it.</param>
public sealed record BootstrapOptions(int Resamples = 1000, long Seed = 0, CiMethod Method = CiMethod.Percentile, double Level = 0.95,
    int MaxJackknifeBlocks = 200, int? MaxDegreeOfParallelism = null)
{
    internal void Validate()
    {
        if (Resamples < 1) throw new ArgumentOutOfRangeException(nameof(Resamples), Resamples, "Resamples must be at least 1.");
        if (!(Level > 0 && Level < 1)) throw new ArgumentOutOfRangeException(nameof(Level), Level, "Level must be in (0, 1).");
        if (MaxJackknifeBlocks < 2) throw new ArgumentOutOfRangeException(nameof(MaxJackknifeBlocks), MaxJackknifeBlocks, "MaxJackknifeBlocks must be at least 2.");
        if (MaxDegreeOfParallelism is < 1) throw new ArgumentOutOfRangeException(nameof(MaxDegreeOfParallelism), MaxDegreeOfParallelism, "must be at least 1.");
    }
}

/// <summary>
/// A two-sided bootstrap confidence interval, or typed undefined (the estimate is undefined, or no resample defined it).
/// Resamples where the statistic is undefined (a single-class group drawn, say) are left out of the quantiles and counted
/// in <see cref="DefinedResamples"/>; <see cref="Detail"/> then says how many and why — read such an interval as
/// conditional on the statistic being defined.
/// </summary>
public sealed record ConfidenceInterval(double Lower, double Upper, double Level, CiMethod Method, int Resamples, int DefinedResamples,
    UndefinedReason? Reason = null, string? Detail = null)
{
    public bool IsDefined => Reason is null;

    public static ConfidenceInterval Undefined(UndefinedReason reason, double level, CiMethod method, int resamples, int defined, string? detail) =>
        new(double.NaN, double.NaN, level, method, resamples, defined, reason, detail);

    /// <summary>"[0.5012, 0.6234]" or "undefined (…)".</summary>
    public override string ToString() => IsDefined
        ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"[{Lower:0.0000}, {Upper:0.0000}]")
        : $"undefined ({MetricValue.ReasonText(Reason!.Value)})";
}
