using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace FairMedFM.Engine.Config;

/// <summary>
/// A sweep: datasets × models × usages × methods × attributes × seeds, plus shared training, metric and split settings.
/// Read from YAML or JSON (JSON is valid YAML); unknown keys are errors, so a typo never silently falls back to a default.
/// </summary>
public sealed class GridSpec
{
    public string Name { get; set; } = "grid";
    public List<string> Datasets { get; set; } = new();
    public List<string> Models { get; set; } = new();
    public List<string> Usages { get; set; } = new() { "lp" };
    public List<string> Methods { get; set; } = new() { "erm" };
    public List<string> Attributes { get; set; } = new();
    public List<int> Seeds { get; set; } = new() { 0 };
    public string Normalization { get; set; } = "model";
    public TrainingConfig Training { get; set; } = new();
    public MetricsConfig Metrics { get; set; } = new();
    public SplitConfig Split { get; set; } = new();

    /// <summary>Optional overrides of the model cards' LoRA settings (rank, alpha, dropout, targets) for <c>lora</c> cells.</summary>
    public LoraConfig? Lora { get; set; }

    /// <summary>Folder the grid was read from; dataset card paths are relative to it.</summary>
    [YamlIgnore] public string BaseDir { get; set; } = Environment.CurrentDirectory;

    /// <summary>lp (linear probe), clip-zs (zero-shot), clip-adapt (trained class prototypes), lora (LoRA + head): see Usages/.</summary>
    public static readonly string[] KnownUsages = { "lp", "clip-zs", "clip-adapt", "lora" };
    public static readonly string[] KnownMethods = { "erm" };
    public static readonly string[] KnownNormalizations = { "model", "dataset" };

    /// <summary>
    /// Why <paramref name="name"/> cannot be the grid's name, or null when it can. The name becomes the output folder
    /// (<c>out/&lt;name&gt;</c>, whose cells/ a rerun cleans), so it must be one plain folder name: letters, digits,
    /// '.', '_' and '-', starting with a letter or digit, at most 100 characters — no path separator, no "..".
    /// </summary>
    public static string? NameProblem(string name)
    {
        if (string.IsNullOrWhiteSpace(name)) return "'name' must not be empty";
        if (name.Contains('/') || name.Contains('\\'))
            return $"'name' '{name}' contains a path separator; the name becomes the output folder out/<name>, so give a plain folder name (letters, digits, '.', '_', '-'; --out chooses another place)";
        if (name.Contains(".."))
            return $"'name' '{name}' contains '..'; the name becomes the output folder out/<name>, so give a plain folder name (letters, digits, '.', '_', '-')";
        if (name.Length > 100) return $"'name' is {name.Length} characters long; at most 100 (it becomes a folder name)";
        if (!char.IsAsciiLetterOrDigit(name[0]) || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            return $"'name' '{name}' is not a safe folder name: use letters, digits, '.', '_' and '-', starting with a letter or digit";
        return null;
    }

    /// <summary>Classification usages (<see cref="KnownUsages"/>) followed by the segmentation usages (seg-center, seg-rand,
    /// seg-rands, seg-bbox: zero-shot prompted segmentation on a <c>task: segmentation</c> card, see Segmentation/).</summary>
    public static IReadOnlyList<string> AllUsages { get; } = KnownUsages.Concat(FairMedFM.Engine.Segmentation.SegUsages.All).ToArray();

    public static GridSpec Load(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"grid file not found: {path}");
        var grid = Parse(File.ReadAllText(path), path);
        grid.BaseDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        grid.Validate(path);
        grid.CheckDatasetIdentity(path);
        return grid;
    }

