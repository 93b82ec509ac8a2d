using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace FairMedFM.Engine.Simulation;

/// <summary>Device figures: the GPU speed-up over the measured CPU throughputs, backward cost, head steps.</summary>
public sealed record GpuCalibration
{
    /// <summary>GPU images/s ÷ the measured 2-core CPU images/s of the same backbone.</summary>
    public double Speedup { get; init; }
    public string? SpeedupSource { get; init; }
    /// <summary>(forward + backward) ÷ forward time of a backbone.</summary>
    public double BackwardFactor { get; init; }
    public string? BackwardFactorSource { get; init; }
    /// <summary>Seconds per minibatch training step of a head (or CLIP prototypes) on cached embeddings.</summary>
    public double HeadStepSeconds { get; init; }
    public string? HeadStepSource { get; init; }
    /// <summary>An evaluation minibatch on cached embeddings as a fraction of a training step.</summary>
    public double HeadEvalFraction { get; init; }
    public string? HeadEvalFractionSource { get; init; }
}

public sealed record TrainingCalibration
{
    public int Epochs { get; init; }
    public int BatchSize { get; init; }
    public string? Source { get; init; }
}

public sealed record SplitCalibration
{
    public double Train { get; init; }
    public double Validation { get; init; }
    public double Test { get; init; }
    public string? Source { get; init; }
}

public sealed record EvaluationCalibration
{
    public int BootstrapResamples { get; init; }
    public double SecondsPerSampleResample { get; init; }
    public string? Source { get; init; }
}

/// <summary>A usage and how it spends device time: <c>head</c> (train a head on cached embeddings), <c>zero-shot</c> (cached
/// embeddings, nothing trained), <c>backbone</c> (train through the backbone every epoch, no embedding cache).</summary>
public sealed record UsageCalibration
{
    public required string Name { get; init; }
    public required string Kind { get; init; }
    /// <summary>Also encodes the class prompts with the text tower.</summary>
    public bool Text { get; init; }
    public string? Source { get; init; }

    public static readonly string[] Kinds = ["head", "zero-shot", "backbone"];
    public bool UsesEmbeddingCache => Kind != "backbone";
}

public sealed record MethodCalibration
{
    public required string Name { get; init; }
    /// <summary>Training time relative to ERM.</summary>
    public double Factor { get; init; } = 1;
    public string? Source { get; init; }
}

public sealed record DatasetCalibration
{
    public required string Name { get; init; }
    /// <summary>Samples (patients' images, eyes, volumes …) over all splits.</summary>
    public long Samples { get; init; }
    /// <summary>Images the backbone sees per sample (slices of a 3-D volume; 1 for 2-D data).</summary>
    public int ImagesPerSample { get; init; } = 1;
    public string? Source { get; init; }
    public long Images => Samples * ImagesPerSample;
}

public sealed record ModelCalibration
{
    public required string Name { get; init; }
    /// <summary>Backbone forward images/s at the model's input size on the 2-core CPU reference.</summary>
    public double CpuImagesPerSecond { get; init; }
    public string? Source { get; init; }
}

/// <summary>
/// The numbers behind <see cref="SweepCostModel"/>, each with its source (measured / derived / estimate). The default set is
/// <c>sweep-costs.json</c> beside this file, embedded in the assembly; <see cref="Load"/> merges a user's file over it.
/// </summary>
public sealed record CostCalibration
{
    public string? About { get; init; }
    public required GpuCalibration Gpu { get; init; }
    public required TrainingCalibration Training { get; init; }
    public required SplitCalibration Splits { get; init; }
    public required EvaluationCalibration Evaluation { get; init; }
    public double CellOverheadSeconds { get; init; }
    public string? CellOverheadSource { get; init; }
    public double TextEmbeddingSeconds { get; init; }
    public string? TextEmbeddingSource { get; init; }
    public required IReadOnlyList<UsageCalibration> Usages { get; init; }
    public required IReadOnlyList<MethodCalibration> Methods { get; init; }
    public required IReadOnlyList<DatasetCalibration> Datasets { get; init; }
    public required IReadOnlyList<ModelCalibration> Models { get; init; }

    public const string ResourceName = "FairMedFM.Engine.Simulation.sweep-costs.json";

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>The embedded default calibration as JSON text.</summary>
    public static string DefaultJson()
    {
        using var s = typeof(CostCalibration).Assembly.GetManifestResourceStream(ResourceName)
                      ?? throw new InvalidOperationException($"embedded resource {ResourceName} is missing from the build");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }

    public static CostCalibration Default() => Parse(DefaultJson(), "the built-in calibration");

