using System.Text.RegularExpressions;
using ScottPlot;

namespace FairMedFM.Engine.Reports;

/// <summary>One figure of the report: a ScottPlot plot with its size, title and caption; renders to SVG and PNG.</summary>
public sealed class ReportFigure
{
    public required string Id { get; init; }
    /// <summary>"heatmap", "tradeoff" or "groups".</summary>
    public required string Kind { get; init; }
    public required string Title { get; init; }
    public required string Caption { get; init; }
    public required Plot Plot { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }

    public string Svg() => Plot.GetSvgXml(Width, Height);
    public byte[] Png() => Plot.GetImageBytes(Width, Height, ImageFormat.Png);
}

/// <summary>Builds the report's figures with ScottPlot 5: datasets × models heatmaps, utility–fairness scatter, per-group bars.</summary>
public static partial class ReportFigures
{
    /// <summary>The same font everywhere (DejaVu Sans is on every Debian machine; others fall back to ScottPlot's default).</summary>
    private static readonly string? FontName = new[] { "DejaVu Sans", "Liberation Sans", "Arial" }
        .FirstOrDefault(f => SkiaSharp.SKFontManager.Default.MatchFamily(f) is { } t && t.FamilyName == f);

    private static readonly Color Undefined = Color.FromHex("#d0d0d0");
    private static readonly IPalette Palette = new ScottPlot.Palettes.Category10();

    private static Plot NewPlot()
    {
        var p = new Plot();
        if (FontName is not null) p.Font.Set(FontName);
        p.FigureBackground.Color = Colors.White;
        return p;
    }

    /// <summary>The colour map of a metric: viridis, reversed for lower-is-better metrics, so brighter is always better.</summary>
    public static IColormap ColormapFor(MetricInfo m) =>
        m.Direction == MetricDirection.LowerIsBetter ? new ScottPlot.Colormaps.Reversed(new ScottPlot.Colormaps.Viridis()) : new ScottPlot.Colormaps.Viridis();

    public static string HeatmapTitle(ReportMatrix m) =>
        $"{m.Metric.Label} · {m.Slice.Attribute} · {m.Metric.DirectionText}";

