using System.Diagnostics;
using System.Text.RegularExpressions;
using FairMedFM.Engine.Reports;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// Opens the report in Debian's headless Chromium: a screenshot must show rendered figures (decoded with SkiaSharp: not
/// uniform, coloured plot areas) and the DOM must hold every figure's title. .ci/run installs chromium; without it the test
/// fails unless FAIRMEDFM_BROWSER_TESTS_OPTIONAL=1 says the browser may be absent.
/// </summary>
public sealed class ReportBrowserTests
{
    private const string Chromium = "/usr/bin/chromium";

    private static bool Available()
    {
        if (File.Exists(Chromium)) return true;
        if (Environment.GetEnvironmentVariable("FAIRMEDFM_BROWSER_TESTS_OPTIONAL") == "1") return false;
        Assert.Fail($"{Chromium} not found: install Debian's chromium package (bash .ci/run does), or set FAIRMEDFM_BROWSER_TESTS_OPTIONAL=1");
        return false;
    }

    /// <summary>Runs headless Chromium with a fresh profile; returns stdout. Killed after 120 s.</summary>
    private static async Task<string> RunChromium(string profile, params string[] args)
    {
        var psi = new ProcessStartInfo(Chromium) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--hide-scrollbars", $"--user-data-dir={profile}" }.Concat(args))
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { p.Kill(entireProcessTree: true); throw new TimeoutException("chromium did not finish in 120 s: " + await stderr); }
        Assert.True(p.ExitCode == 0, $"chromium exited {p.ExitCode}: {await stderr}");
        return await stdout;
    }

    [Fact]
    public async Task Chromium_renders_the_report_figures()
    {
        if (!Available()) return;
        using var tmp = new TempDir();
        var results = ReportFixture.Write(tmp.Sub("results"), withCis: true);
        var o = HtmlReport.Write(new ReportOptions { Results = results, Metrics = new[] { "overall-auc", "auc-gap", "eod" } });
        var url = new Uri(o.Html).AbsoluteUri;

        var shot = tmp.File("shot.png");
        await RunChromium(tmp.Sub("profile-shot"), $"--screenshot={shot}", "--window-size=1400,2000", url);
        Assert.True(File.Exists(shot), "no screenshot written");
        var (w, h, distinct, colourful) = ReportFixture.DecodePng(shot);
        Assert.Equal((1400, 2000), (w, h));
        Assert.True(distinct > 50, $"screenshot has {distinct} distinct colours: the page did not render");
        // The first screen holds heatmaps: large viridis-coloured areas, not just text (sampled every 2nd pixel each way).
        Assert.True(colourful > 20_000, $"screenshot has only {colourful} coloured pixels: the figures did not render");

        var dom = await RunChromium(tmp.Sub("profile-dom"), "--dump-dom", url);
        Assert.Equal(o.Figures.Count, Regex.Matches(dom, "<svg[ >]").Count);
        foreach (var f in o.Figures)
        {
            Assert.Contains($"data-title=\"{f.Title}\"", dom);
            // The title is drawn inside the figure as SVG text, not only in the caption.
            Assert.Contains(f.Title, ReportFixture.SvgTexts(dom));
        }
        Assert.Contains("Per-group results · chest_a × fm-alpha · sex · seed 0", dom);
        Assert.Contains("undefined (TooFewGroups)", dom);
    }
}
