using System.Text;

namespace FairMedFM.Metrics.Internal;

/// <summary>
/// The summaries over groups, shared by <see cref="ClassificationMetrics.Evaluate"/> and the bootstrap, so a confidence
/// interval is always about exactly the statistic that was reported.
/// </summary>
internal static class Summaries
{
    /// <summary>A per-group metric over the groups where it is defined.</summary>
    internal sealed class Spread
    {
        public required string Key { get; init; }
        public required int Groups { get; init; }
        public required List<double> Values { get; init; }
        /// <summary>"'a' (no positives), 'b' (...)" — the groups left out, or empty.</summary>
        public required string LeftOut { get; init; }
        public int Defined => Values.Count;
        public bool Enough => Values.Count >= 2;
        public double Min => Values.Min();
        public double Max => Values.Max();

        /// <summary>Note on a defined summary (which groups were left out), or null.</summary>
        public string? Note => LeftOut.Length > 0 ? $"{Key} over {Defined} of {Groups} groups; left out {LeftOut}" : null;

        /// <summary>Why a summary that needs two defined groups is undefined.</summary>
        public MetricValue TooFew() => MetricValue.Undefined(UndefinedReason.TooFewGroups,
            $"{Key} is defined in {Defined} of {Groups} group(s); at least 2 are needed" + (LeftOut.Length > 0 ? $"; undefined in {LeftOut}" : ""));

        public MetricValue Of(Func<Spread, double> f) => Enough ? MetricValue.Of(f(this), Note) : TooFew();
    }

    internal static Spread SpreadOf(IReadOnlyList<GroupReport> groups, string key)
    {
        var values = new List<double>(groups.Count);
        var left = new StringBuilder();
        foreach (var g in groups)
        {
            var v = g.Values[key];
            if (v.IsDefined) values.Add(v.Value);
            else
            {
                if (left.Length > 0) left.Append(", ");
                left.Append('\'').Append(g.Group).Append("' (").Append(MetricValue.ReasonText(v.Reason!.Value)).Append(')');
            }
        }
        return new Spread { Key = key, Groups = groups.Count, Values = values, LeftOut = left.ToString() };
    }

    internal static string? Join(string? a, string? b) => a is null ? b : b is null ? a : a + "; " + b;

    /// <summary>Population standard deviation (ddof 0, numpy's default), two-pass.</summary>
    internal static double PopulationStd(IReadOnlyList<double> v)
    {
        double mean = 0;
        foreach (var x in v) mean += x;
        mean /= v.Count;
        double ss = 0;
        foreach (var x in v) ss += (x - mean) * (x - mean);
        return Math.Sqrt(ss / v.Count);
    }

    /// <summary>Both of two defined values combined, else undefined with the reasons of the undefined ones.</summary>
    private static MetricValue Both(MetricValue a, MetricValue b, Func<double, double, double> f)
    {
        if (a.IsDefined && b.IsDefined) return MetricValue.Of(f(a.Value, b.Value), Join(a.Detail, b.Detail));
        var reason = !a.IsDefined ? a.Reason!.Value : b.Reason!.Value;
        return MetricValue.Undefined(reason, Join(a.IsDefined ? null : a.Detail, b.IsDefined ? null : b.Detail));
    }

    /// <summary>min/max over groups; undefined (zero denominator) when the largest value is 0.</summary>
    private static MetricValue Ratio(Spread s)
    {
        if (!s.Enough) return s.TooFew();
        double max = s.Max;
        if (max == 0)
            return MetricValue.Undefined(UndefinedReason.ZeroDenominator, $"{s.Key} is 0 in every group, so min/max is 0/0");
        return MetricValue.Of(s.Min / max, s.Note);
    }

