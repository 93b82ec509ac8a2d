using FairMedFM.Metrics;

namespace FairMedFM.Engine.Config;

/// <summary>
/// Linear-probe / head training settings. Names match the grid keys and FairMedFM's CLI flags
/// (blr, min_lr, warmup_epochs, total epochs, weight_decay, batch_size, optimizer, no_cls_balance).
/// </summary>
public sealed record TrainingConfig
{
    public int Epochs { get; init; } = 30;
    public int WarmupEpochs { get; init; } = 5;
    /// <summary>Peak learning rate (FairMedFM's --blr; it does not scale by batch size).</summary>
    public double Blr { get; init; } = 1e-2;
    public double MinLr { get; init; } = 1e-5;
    public bool FixedLr { get; init; }
    /// <summary>Applied to parameters with ≥ 2 dimensions only (biases are exempt), as timm's param_groups_weight_decay.</summary>
    public double WeightDecay { get; init; } = 1e-4;
    public int BatchSize { get; init; } = 64;
    /// <summary>"sgd" (plain, no momentum, as the reference always uses) or "adamw". The reference ignores this flag; we honour it.</summary>
    public string Optimizer { get; init; } = "adamw";
    /// <summary>Class-weighted cross-entropy with w_c = N / (2·N_c) from the training split.</summary>
    public bool ClassBalance { get; init; } = true;
    /// <summary>"val-loss" (best validation loss, default) or "last" (the reference keeps the last epoch).</summary>
    public string Selection { get; init; } = "val-loss";

    public static readonly string[] Optimizers = { "sgd", "adamw" };
    public static readonly string[] Selections = { "val-loss", "last" };

    public void Validate()
    {
        if (Epochs < 1) throw new ConfigException("training.epochs must be ≥ 1");
        if (WarmupEpochs < 0) throw new ConfigException("training.warmup_epochs must be ≥ 0");
        if (!FixedLr && WarmupEpochs >= Epochs && WarmupEpochs > 0)
            throw new ConfigException($"training.warmup_epochs ({WarmupEpochs}) must be < training.epochs ({Epochs}) for the cosine schedule (the reference divides by zero here)");
        if (Blr <= 0 || MinLr < 0 || MinLr > Blr) throw new ConfigException("training: need 0 ≤ min_lr ≤ blr and blr > 0");
        if (WeightDecay < 0) throw new ConfigException("training.weight_decay must be ≥ 0");
        if (BatchSize < 1) throw new ConfigException("training.batch_size must be ≥ 1");
        if (!Optimizers.Contains(Optimizer)) throw new ConfigException($"training.optimizer '{Optimizer}' is not one of: {string.Join(", ", Optimizers)}");
        if (!Selections.Contains(Selection)) throw new ConfigException($"training.selection '{Selection}' is not one of: {string.Join(", ", Selections)}");
    }
}

/// <summary>How metrics are computed. "default": threshold chosen on validation and frozen for test, fixed [0,1] ECE bins;
/// "reference": FairMedFM's own numbers (best-F1 threshold picked on the test set itself, ECE bins over the data range).</summary>
public sealed record MetricsConfig
{
    public string Mode { get; init; } = "default";
    /// <summary>"best-f1", "youden", "fixed" (0.5) or "fixed-specificity" (at <see cref="Specificity"/>).</summary>
    public string Threshold { get; init; } = "best-f1";
    public int EceBins { get; init; } = 10;
    /// <summary>Specificity target of the "fixed-specificity" threshold rule.</summary>
    public double Specificity { get; init; } = 0.9;
    /// <summary>Bootstrap resamples for confidence intervals of every summary and per-group value (stratified by group ×
    /// label, clustered by patient); 0 disables them. 200 keeps the demo fast; use ≥ 1,000 for publication.</summary>
    public int Bootstrap { get; init; } = 200;
    /// <summary>"percentile" or "bca".</summary>
    public string Ci { get; init; } = "percentile";
    /// <summary>Two-sided confidence level.</summary>
    public double CiLevel { get; init; } = 0.95;

