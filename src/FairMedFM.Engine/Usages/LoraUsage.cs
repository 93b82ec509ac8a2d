using System.Collections.Concurrent;
using FairMedFM.Data;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Training;
using FairMedFM.Models;
using FairMedFM.Models.Peft;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Usages;

/// <summary>A finished LoRA training: its predictions, the adapters (merged) and the head. Disposing frees the head only:
/// the adapters belong to the encoder's backbone.</summary>
public sealed class LoraRun(TrainedProbe probe, IReadOnlyList<(string Name, LoraLinear Adapter)> adapters, Linear head) : IDisposable
{
    public TrainedProbe Probe { get; } = probe;
    public IReadOnlyList<(string Name, LoraLinear Adapter)> Adapters { get; } = adapters;
    public Linear Head { get; } = head;
    public void Dispose() => Head.Dispose();
}

/// <summary>
/// The <c>lora</c> usage (FairMedFM's intended PEFT setup, non-functional in the reference, B18): LoRA on the card's
/// lora_targets (rank, alpha, dropout from the card unless the grid's <c>lora:</c> block overrides them) plus a
/// Linear(feat_dim, 2) head; everything else frozen. The backbone runs on every step (no embedding cache, by
/// nature) on the dataset's images, pre-processed as for the embeddings; the ERM loop, schedule, optimizer, class
/// weights and model selection are the linear probe's. Validation and test are scored with merged weights.
/// </summary>
public static class LoraUsage
{
    /// <summary>
    /// What a grid's <c>lora</c> cell stores: the grid block resolved against the card when the model is known and
    /// LoRA-eligible, else the block as given (the cell then fails at run time with the reason).
    /// </summary>
    public static LoraConfig? CellSettings(string modelId, LoraConfig? grid)
    {
        var card = ModelCatalog.TryCard(modelId);
        if (card is null || LoraSettings.FromCard(card) is null) return grid;
        try { return LoraConfig.From(LoraConfig.Resolve(card, grid)); }
        catch (ConfigException) { return grid; }
    }

    /// <summary>The cell's effective settings; throws "not LoRA-eligible" for a card without lora_targets.</summary>
    public static LoraSettings Settings(CellSpec spec, Workspace? ws = null) => LoraConfig.Resolve(ModelCatalog.Card(spec.Model, ws), spec.Lora);

    /// <summary>Runs a lora cell's training on the dataset's images; returns P(y=1) for validation and test (merged weights).</summary>
    public static TrainedProbe Train(Workspace ws, CellSpec spec, LoadedDataset data, SplitData train, SplitData val, SplitData test,
        CancellationToken ct = default)
    {
        var card = ModelCatalog.Card(spec.Model, ws);
        var settings = Settings(spec, ws);
        var images = new ImageBatches(data, ModelCatalog.Preprocessing(card), ModelCatalog.Normalization(card, data.Card, spec.Normalization));
        using var encoder = ModelCatalog.CreateEncoder(spec.Model, ws);
        if (encoder is not IAdaptableImageEncoder adaptable)
            throw new ConfigException($"model '{spec.Model}' is not LoRA-eligible: its encoder ({encoder.GetType().Name}) exposes no adaptable backbone");
        using var run = Run(adaptable, settings, train, val, test, images.Load, spec.Training, spec.Seed, ct);
        return run.Probe;
    }

