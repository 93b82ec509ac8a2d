using FairMedFM.Engine.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Training;

public enum ErmSplit { Train, Validation, Test }

/// <summary>
/// What the ERM loop trains: a set of parameters (those with requires_grad) and a way to get logits [B, 2] for rows
/// of a split. A head on cached embeddings (linear probe, CLIP prototypes) and a LoRA-adapted backbone with its head
/// are both one of these, so they share one loop, schedule, optimizer, loss and model selection.
/// </summary>
public interface IErmModel
{
    /// <summary>The parameters to optimise, named, in a stable order (the optimizer's groups follow it).</summary>
    IReadOnlyList<(string Name, Parameter Param)> TrainableParameters();

    /// <summary>train() / eval() of every module involved.</summary>
    void SetTraining(bool training);

    /// <summary>
    /// Logits [B, 2] for rows of <paramref name="split"/>: <paramref name="rows"/> is an int64 vector of positions in
    /// that split, or null for the whole split in order. Called with autograd for training batches, under no_grad else.
    /// </summary>
    Tensor Logits(ErmSplit split, Tensor? rows);

    /// <summary>Rows per evaluation forward; a split at most this long is evaluated in one call with rows = null.</summary>
    int EvalBatchSize { get; }
}

/// <summary>The loss curve and the epoch kept by <see cref="ErmTrainer.Fit"/>.</summary>
public sealed record ErmFit(int SelectedEpoch, IReadOnlyList<EpochLog> History, double[] ClassWeights);

/// <summary>
/// FairMedFM's ERM loop (trainers/cls.py) with our corrections: class-weighted cross-entropy (w_c = N/(2·N_c)),
/// the per-epoch warm-up + half-cosine schedule, SGD or AdamW as configured, weight decay on ≥2-D parameters only,
/// and model selection on the validation split (or the last epoch) — never on test. Deterministic for a seed: the
/// batch order comes from System.Random(seed); torch's generator is the caller's to seed before building the model.
/// </summary>
public static class ErmTrainer
{
    /// <summary>Checks the training labels and returns the class weights (N/(2·N_c), or 1 without class balance).</summary>
    public static double[] ClassWeights(IReadOnlyList<int> trainLabels, TrainingConfig cfg)
    {
        if (trainLabels.Count == 0) throw new InvalidOperationException("the training split is empty");
        int n1 = trainLabels.Count(l => l == 1), n0 = trainLabels.Count - n1;
        if (n0 == 0 || n1 == 0) throw new InvalidOperationException($"the training split has a single class ({n0} negatives, {n1} positives); a classifier cannot be trained");
        return cfg.ClassBalance ? new[] { trainLabels.Count / (2.0 * n0), trainLabels.Count / (2.0 * n1) } : new[] { 1.0, 1.0 };
    }

