using System.Globalization;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// Small dataset cards over the real NIH sample: a subset of metadata.csv (patients with at most two images, about eight
/// images per sex × age≥60 × label stratum, so every split has both labels and both sexes) and a card whose image_root
/// is the real image folder. The real ResNet then runs on ~65 images instead of 1,000.
/// </summary>
internal static class TinyData
{
    public const string Model = "resnet18-imagenet-cntk";
    public const int PerStratum = 8;

    private static readonly Lazy<string[]> Lines = new(SelectLines);

    /// <summary>Header line followed by the selected data lines, verbatim from the real metadata.csv.</summary>
    public static string[] CsvLines => Lines.Value;

    public static int Rows => CsvLines.Length - 1;

    public static string[] Header => CsvLines[0].Split(',');

    private static string[] SelectLines()
    {
        var all = File.ReadAllLines(TestPaths.NihCsv);
        var header = all[0].Split(',');
        int pid = Array.IndexOf(header, "patient_id"), age = Array.IndexOf(header, "age"),
            sex = Array.IndexOf(header, "sex"), y = Array.IndexOf(header, "label_abnormal");
        if (new[] { pid, age, sex, y }.Any(i => i < 0)) throw new InvalidOperationException("metadata.csv lacks an expected column");
        // The real CSV has no quoted fields (checked here: a quoted comma would shift columns).
        var rows = all.Skip(1).Where(l => l.Length > 0).Select(l => l.Split(',')).ToList();
        if (rows.Any(r => r.Length != header.Length)) throw new InvalidOperationException("metadata.csv has quoted commas; TinyData needs a CSV parser");
        var byPatient = rows.GroupBy(r => r[pid]).Where(g => g.Count() <= 2).OrderBy(g => g.Key, StringComparer.Ordinal);
        var strata = new Dictionary<string, int>();
        var chosen = new List<string[]>();
        foreach (var g in byPatient)
        {
            var first = g.First();
            var key = $"{first[sex]}|{int.Parse(first[age], CultureInfo.InvariantCulture) >= 60}|{first[y]}";
            strata.TryGetValue(key, out var have);
            if (have >= PerStratum) continue;
            strata[key] = have + g.Count();
            chosen.AddRange(g);
        }
        return new[] { all[0] }.Concat(chosen.Select(r => string.Join(',', r))).ToArray();
    }

    /// <summary>The real card's semantics (attributes sex, age60, age_bins, intersection sex_x_age60) over a given CSV and image folder.</summary>
    public static string CardYaml(string name, string csvPath, string imageRoot, string extraYaml = "") => $$"""
        name: {{name}}
        metadata_csv: "{{csvPath}}"
        image_root: "{{imageRoot}}"
        path_column: path
        patient_id_column: patient_id
        label:
          column: label_abnormal
          positive: ["1"]
          negative: ["0"]
        attributes:
          - name: sex
            column: sex
            kind: categorical
            map: {M: "M", F: "F"}
          - name: age60
            column: age
            kind: threshold
            threshold: 60
            label_low: "<60"
            label_high: "60+"
          - name: age_bins
            column: age
            kind: bins
            edges: [50, 65]
            labels: ["<50", "50-64", "65+"]
        intersections:
          - name: sex_x_age60
            of: [sex, age60]
        normalization:
          mean: [0.5056, 0.5056, 0.5056]
          std: [0.252, 0.252, 0.252]
        {{extraYaml}}
        """;

    /// <summary>Writes <paramref name="csvLines"/> and a card over them into <paramref name="dir"/>; returns the card path.</summary>
    /// <param name="extraYaml">Top-level card keys appended as they are (e.g. a zero_shot block).</param>
    public static string WriteCard(string dir, string name = "tiny_nih", IEnumerable<string>? csvLines = null, string? imageRoot = null, string extraYaml = "")
    {
        Directory.CreateDirectory(dir);
        var csv = Path.Combine(dir, name + ".csv");
        File.WriteAllText(csv, string.Join("\n", csvLines ?? CsvLines) + "\n");
        var card = Path.Combine(dir, name + ".yaml");
        File.WriteAllText(card, CardYaml(name, csv, imageRoot ?? TestPaths.NihDir, extraYaml));
        return card;
    }

    /// <summary>The tiny CSV with one column removed.</summary>
    public static IEnumerable<string> WithoutColumn(string column)
    {
        int c = Array.IndexOf(Header, column);
        return CsvLines.Select(l => string.Join(',', l.Split(',').Where((_, i) => i != c)));
    }

    /// <summary>The tiny CSV with data row <paramref name="row"/> (1-based) pointing at another image path.</summary>
    public static IEnumerable<string> WithPath(int row, string path)
    {
        int c = Array.IndexOf(Header, "path");
        return CsvLines.Select((l, i) =>
        {
            if (i != row) return l;
            var f = l.Split(',');
            f[c] = path;
            return string.Join(',', f);
        });
    }

    /// <summary>A grid over the tiny card with fast training settings.</summary>
    public static string GridYaml(string name, string card, string attributes = "[sex, age60]", string seeds = "[0, 1]",
        string models = "[" + Model + "]", string methods = "[erm]", string extra = "") => $"""
        name: {name}
        datasets: ["{card}"]
        models: {models}
        usages: [lp]
        methods: {methods}
        attributes: {attributes}
        seeds: {seeds}
        training:
          epochs: 8
          warmup_epochs: 2
          blr: 0.001
          min_lr: 0.00001
          weight_decay: 0.05
          batch_size: 32
          optimizer: adamw
        split:
          train: 0.6
          validation: 0.2
          test: 0.2
        {extra}
        """;
}