    /// <summary>
    /// LoRA-adapts <paramref name="encoder"/>'s backbone in place and trains adapters + head on the rows of the splits
    /// (<see cref="SplitData.Indices"/> are sample indices handed to <paramref name="loadImages"/>, which returns the
    /// model-ready [B,3,H,W] batch). A is drawn from a generator seeded from <paramref name="seed"/>, the head from
    /// another; dropout (if any) uses torch's global generator, seeded here.
    /// </summary>
    public static LoraRun Run(IAdaptableImageEncoder encoder, LoraSettings settings, SplitData train, SplitData val, SplitData test,
        Func<int[], Tensor> loadImages, TrainingConfig cfg, int seed, CancellationToken ct = default)
    {
        cfg.Validate();
        ErmTrainer.ClassWeights(train.Labels, cfg);
        var adapters = LoraInjector.Apply(encoder.Backbone, settings, LoraSeed(seed));
        var device = encoder.Backbone.parameters().First().device;
        var head = SeededInit.Linear(encoder.FeatureDim, 2, seed);
        try
        {
            if (device.type != DeviceType.CPU) head.to(device);
            var model = new LoraModel(encoder, head, train, val, test, loadImages, cfg.BatchSize);
            if (settings.Dropout > 0) torch.manual_seed(seed); // dropout masks come from the global generator
            var fit = ErmTrainer.Fit(model, train.Labels, val.Labels, cfg, seed, ct);
            LoraInjector.Merge(encoder.Backbone);
            var probe = new TrainedProbe(ErmTrainer.Predict(model, ErmSplit.Validation, val.Count),
                                         ErmTrainer.Predict(model, ErmSplit.Test, test.Count), fit.SelectedEpoch, fit.History, fit.ClassWeights);
            return new LoraRun(probe, adapters, head);
        }
        catch
        {
            head.Dispose();
            throw;
        }
    }

    /// <summary>A's generator seed: derived from the cell seed but distinct from the head's.</summary>
    public static long LoraSeed(int seed) => unchecked(seed + 0x4C6F5241L); // "LoRA"

    /// <summary>Backbone with adapters, then the head; trainable = the adapters' A/B and the head.</summary>
    private sealed class LoraModel(IAdaptableImageEncoder encoder, Linear head, SplitData train, SplitData val, SplitData test,
        Func<int[], Tensor> loadImages, int batchSize) : IErmModel
    {
        public IReadOnlyList<(string Name, Parameter Param)> TrainableParameters() =>
            encoder.Backbone.named_parameters().Where(p => p.parameter.requires_grad).Select(p => ("backbone." + p.name, p.parameter))
                .Concat(head.named_parameters().Select(p => ("head." + p.name, p.parameter))).ToList();

        public void SetTraining(bool training)
        {
            if (training) { encoder.Backbone.train(); head.train(); }
            else { encoder.Backbone.eval(); head.eval(); }
        }

        public int EvalBatchSize => batchSize;

        public Tensor Logits(ErmSplit split, Tensor? rows)
        {
            var s = split switch { ErmSplit.Train => train, ErmSplit.Validation => val, _ => test };
            int[] samples = rows is null ? s.Indices : rows.data<long>().ToArray().Select(r => s.Indices[r]).ToArray();
            using var scope = NewDisposeScope();
            var x = loadImages(samples);
            return head.forward(encoder.ForwardFeatures(x)).MoveToOuterDisposeScope();
        }
    }
}

/// <summary>
/// Model-ready image batches of a dataset (decode → resize → crop → normalise, as for the embeddings), kept in memory
/// up to a budget so that later epochs do not decode again.
/// </summary>
public sealed class ImageBatches(LoadedDataset data, PreprocessingSpec preprocessing, INormalization normalization, long budgetBytes = 1L << 30)
{
    private readonly ConcurrentDictionary<int, float[]> _cache = new();
    private long _cachedBytes;

    public Tensor Load(int[] samples)
    {
        var chw = new float[samples.Length][];
        Parallel.For(0, samples.Length, j => chw[j] = Get(samples[j]));
        int per = 3 * preprocessing.Crop * preprocessing.Crop;
        var flat = new float[samples.Length * per];
        for (int j = 0; j < samples.Length; j++) chw[j].CopyTo(flat, j * per);
        using var raw = torch.tensor(flat, new long[] { samples.Length, 3, preprocessing.Crop, preprocessing.Crop });
        return raw.clone(); // torch-owned, aligned memory: the same images give the same numbers on every run
    }

    private float[] Get(int sample)
    {
        if (_cache.TryGetValue(sample, out var hit)) return hit;
        var v = ImagePipeline.Run(data.Samples[sample].ImagePath, preprocessing, normalization);
        if (Interlocked.Add(ref _cachedBytes, v.Length * sizeof(float)) <= budgetBytes) _cache.TryAdd(sample, v);
        return v;
    }
}