    /// <summary>Trains <paramref name="model"/> and leaves it holding the selected epoch's parameters.</summary>
    public static ErmFit Fit(IErmModel model, int[] trainLabels, int[] valLabels, TrainingConfig cfg, int seed, CancellationToken ct = default)
    {
        cfg.Validate();
        var classWeights = ClassWeights(trainLabels, cfg);

        var trainable = model.TrainableParameters();
        if (trainable.Count == 0) throw new InvalidOperationException("nothing to train: no parameter requires a gradient");
        var device = trainable[0].Param.device;

        using var activity = Telemetry.Source.StartActivity("training");
        activity?.SetTag("fairmedfm.optimizer", cfg.Optimizer);
        activity?.SetTag("fairmedfm.epochs", cfg.Epochs);
        activity?.SetTag("fairmedfm.device", device.type == DeviceType.CUDA ? $"cuda:{device.index}" : "cpu");
        activity?.SetTag("fairmedfm.trainable_parameters", trainable.Sum(p => p.Param.numel()));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long steps = 0;
        using var scope = torch.NewDisposeScope();
        var weightParams = new List<Parameter>();
        var noDecayParams = new List<Parameter>();
        foreach (var (_, p) in trainable)
            (p.dim() >= 2 ? weightParams : noDecayParams).Add(p);

        OptimizerHelper optimizer = cfg.Optimizer switch
        {
            "sgd" => torch.optim.SGD(new[]
            {
                new SGD.ParamGroup(weightParams, new SGD.Options { LearningRate = cfg.Blr, weight_decay = cfg.WeightDecay }),
                new SGD.ParamGroup(noDecayParams, new SGD.Options { LearningRate = cfg.Blr, weight_decay = 0 }),
            }, cfg.Blr),
            "adamw" => torch.optim.AdamW(new[]
            {
                new AdamW.ParamGroup(weightParams, new AdamW.Options { LearningRate = cfg.Blr, weight_decay = cfg.WeightDecay }),
                new AdamW.ParamGroup(noDecayParams, new AdamW.Options { LearningRate = cfg.Blr, weight_decay = 0 }),
            }, cfg.Blr),
            _ => throw new ConfigException($"unknown optimizer {cfg.Optimizer}"),
        };

        var yTrain = OnDevice(torch.tensor(trainLabels.Select(l => (long)l).ToArray()), device);
        var yVal = OnDevice(torch.tensor(valLabels.Select(l => (long)l).ToArray()), device);
        var w = OnDevice(torch.tensor(classWeights.Select(v => (float)v).ToArray()).clone(), device);
        var lossFn = torch.nn.CrossEntropyLoss(weight: w);

        var rng = new Random(seed);
        var order = Enumerable.Range(0, trainLabels.Length).ToArray();
        var history = new List<EpochLog>();
        double bestVal = double.PositiveInfinity;
        int bestEpoch = -1;
        Dictionary<string, Tensor>? best = null;

        for (int epoch = 0; epoch < cfg.Epochs; epoch++)
        {
            ct.ThrowIfCancellationRequested();
            double lr = LrSchedule.At(epoch, cfg.Epochs, cfg.WarmupEpochs, cfg.Blr, cfg.MinLr, cfg.FixedLr);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;

            rng.Shuffle(order);
            model.SetTraining(true);
            double lossSum = 0; int batches = 0;
            for (int start = 0; start < order.Length; start += cfg.BatchSize)
            {
                ct.ThrowIfCancellationRequested();
                using var step = torch.NewDisposeScope();
                int count = Math.Min(cfg.BatchSize, order.Length - start);
                var idx = torch.tensor(order.AsSpan(start, count).ToArray().Select(i => (long)i).ToArray());
                var logits = model.Logits(ErmSplit.Train, idx);
                var loss = lossFn.forward(logits, yTrain.index_select(0, OnDevice(idx, device)));
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                lossSum += loss.item<float>(); batches++;
            }

            steps += batches;
            Telemetry.TrainingSteps.Add(batches);

            model.SetTraining(false);
            double valLoss = ValidationLoss(model, yVal, w, lossFn);
            history.Add(new EpochLog(epoch, lr, lossSum / Math.Max(1, batches), valLoss));
            activity?.AddEvent(new System.Diagnostics.ActivityEvent("epoch", tags: new System.Diagnostics.ActivityTagsCollection
            {
                ["epoch"] = epoch, ["lr"] = lr, ["train_loss"] = lossSum / Math.Max(1, batches), ["val_loss"] = valLoss,
            }));

            if (cfg.Selection == "val-loss" && valLabels.Length > 0 && valLoss < bestVal)
            {
                bestVal = valLoss; bestEpoch = epoch;
                foreach (var t in best?.Values ?? Enumerable.Empty<Tensor>()) t.Dispose();
                best = trainable.ToDictionary(np => np.Name, np => np.Param.detach().clone());
            }
        }

        if (cfg.Selection == "val-loss" && best is not null)
        {
            using var _ = torch.no_grad();
            foreach (var (name, p) in trainable) p.copy_(best[name]);
        }
        else bestEpoch = cfg.Epochs - 1;
        activity?.SetTag("fairmedfm.selected_epoch", bestEpoch);
        Telemetry.TrainingStepRate.Record(steps / Math.Max(1e-9, clock.Elapsed.TotalSeconds));
        model.SetTraining(false);
        return new ErmFit(bestEpoch, history, classWeights);
    }

    /// <summary>
    /// The class-weighted mean cross-entropy on the validation split, as torch's CrossEntropyLoss(weight) reduces it
    /// (Σ w_y·ℓ / Σ w_y); NaN for an empty split. Eval mode is the caller's.
    /// </summary>
    public static double ValidationLoss(IErmModel model, int[] valLabels, double[] classWeights)
    {
        using var scope = torch.NewDisposeScope();
        var w = torch.tensor(classWeights.Select(v => (float)v).ToArray()).clone();
        var yVal = torch.tensor(valLabels.Select(l => (long)l).ToArray());
        var probe = model.TrainableParameters();
        if (probe.Count > 0) { w = OnDevice(w, probe[0].Param.device); yVal = OnDevice(yVal, probe[0].Param.device); }
        return ValidationLoss(model, yVal, w, torch.nn.CrossEntropyLoss(weight: w));
    }