    public static ReportFigure Heatmap(ReportMatrix m)
    {
        var plot = NewPlot();
        int rows = m.Datasets.Count, cols = m.Models.Count;
        var defined = m.Cells.Values.Where(c => c.Stats.Mean is not null).Select(c => c.Stats.Mean!.Value).ToList();
        double lo = defined.Count > 0 ? defined.Min() : 0, hi = defined.Count > 0 ? defined.Max() : 1;
        if (hi - lo < 1e-9)
        {
            // One value (or all equal): a small band around it, kept inside [0, 1] for the metrics that live there.
            bool unit = lo >= 0 && hi <= 1 && !m.Metric.Key.Contains("bce", StringComparison.Ordinal);
            (lo, hi) = (lo - 0.05, hi + 0.05);
            if (unit && lo < 0) (lo, hi) = (0, 0.1);
            if (unit && hi > 1) (lo, hi) = (0.9, 1);
        }
        var cmap = ColormapFor(m.Metric);

        for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
        {
            double y = rows - 1 - r; // first dataset on top
            var rect = plot.Add.Rectangle(c - 0.5, c + 0.5, y - 0.5, y + 0.5);
            rect.LineColor = Colors.White;
            rect.LineWidth = 2;
            string text;
            Color fill;
            if (!m.Cells.TryGetValue((m.Datasets[r], m.Models[c]), out var cell)) { fill = Colors.White; text = "not run"; }
            else if (cell.Stats.Mean is { } v)
            {
                fill = cmap.GetColor(Math.Clamp((v - lo) / (hi - lo), 0, 1));
                // Two short lines (value ± sd, then the interval) so the text fits the cell; the interval is shown once.
                text = v.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture)
                       + (cell.Stats.Std is { } sd && cell.Seeds.Count > 1 ? " ± " + sd.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture) : "");
                if (cell.Ci is { } ci) text += "\n" + (cell.Seeds.Count > 1 ? "mean CI " : "CI ") + ci.Format();
            }
            else { fill = Undefined; text = Wrap(cell.ValueText, 18); }
            rect.FillColor = fill;
            var label = plot.Add.Text(text, c, y);
            label.Alignment = Alignment.MiddleCenter;
            label.LabelStyle.FontSize = cols > 2 ? 11 : 12;
            label.LabelStyle.ForeColor = Luminance(fill) > 0.45 ? Colors.Black : Colors.White;
            if (FontName is not null) label.LabelStyle.FontName = FontName;
        }

        var bar = plot.Add.ColorBar(new ColorScale(cmap, lo, hi));
        bar.Label = m.Metric.Direction == MetricDirection.Unknown ? m.Metric.Label : "brighter = better";
        bar.LabelStyle.FontSize = 12;
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(Enumerable.Range(0, cols).Select(i => (double)i).ToArray(), m.Models.ToArray());
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(Enumerable.Range(0, rows).Select(i => (double)(rows - 1 - i)).ToArray(), m.Datasets.ToArray());
        plot.Axes.Bottom.MajorTickStyle.Length = 0;
        plot.Axes.Left.MajorTickStyle.Length = 0;
        AxisLabels(plot, "model", "dataset");
        plot.Axes.SetLimits(-0.5, cols - 0.5, -0.5, rows - 0.5);
        plot.HideGrid();
        var title = HeatmapTitle(m);
        plot.Title(title, 13);

        var ciNote = m.Cells.Values.Any(c => c.Ci is not null)
            ? "Brackets: 95% bootstrap CI of each seed, averaged over the seeds that have one."
            : "No confidence intervals in these results (no CI).";
        return new ReportFigure
        {
            Id = ReportText.Slug($"heatmap-{m.Slice.Slug}-{m.Metric.Key}"), Kind = "heatmap", Title = title,
            Caption = $"{m.Metric.Label} ({m.Metric.Meaning}) for {m.Slice.Label}: datasets × models, mean ± sample sd over seeds. {ciNote} " +
                      "Grey cells are undefined (reason in the cell), never 0.",
            Plot = plot, Width = Math.Max(420, 170 + 155 * cols), Height = Math.Max(260, 140 + 70 * rows),
        };
    }

    public static string TradeOffTitle(TradeOff t) => $"Utility–fairness trade-off · {t.Slice.Label}";

    public static ReportFigure TradeOffPlot(TradeOff t)
    {
        var plot = NewPlot();
        var models = t.Points.Select(p => p.Model).Distinct().ToList();
        for (int i = 0; i < models.Count; i++)
        {
            var pts = t.Points.Where(p => p.Model == models[i] && p.Defined).ToList();
            if (pts.Count == 0) continue;
            var color = Palette.GetColor(i);
            var xs = pts.Select(p => p.X.Stats.Mean!.Value).ToArray();
            var ys = pts.Select(p => p.Y.Stats.Mean!.Value).ToArray();
            if (pts.Any(p => p.X.Stats.Std is not null || p.Y.Stats.Std is not null))
            {
                var xe = pts.Select(p => p.X.Stats.Std ?? 0).ToArray();
                var ye = pts.Select(p => p.Y.Stats.Std ?? 0).ToArray();
                var eb = plot.Add.ErrorBar(xs, ys, ye);
                eb.XErrorPositive = xe; eb.XErrorNegative = xe;
                eb.Color = color.WithAlpha(0.6);
            }
            var sc = plot.Add.ScatterPoints(xs, ys, color);
            sc.MarkerSize = 11;
            sc.MarkerShape = MarkerShape.FilledCircle;
            sc.LegendText = models[i];
            foreach (var p in pts)
            {
                var label = plot.Add.Text(p.Dataset, p.X.Stats.Mean!.Value, p.Y.Stats.Mean!.Value);
                label.Alignment = Alignment.LowerLeft;
                label.OffsetX = 7; label.OffsetY = -5;
                label.LabelStyle.FontSize = 11;
                label.LabelStyle.ForeColor = color.Darken(0.3);
                if (FontName is not null) label.LabelStyle.FontName = FontName;
            }
        }
        AxisLabels(plot, $"{t.XMetric.Label} (utility, {t.XMetric.DirectionText})", $"{t.YMetric.Label} (fairness, {t.YMetric.DirectionText})");
        plot.Axes.Margins(0.25, 0.25);
        if (models.Count > 0) plot.ShowLegend(Edge.Right); // beside the data, so it never hides a point
        var title = TradeOffTitle(t);
        plot.Title(title, 13);

        var better = (t.XMetric.Direction, t.YMetric.Direction) switch
        {
            (MetricDirection.HigherIsBetter, MetricDirection.LowerIsBetter) => "Better is to the right and down.",
            (MetricDirection.HigherIsBetter, MetricDirection.HigherIsBetter) => "Better is to the right and up.",
            _ => "",
        };
        var missing = t.Points.Where(p => !p.Defined).Select(p => $"{p.Dataset} × {p.Model} ({(p.X.Stats.Mean is null ? p.X.ValueText : p.Y.ValueText)})").ToList();
        return new ReportFigure
        {
            Id = ReportText.Slug($"tradeoff-{t.Slice.Slug}-{t.YMetric.Key}"), Kind = "tradeoff", Title = title,
            Caption = $"x: {t.XMetric.Label} ({t.XMetric.Meaning}); y: {t.YMetric.Label} ({t.YMetric.Meaning}); one point per dataset × model " +
                      $"(colour = model), mean over seeds, whiskers ± sample sd over seeds. {better}" +
                      (missing.Count > 0 ? " Not plotted (undefined): " + string.Join("; ", missing) + "." : ""),
            Plot = plot, Width = 860, Height = 520,
        };
    }

    public static string GroupBarsTitle(GroupBars b) =>
        $"Per-group results · {b.Dataset} × {b.Cell.Spec.Model} · {b.Slice.Attribute} · seed {b.Cell.Spec.Seed}";

    public static ReportFigure GroupBarsPlot(GroupBars b)
    {
        var plot = NewPlot();
        var metrics = b.Metrics;
        int k = metrics.Count;
        double width = 0.8 / k;
        var undefinedNotes = new List<string>();
        bool anyCi = false;
        for (int j = 0; j < k; j++)
        {
            var color = Palette.GetColor(j);
            var bars = new List<Bar>();
            var (ex, ey, eLo, eHi) = (new List<double>(), new List<double>(), new List<double>(), new List<double>());
            for (int g = 0; g < b.Rows.Count; g++)
            {
                var (_, entry, ci) = b.Rows[g].Values[j];
                double x = g + (j - (k - 1) / 2.0) * width;
                if (entry?.Value is { } v)
                {
                    bars.Add(new Bar { Position = x, Value = v, Size = width * 0.92, FillColor = color, LineColor = color.Darken(0.3), LineWidth = 0.5f });
                    if (ci is not null) { ex.Add(x); ey.Add(v); eLo.Add(Math.Max(0, v - ci.Lower)); eHi.Add(Math.Max(0, ci.Upper - v)); anyCi = true; }
                }
                else
                {
                    var reason = entry is null ? "not computed" : $"undefined ({entry.Undefined})";
                    undefinedNotes.Add($"{b.Rows[g].Group} {metrics[j].Label}: {reason}");
                    var t = plot.Add.Text("undef.", x, 0.01);
                    t.Alignment = Alignment.LowerCenter;
                    t.LabelStyle.Rotation = -90;
                    t.LabelStyle.FontSize = 10;
                    t.LabelStyle.ForeColor = Colors.Gray;
                }
            }
            if (bars.Count > 0)
            {
                var bp = plot.Add.Bars(bars);
                bp.LegendText = metrics[j].Label;
            }
            if (ex.Count > 0)
            {
                var eb = plot.Add.ErrorBar(ex, ey, eHi);
                eb.YErrorNegative = eLo;
                eb.YErrorPositive = eHi;
                eb.Color = Colors.Black;
                eb.CapSize = 4;
            }
        }
        var ticks = b.Rows.Select((r, i) => (Pos: (double)i, Label: $"{r.Group}\nn={r.N} (+{r.Positives}/−{r.Negatives})")).ToList();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.Select(t => t.Pos).ToArray(), ticks.Select(t => t.Label).ToArray());
        plot.Axes.Bottom.MajorTickStyle.Length = 0;
        AxisLabels(plot, null, "value");
        plot.Axes.SetLimits(-0.6, b.Rows.Count - 0.4, 0, 1.12);
        plot.ShowLegend(Edge.Right);
        var title = GroupBarsTitle(b);
        plot.Title(title, 13);
        var threshold = b.Segmentation ? "" : b.Cell.Threshold is { } th ? $" ACC/TPR/TNR at threshold {ReportText.F(th, "0.###")} (chosen on {b.Cell.ThresholdChosenOn ?? "?"})." : "";
        return new ReportFigure
        {
            Id = ReportText.Slug($"groups-{b.Slice.Slug}-{b.Cell.CellId}"), Kind = "groups", Title = title,
            Caption = (b.Segmentation
                          ? $"Cell {b.Cell.CellId} ({b.Cell.Spec.Label}): mean Dice and IoU per group over the scored samples; n = samples (+scored/−skipped). "
                          : $"Cell {b.Cell.CellId} ({b.Cell.Spec.Label}): test-set AUC, ACC, TPR and TNR per group; n = test samples (+positives/−negatives).{threshold} ") +
                      (anyCi ? "Whiskers: 95% bootstrap CI." : "No confidence intervals in these results (no CI).") +
                      (undefinedNotes.Count > 0 ? " Undefined: " + string.Join("; ", undefinedNotes) + "." : ""),
            Plot = plot, Width = Math.Max(700, 260 + 150 * b.Rows.Count), Height = 460,
        };
    }

    private static void AxisLabels(Plot plot, string? x, string? y)
    {
        if (x is not null) { plot.Axes.Bottom.Label.Text = x; plot.Axes.Bottom.Label.FontSize = 13; }
        if (y is not null) { plot.Axes.Left.Label.Text = y; plot.Axes.Left.Label.FontSize = 13; }
    }

    private static double Luminance(Color c) => (0.299 * c.R + 0.587 * c.G + 0.114 * c.B) / 255.0;

    private static string Wrap(string s, int width)
    {
        // "undefined (reason; reason)" on two lines so it fits a cell.
        if (s.Length <= width) return s;
        var i = s.IndexOf(" (", StringComparison.Ordinal);
        return i > 0 ? s[..i] + "\n" + s[(i + 1)..] : s;
    }

    /// <summary>Makes a ScottPlot SVG safe to inline several times in one HTML page: ids prefixed per figure, no XML prolog,
    /// SVG 2 <c>href</c> instead of <c>xlink:href</c>, no namespace declarations (HTML's parser supplies them), scalable.</summary>
    public static string InlineSvg(string svg, string idPrefix, string title)
    {
        var s = XmlProlog().Replace(svg, "");
        s = IdAttr().Replace(s, m => $"id=\"{idPrefix}-{m.Groups[1].Value}\"");
        s = UrlRef().Replace(s, m => $"url(#{idPrefix}-{m.Groups[1].Value})");
        s = HrefRef().Replace(s, m => $"href=\"#{idPrefix}-{m.Groups[1].Value}\"");
        s = s.Replace("xlink:href=", "href=");
        s = XmlnsAttr().Replace(s, "");
        var open = SvgOpen().Match(s);
        if (open.Success)
        {
            var w = WidthAttr().Match(open.Value); var h = HeightAttr().Match(open.Value);
            var viewBox = w.Success && h.Success ? $" viewBox=\"0 0 {w.Groups[1].Value} {h.Groups[1].Value}\"" : "";
            var replaced = open.Value.TrimEnd('>') + viewBox + $" role=\"img\" aria-label=\"{HtmlReport.H(title)}\">" +
                           $"<title>{HtmlReport.H(title)}</title>";
            s = s[..open.Index] + replaced + s[(open.Index + open.Length)..];
        }
        return s.Trim();
    }

    [GeneratedRegex(@"<\?xml[^>]*\?>\s*")] private static partial Regex XmlProlog();
    [GeneratedRegex("id=\"([^\"]+)\"")] private static partial Regex IdAttr();
    [GeneratedRegex(@"url\(#([^)]+)\)")] private static partial Regex UrlRef();
    [GeneratedRegex("href=\"#([^\"]+)\"")] private static partial Regex HrefRef();
    [GeneratedRegex("\\s+xmlns(:\\w+)?=\"[^\"]*\"")] private static partial Regex XmlnsAttr();
    [GeneratedRegex("<svg[^>]*>")] private static partial Regex SvgOpen();
    [GeneratedRegex("width=\"([0-9.]+)\"")] private static partial Regex WidthAttr();
    [GeneratedRegex("height=\"([0-9.]+)\"")] private static partial Regex HeightAttr();

    /// <summary>The colour axis of a heatmap drawn as rectangles (ScottPlot's colour bar reads the map and the range from it).</summary>
    private sealed class ColorScale(IColormap colormap, double min, double max) : IHasColorAxis
    {
        public IColormap Colormap { get; set; } = colormap;
        public ScottPlot.Range GetRange() => new(min, max);
    }
}