    /// <summary>The default calibration with <paramref name="overridePath"/> merged over it (null: the default alone).
    /// Top-level objects merge key by key (e.g. <c>{"gpu": {"speedup": 150}}</c> changes only the speed-up); lists and
    /// scalars replace. Errors name the file and the offending entry.</summary>
    public static CostCalibration Load(string? overridePath)
    {
        if (overridePath is null) return Default();
        if (!File.Exists(overridePath)) throw new FileNotFoundException($"cost file {overridePath} does not exist", overridePath);
        return Merge(DefaultJson(), File.ReadAllText(overridePath), overridePath);
    }

    /// <summary>Merges <paramref name="overrideJson"/> over <paramref name="baseJson"/> (see <see cref="Load"/>).</summary>
    public static CostCalibration Merge(string baseJson, string overrideJson, string overrideName)
    {
        JsonObject b = (JsonObject)JsonNode.Parse(baseJson)!;
        JsonNode? o;
        try { o = JsonNode.Parse(overrideJson, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new InvalidDataException($"{overrideName}: not valid JSON ({e.Message})", e); }
        if (o is not JsonObject over) throw new InvalidDataException($"{overrideName}: the top level must be a JSON object");
        foreach (var (key, value) in over.ToList())
        {
            over.Remove(key);
            if (value is JsonObject vo && b[key] is JsonObject bo)
                foreach (var (k2, v2) in vo.ToList()) { vo.Remove(k2); bo[k2] = v2; }
            else b[key] = value;
        }
        return Parse(b.ToJsonString(), overrideName);
    }

    public static CostCalibration Parse(string json, string name)
    {
        CostCalibration? c;
        try { c = JsonSerializer.Deserialize<CostCalibration>(json, JsonOptions); }
        catch (JsonException e) { throw new InvalidDataException($"{name}: {Explain(e, json)}", e); }
        if (c is null) throw new InvalidDataException($"{name}: empty");
        c.Validate(name);
        return c;
    }

    /// <summary>
    /// A deserialisation error in the user's words: the key (<c>gpu.speedup</c>, <c>usages[0].kind</c>) and the kind of value it
    /// takes, or the unknown key with the keys known there. Never a .NET type name, never a position in the merged text.
    /// </summary>
    private static string Explain(JsonException e, string json)
    {
        var path = e.Path is { Length: > 1 } p && p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : "";
        var unknown = System.Text.RegularExpressions.Regex.Match(e.Message, "JSON property '([^']*)' could not be mapped");
        if (unknown.Success)
        {
            var prop = unknown.Groups[1].Value;
            var parent = path.EndsWith(prop, StringComparison.Ordinal) ? path[..^prop.Length].TrimEnd('.') : path;
            var key = parent.Length == 0 ? prop : parent + "." + prop;
            var known = Navigate(JsonNode.Parse(json), parent) is JsonObject o ? o.Select(kv => kv.Key).Where(k => k != prop && (!k.EndsWith("source", StringComparison.Ordinal) || k == "source")).ToList() : [];
            return $"unknown key '{key}'" + (known.Count > 0 ? $" (known {(parent.Length == 0 ? "top-level keys" : "keys of " + parent)}: {string.Join(", ", known)})" : "") +
                   "; --print-costs shows the whole calibration";
        }
        var missing = System.Text.RegularExpressions.Regex.Match(e.Message, "missing required properties including: (.*?)\\.?$");
        if (missing.Success)
            return $"{(path.Length == 0 ? "the calibration" : path)} lacks the key(s) {missing.Groups[1].Value.TrimEnd('.')}";
        var target = System.Text.RegularExpressions.Regex.Match(e.Message, "could not be converted to ([\\w.`\\[\\]]+)");
        string kind = !target.Success ? "a value of another kind"
            : target.Groups[1].Value.TrimEnd('.') switch
            {
                var t when t.EndsWith("Double", StringComparison.Ordinal) || t.EndsWith("Single", StringComparison.Ordinal) || t.EndsWith("Decimal", StringComparison.Ordinal) => "a number",
                var t when t.EndsWith("Int32", StringComparison.Ordinal) || t.EndsWith("Int64", StringComparison.Ordinal) => "a whole number",
                var t when t.EndsWith("String", StringComparison.Ordinal) => "a text in quotes",
                var t when t.EndsWith("Boolean", StringComparison.Ordinal) => "true or false",
                var t when t.Contains("List", StringComparison.Ordinal) || t.EndsWith("[]", StringComparison.Ordinal) => "a list [ … ]",
                _ => "an object { … }",
            };
        return $"{(path.Length == 0 ? "the calibration" : path)} must be {kind}" + (Navigate(JsonNode.Parse(json), path) is { } got ? $" (got {Shorten(got.ToJsonString())})" : "");
    }

    private static string Shorten(string s) => s.Length <= 40 ? s : s[..37] + "…";

    /// <summary>The node at a dotted path with [i] indexes (as System.Text.Json writes paths); null when it is not there.</summary>
    private static JsonNode? Navigate(JsonNode? node, string path)
    {
        if (path.Length == 0) return node;
        foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(path, @"([^.\[\]]+)|\[(\d+)\]"))
        {
            if (m.Groups[2].Success) node = node is JsonArray a && int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) is var i && i < a.Count ? a[i] : null;
            else node = node is JsonObject o && o.TryGetPropertyValue(m.Groups[1].Value, out var v) ? v : null;
            if (node is null) return null;
        }
        return node;
    }

    /// <summary>Every number positive and finite where it must be, names unique, kinds known; errors name the entry.</summary>
    public void Validate(string name)
    {
        void Positive(double v, string what) { if (!(v > 0) || !double.IsFinite(v)) throw new InvalidDataException($"{name}: {what} must be a finite number > 0 (got {v})"); }
        void NonNegative(double v, string what) { if (!(v >= 0) || !double.IsFinite(v)) throw new InvalidDataException($"{name}: {what} must be a finite number ≥ 0 (got {v})"); }
        Positive(Gpu.Speedup, "gpu.speedup");
        if (Gpu.BackwardFactor < 1 || !double.IsFinite(Gpu.BackwardFactor)) throw new InvalidDataException($"{name}: gpu.backward_factor must be ≥ 1 (got {Gpu.BackwardFactor})");
        NonNegative(Gpu.HeadStepSeconds, "gpu.head_step_seconds");
        NonNegative(Gpu.HeadEvalFraction, "gpu.head_eval_fraction");
        if (Training.Epochs < 1) throw new InvalidDataException($"{name}: training.epochs must be ≥ 1 (got {Training.Epochs})");
        if (Training.BatchSize < 1) throw new InvalidDataException($"{name}: training.batch_size must be ≥ 1 (got {Training.BatchSize})");
        NonNegative(Splits.Train, "splits.train"); NonNegative(Splits.Validation, "splits.validation"); NonNegative(Splits.Test, "splits.test");
        if (Math.Abs(Splits.Train + Splits.Validation + Splits.Test - 1) > 1e-6)
            throw new InvalidDataException($"{name}: splits must add up to 1 (got {Splits.Train} + {Splits.Validation} + {Splits.Test})");
        if (Evaluation.BootstrapResamples < 0) throw new InvalidDataException($"{name}: evaluation.bootstrap_resamples must be ≥ 0");
        NonNegative(Evaluation.SecondsPerSampleResample, "evaluation.seconds_per_sample_resample");
        NonNegative(CellOverheadSeconds, "cell_overhead_seconds");
        NonNegative(TextEmbeddingSeconds, "text_embedding_seconds");
        Unique(Usages.Select(u => u.Name), "usages"); Unique(Methods.Select(m => m.Name), "methods");
        Unique(Datasets.Select(d => d.Name), "datasets"); Unique(Models.Select(m => m.Name), "models");
        foreach (var (u, i) in Usages.Select((u, i) => (u, i)))
            if (!UsageCalibration.Kinds.Contains(u.Kind)) throw new InvalidDataException($"{name}: usages[{i}] ({u.Name}): kind '{u.Kind}' is not one of {string.Join(", ", UsageCalibration.Kinds)}");
        foreach (var (m, i) in Methods.Select((m, i) => (m, i))) Positive(m.Factor, $"methods[{i}] ({m.Name}).factor");
        foreach (var (d, i) in Datasets.Select((d, i) => (d, i)))
        {
            if (d.Samples < 1) throw new InvalidDataException($"{name}: datasets[{i}] ({d.Name}).samples must be ≥ 1 (got {d.Samples})");
            if (d.ImagesPerSample < 1) throw new InvalidDataException($"{name}: datasets[{i}] ({d.Name}).images_per_sample must be ≥ 1 (got {d.ImagesPerSample})");
        }
        foreach (var (m, i) in Models.Select((m, i) => (m, i))) Positive(m.CpuImagesPerSecond, $"models[{i}] ({m.Name}).cpu_images_per_second");

        void Unique(IEnumerable<string> names, string list)
        {
            var l = names.ToList();
            if (l.Count == 0) throw new InvalidDataException($"{name}: {list} is empty");
            if (l.Any(string.IsNullOrWhiteSpace)) throw new InvalidDataException($"{name}: an entry of {list} has no name");
            var dup = l.GroupBy(x => x, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            if (dup is not null) throw new InvalidDataException($"{name}: {list} lists '{dup.Key}' twice");
        }
    }
}