    /// <summary>
    /// Two entries of <c>datasets</c> that are one file under two spellings, or two cards that share a <c>name:</c>, would be
    /// merged into one matrix row whose spread between datasets reads as a spread over seeds: both are bad input. Only cards
    /// this process can read are compared (a remote silo may see other paths; the matrix refuses such a clash there too).
    /// </summary>
    public void CheckDatasetIdentity(string sourceName = "<grid>")
    {
        var full = Datasets.Select(d => (Entry: d, Path: Path.GetFullPath(Path.Combine(BaseDir, d)))).ToList();
        var twice = full.GroupBy(x => x.Path).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null)
            throw new ConfigException($"{sourceName}: 'datasets' lists the card {twice.Key} more than once (as {string.Join(" and ", twice.Select(x => $"'{x.Entry}'"))})");
        var named = full.Where(x => File.Exists(x.Path)).GroupBy(x => DatasetNames.Of(x.Path)).FirstOrDefault(g => g.Count() > 1);
        if (named is not null)
            throw new ConfigException($"{sourceName}: the dataset cards {string.Join(" and ", named.Select(x => $"'{x.Entry}'"))} {(named.Count() == 2 ? "are both" : "are all")} named '{named.Key}': " +
                                      "results are grouped by dataset name, so give each card its own name: field");
    }

    public static GridSpec Parse(string text, string sourceName = "<grid>")
    {
        // First a pass over the YAML tree against the grid's keys and value kinds, so every mistake is reported in the
        // grid's own words (key, line, column); the deserialiser's messages name .NET types and are never shown.
        GridYamlCheck.Check(text, sourceName);
        var deserializer = new DeserializerBuilder()
            .WithNamingConvention(UnderscoredNamingConvention.Instance)
            .WithCaseInsensitivePropertyMatching()
            .WithDuplicateKeyChecking() // a repeated key must not silently override the first (cards reject them too)
            .Build();
        try
        {
            return deserializer.Deserialize<GridSpec>(text) ?? throw new ConfigException($"{sourceName}: empty grid");
        }
        catch (YamlException e)
        {
            throw new ConfigException($"{sourceName}: line {e.Start.Line}, column {e.Start.Column}: this value cannot be read as a grid setting");
        }
    }

    public void Validate(string sourceName = "<grid>")
    {
        // A key written with no value ("attributes:") deserialises to null: report it like an empty entry, not as a crash.
        void Need(List<string>? xs, string key) { if (xs is null || xs.Count == 0) throw new ConfigException($"{sourceName}: '{key}' must list at least one entry"); }
        Need(Datasets, "datasets"); Need(Models, "models"); Need(Usages, "usages"); Need(Methods, "methods"); Need(Attributes, "attributes");
        if (Seeds is null || Seeds.Count == 0) throw new ConfigException($"{sourceName}: 'seeds' must list at least one seed");
        if (NameProblem(Name ?? "") is { } nameProblem) throw new ConfigException($"{sourceName}: {nameProblem}");
        // A repeated entry would be one cell counted twice: say so rather than silently running fewer cells.
        void Unique<T>(IEnumerable<T> xs, string key)
        {
            var dup = xs.GroupBy(x => x).FirstOrDefault(g => g.Count() > 1);
            if (dup is not null) throw new ConfigException($"{sourceName}: '{key}' lists '{dup.Key}' more than once");
        }
        Unique(Datasets, "datasets"); Unique(Models, "models"); Unique(Usages, "usages"); Unique(Methods, "methods");
        Unique(Attributes, "attributes"); Unique(Seeds, "seeds");
        void NotNull(object? value, string key) { if (value is null) throw new ConfigException($"{sourceName}: '{key}' has no value (give its settings or leave the key out)"); }
        NotNull(Training, "training"); NotNull(Metrics, "metrics"); NotNull(Split, "split");
        foreach (var u in Usages) if (!AllUsages.Contains(u)) throw new ConfigException($"{sourceName}: usage '{u}' is not available (available: {string.Join(", ", AllUsages)})");
        if (!KnownNormalizations.Contains(Normalization)) throw new ConfigException($"{sourceName}: normalization '{Normalization}' is not one of: {string.Join(", ", KnownNormalizations)}");
        try { Training.Validate(); Metrics.Validate(); Split.Validate(); Lora?.Validate(); }
        catch (ConfigException e) { throw new ConfigException($"{sourceName}: {e.Message}"); }
    }

    /// <summary>
    /// Loads every dataset card of the grid once, before any cell runs (what each cell would load first). When no dataset
    /// can be loaded, every cell would fail the same way: that is bad input, thrown as one <see cref="ConfigException"/>
    /// naming each card once (exit code 2). When only some cannot, they are returned (each once) and the sweep runs: the
    /// good datasets' cells finish, the bad ones' cells fail with the same reason (<see cref="Reports.ResultWriter.FailureLines"/>
    /// lists them once per dataset). Loaded datasets stay in the process's memo, so an in-process sweep does not load them again.
    /// </summary>
    public IReadOnlyList<DatasetProblem> CheckDatasets()
    {
        var problems = new List<DatasetProblem>();
        var paths = Datasets.Select(d => Path.GetFullPath(Path.Combine(BaseDir, d))).Distinct().ToList();
        foreach (var path in paths)
        {
            try { FairMedFM.Engine.Segmentation.AnyDataset.Describe(path); }
            catch (Exception e) when (e is FairMedFM.Data.DataException or ConfigException or IOException or UnauthorizedAccessException
                                          or InvalidDataException or ArgumentException or InvalidOperationException)
            {
                problems.Add(new DatasetProblem(path, DatasetNames.Of(path), Cells.CellRunner.Describe(e)));
            }
        }
        if (paths.Count > 0 && problems.Count == paths.Count)
            throw new ConfigException(string.Join("\n", problems.Select(p => p.Message)));
        return problems;
    }

    /// <summary>Every cell of the grid, in a stable order. Unknown methods still become cells: they fail with their reason
    /// while the rest of the sweep runs.</summary>
    public IReadOnlyList<CellSpec> Expand()
    {
        var cells = new List<CellSpec>();
        foreach (var d in Datasets)
        foreach (var m in Models)
        foreach (var u in Usages)
        foreach (var me in Methods)
        foreach (var a in Attributes)
        foreach (var s in Seeds)
            cells.Add(new CellSpec
            {
                Dataset = Path.GetFullPath(Path.Combine(BaseDir, d)),
                Model = m, Usage = u, Method = me, Attribute = a, Seed = s,
                Normalization = Normalization, Training = Training, Metrics = Metrics, Split = Split,
                Lora = u == "lora" ? FairMedFM.Engine.Usages.LoraUsage.CellSettings(m, Lora) : null,
            });
        return cells;
    }
}

/// <summary>A dataset card of a grid that cannot be loaded, with the reason (which names the file, row and column).</summary>
public sealed record DatasetProblem(string Card, string Name, string Error)
{
    public string Message => $"dataset '{Name}' cannot be loaded: {Error}";
}