    public static readonly string[] Modes = { "default", "reference" };
    public static readonly string[] Thresholds = { "best-f1", "youden", "fixed", "fixed-specificity" };
    public static readonly string[] Cis = { "percentile", "bca" };

    /// <param name="asFlags">Name each setting by its command-line flag (<c>--ci-level</c>, for <c>fairmedfm evaluate</c>) instead of
    /// its grid key (<c>metrics.ci_level</c>).</param>
    public void Validate(bool asFlags = false)
    {
        string K(string key) => asFlags ? "--" + key.Replace('_', '-') : "metrics." + key;
        if (!Modes.Contains(Mode)) throw new ConfigException($"{K("mode")} '{Mode}' is not one of: {string.Join(", ", Modes)}");
        if (!Thresholds.Contains(Threshold)) throw new ConfigException($"{K("threshold")} '{Threshold}' is not one of: {string.Join(", ", Thresholds)}");
        if (EceBins < 1) throw new ConfigException($"{K("ece_bins")} must be ≥ 1 (got {EceBins})");
        if (!(Specificity > 0 && Specificity <= 1)) throw new ConfigException($"{K("specificity")} must be in (0, 1] (got {Specificity})");
        if (Bootstrap < 0) throw new ConfigException($"{K("bootstrap")} must be ≥ 0 (0 disables intervals; got {Bootstrap})");
        if (!Cis.Contains(Ci)) throw new ConfigException($"{K("ci")} '{Ci}' is not one of: {string.Join(", ", Cis)}");
        if (!(CiLevel > 0 && CiLevel < 1)) throw new ConfigException($"{K("ci_level")} must be in (0, 1) (got {CiLevel})");
    }

    [System.Text.Json.Serialization.JsonIgnore, YamlDotNet.Serialization.YamlIgnore]
    public ThresholdRule Rule => Threshold switch
    {
        "youden" => ThresholdRule.Youden,
        "fixed" => ThresholdRule.Fixed,
        "fixed-specificity" => ThresholdRule.FixedSpecificity,
        _ => ThresholdRule.BestF1,
    };
}

/// <summary>Patient-level split fractions; the split is stratified by label and seeded by the cell's seed.</summary>
public sealed record SplitConfig
{
    public double Train { get; init; } = 0.6;
    public double Validation { get; init; } = 0.2;
    public double Test { get; init; } = 0.2;

    public void Validate()
    {
        if (Train <= 0 || Validation <= 0 || Test <= 0 || Math.Abs(Train + Validation + Test - 1) > 1e-6)
            throw new ConfigException($"split fractions must be positive and sum to 1 (got {Train}/{Validation}/{Test})");
    }
}

/// <summary>
/// One cell of a grid: dataset × model × usage × method × attribute × seed, with every setting that changes its numbers.
/// Its <see cref="CellId"/> is the hash of all of it, so the same cell submitted twice is computed once.
/// </summary>
public sealed record CellSpec
{
    /// <summary>Absolute path of the dataset card.</summary>
    public required string Dataset { get; init; }
    public required string Model { get; init; }
    public required string Usage { get; init; }
    public required string Method { get; init; }
    public required string Attribute { get; init; }
    public required int Seed { get; init; }
    /// <summary>"model" (the FM's own pre-processing) or "dataset" (FairMedFM's per-dataset mean/std).</summary>
    public string Normalization { get; init; } = "model";
    public TrainingConfig Training { get; init; } = new();
    public MetricsConfig Metrics { get; init; } = new();
    public SplitConfig Split { get; init; } = new();

    /// <summary>LoRA settings of a <c>lora</c> cell (resolved against the model card); null for every other usage, and then
    /// left out of the canonical JSON so that the ids of the other cells do not change.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public LoraConfig? Lora { get; init; }

    [System.Text.Json.Serialization.JsonIgnore] public string CellId => Hashing.Of(this)[..16];

    [System.Text.Json.Serialization.JsonIgnore] public string Label => $"{DatasetNames.Of(Dataset)} × {Model} × {Usage} × {Method} × {Attribute} × seed {Seed}";
}

public sealed class ConfigException(string message) : Exception(message);