    /// <summary>overall / (1 + population std of the group values) — FairMedFM's es_dice form (the Kavindya98 fork's auc-es).</summary>
    private static MetricValue EsStd(MetricValue overall, Spread s)
    {
        if (!overall.IsDefined) return MetricValue.Undefined(overall.Reason!.Value, "the overall value is undefined: " + overall.Detail);
        if (!s.Enough) return s.TooFew();
        return MetricValue.Of(overall.Value / (1 + PopulationStd(s.Values)), s.Note);
    }

    /// <summary>overall / (1 + Σ_g |overall − value_g|) — the Harvard FairSeg / FairCLIP equity-scaled form.</summary>
    private static MetricValue EsSum(MetricValue overall, Spread s)
    {
        if (!overall.IsDefined) return MetricValue.Undefined(overall.Reason!.Value, "the overall value is undefined: " + overall.Detail);
        if (!s.Enough) return s.TooFew();
        double sum = 0;
        foreach (var v in s.Values) sum += Math.Abs(overall.Value - v);
        return MetricValue.Of(overall.Value / (1 + sum), s.Note);
    }

    internal static Dictionary<string, MetricValue> Classification(GroupReport overall, IReadOnlyList<GroupReport> groups)
    {
        var auc = SpreadOf(groups, "auc");
        var acc = SpreadOf(groups, "acc");
        var bce = SpreadOf(groups, "bce");
        var ece = SpreadOf(groups, "ece");
        var tpr = SpreadOf(groups, "tpr");
        var tnr = SpreadOf(groups, "tnr");
        var fpr = SpreadOf(groups, "fpr");
        var sel = SpreadOf(groups, "selection-rate");

        var tprGap = tpr.Of(s => s.Max - s.Min);
        var tnrGap = tnr.Of(s => s.Max - s.Min);
        var fprGap = fpr.Of(s => s.Max - s.Min);

        MetricValue eod;
        if (tprGap.IsDefined && tnrGap.IsDefined)
            eod = MetricValue.Of(1 - (tprGap.Value + tnrGap.Value) / 2, Join(tprGap.Detail, tnrGap.Detail));
        else
            eod = MetricValue.Undefined(UndefinedReason.TooFewGroups,
                Join(tprGap.IsDefined ? null : tprGap.Detail, tnrGap.IsDefined ? null : tnrGap.Detail));

        var tprRatio = Ratio(tpr);
        var fprRatio = Ratio(fpr);

        return new Dictionary<string, MetricValue>(StringComparer.Ordinal)
        {
            ["overall-auc"] = overall.Values["auc"],
            ["overall-acc"] = overall.Values["acc"],
            ["overall-bce"] = overall.Values["bce"],
            ["overall-ece"] = overall.Values["ece"],
            ["worst-auc"] = auc.Of(s => s.Min),
            ["auc-gap"] = auc.Of(s => s.Max - s.Min),
            ["acc-gap"] = acc.Of(s => s.Max - s.Min),
            ["bce-gap"] = bce.Of(s => s.Max - s.Min),
            ["ece-gap"] = ece.Of(s => s.Max - s.Min),
            ["eod"] = eod,
            ["eo"] = tprGap,
            ["worst-acc"] = acc.Of(s => s.Min),
            ["dp-diff"] = sel.Of(s => s.Max - s.Min),
            ["dp-ratio"] = Ratio(sel),
            ["eqodds-diff"] = Both(tprGap, fprGap, Math.Max),
            ["eqodds-diff-mean"] = Both(tprGap, fprGap, (a, b) => (a + b) / 2),
            ["eqodds-ratio"] = Both(tprRatio, fprRatio, Math.Min),
            ["eqodds-ratio-mean"] = Both(tprRatio, fprRatio, (a, b) => (a + b) / 2),
            ["eopp-diff"] = tprGap,
            ["auc-es"] = EsStd(overall.Values["auc"], auc),
            ["auc-es-fairclip"] = EsSum(overall.Values["auc"], auc),
            ["acc-es"] = EsStd(overall.Values["acc"], acc),
            ["acc-es-fairclip"] = EsSum(overall.Values["acc"], acc),
        };
    }
}