    private static double ValidationLoss(IErmModel model, Tensor yVal, Tensor w, CrossEntropyLoss lossFn)
    {
        long n = yVal.shape[0];
        if (n == 0) return double.NaN;
        using var _ = torch.no_grad();
        using var evalScope = torch.NewDisposeScope();
        if (n <= model.EvalBatchSize) return lossFn.forward(model.Logits(ErmSplit.Validation, null), yVal).item<float>();
        // In batches: Σ w_y·ℓ over all rows / Σ w_y, the same weighted mean as one call.
        using var sumFn = torch.nn.CrossEntropyLoss(weight: w, reduction: nn.Reduction.Sum);
        double num = 0, den = 0;
        for (long start = 0; start < n; start += model.EvalBatchSize)
        {
            using var step = torch.NewDisposeScope();
            long count = Math.Min(model.EvalBatchSize, n - start);
            var rows = torch.arange(start, start + count, dtype: torch.int64);
            var y = yVal.index_select(0, OnDevice(rows, yVal.device));
            num += sumFn.forward(model.Logits(ErmSplit.Validation, rows), y).item<float>();
            den += w.index_select(0, y).sum().item<float>();
        }
        return num / den;
    }

    /// <summary>P(y = 1) = softmax(logits)[:, 1] for every row of a split of <paramref name="count"/> rows, in eval mode.</summary>
    public static float[] Predict(IErmModel model, ErmSplit split, int count)
    {
        if (count == 0) return Array.Empty<float>();
        model.SetTraining(false);
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        if (count <= model.EvalBatchSize) return Probabilities(model.Logits(split, null));
        var result = new float[count];
        for (int start = 0; start < count; start += model.EvalBatchSize)
        {
            int n = Math.Min(model.EvalBatchSize, count - start);
            using var rows = torch.arange(start, start + n, dtype: torch.int64);
            Probabilities(model.Logits(split, rows)).CopyTo(result, start);
        }
        return result;
    }

    private static float[] Probabilities(Tensor logits)
    {
        using var scope = torch.NewDisposeScope();
        var p = torch.nn.functional.softmax(logits, 1).select(1, 1).contiguous();
        if (p.device_type != DeviceType.CPU) p = p.cpu();
        return p.data<float>().ToArray();
    }

    private static Tensor OnDevice(Tensor t, Device device) =>
        t.device_type == device.type && t.device_index == device.index ? t : t.to(device);
}

/// <summary>
/// A head trained on cached embeddings: the features of the three splits live in torch-owned memory (so the same
/// seed gives the same head bit for bit) and the head is the only thing that trains.
/// </summary>
public sealed class EmbeddingHeadModel : IErmModel, IDisposable
{
    private readonly nn.Module<Tensor, Tensor> _head;
    private readonly Tensor _train, _val, _test;

    public EmbeddingHeadModel(nn.Module<Tensor, Tensor> head, SplitData train, SplitData val, SplitData test)
    {
        _head = head;
        _train = Owned(train);
        _val = Owned(val);
        _test = Owned(test);
    }

    public nn.Module<Tensor, Tensor> Head => _head;

    public IReadOnlyList<(string Name, Parameter Param)> TrainableParameters() =>
        _head.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();

    public void SetTraining(bool training)
    {
        if (training) _head.train(); else _head.eval();
    }

    public int EvalBatchSize => int.MaxValue;

    public Tensor Logits(ErmSplit split, Tensor? rows)
    {
        var x = split switch { ErmSplit.Train => _train, ErmSplit.Validation => _val, _ => _test };
        return rows is null ? _head.forward(x) : _head.forward(x.index_select(0, rows));
    }

    /// <summary>
    /// TorchSharp's torch.tensor(float[]) puts the values in a buffer whose alignment changes from run to run, and the CPU
    /// matrix kernels round differently with it (last-bit differences in val losses and probabilities, enough to move the
    /// selected epoch or a threshold). A clone lives in torch's own aligned memory: the same seed gives the same head bit for bit.
    /// </summary>
    private static Tensor Owned(SplitData s)
    {
        using var raw = torch.tensor(s.Features, new long[] { s.Count, s.Dim });
        return raw.clone();
    }

    public void Dispose()
    {
        _train.Dispose();
        _val.Dispose();
        _test.Dispose();
    }
}
