using FairMedFM.Engine.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Training;

/// <summary>Features and labels of one split, taken from the cached embedding matrix.</summary>
public sealed record SplitData(int[] Indices, float[] Features, int Dim, int[] Labels)
{
    public int Count => Indices.Length;

    public static SplitData From(Embeddings.EmbeddingMatrix emb, int[] indices, IReadOnlyList<int> allLabels)
    {
        var f = new float[indices.Length * emb.Dim];
        var y = new int[indices.Length];
        for (int i = 0; i < indices.Length; i++)
        {
            emb.Row(indices[i]).CopyTo(f.AsSpan(i * emb.Dim, emb.Dim));
            y[i] = allLabels[indices[i]];
        }
        return new SplitData(indices, f, emb.Dim, y);
    }
}

public sealed record EpochLog(int Epoch, double Lr, double TrainLoss, double ValLoss);

/// <summary>Outcome of training a head: P(y=1) for validation and test, the epoch kept and the loss curve.</summary>
public sealed record TrainedProbe(float[] ValProbs, float[] TestProbs, int SelectedEpoch, IReadOnlyList<EpochLog> History, double[] ClassWeights);

/// <summary>
/// ERM linear probe on frozen embeddings: Linear(d, 2) with PyTorch's default init, class-weighted cross-entropy
/// (w_c = N/(2·N_c), FairMedFM's weights), FairMedFM's warm-up + half-cosine schedule, SGD or AdamW as the user chose,
/// weight decay on ≥2-D parameters only, and model selection on the validation split — never on test.
/// Seeded and deterministic: the same seed gives the same head bit for bit.
/// </summary>
public static class LinearProbeTrainer
{
    public static TrainedProbe Train(SplitData train, SplitData val, SplitData test, TrainingConfig cfg, int seed, CancellationToken ct = default)
    {
        cfg.Validate();
        if (train.Count == 0) throw new InvalidOperationException("the training split is empty");
        int n1 = train.Labels.Count(l => l == 1), n0 = train.Count - n1;
        if (n0 == 0 || n1 == 0) throw new InvalidOperationException($"the training split has a single class ({n0} negatives, {n1} positives); a classifier cannot be trained");
        var classWeights = cfg.ClassBalance ? new[] { train.Count / (2.0 * n0), train.Count / (2.0 * n1) } : new[] { 1.0, 1.0 };

        using var activity = Telemetry.Source.StartActivity("training");
        activity?.SetTag("fairmedfm.optimizer", cfg.Optimizer);
        activity?.SetTag("fairmedfm.epochs", cfg.Epochs);
        activity?.SetTag("fairmedfm.device", "cpu");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long steps = 0;
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(seed);
        var head = torch.nn.Linear(train.Dim, 2);
        var weightParams = new List<Parameter>();
        var noDecayParams = new List<Parameter>();
        foreach (var (_, p) in head.named_parameters())
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

        var xTrain = Owned(train.Features, train.Count, train.Dim);
        var yTrain = torch.tensor(train.Labels.Select(l => (long)l).ToArray());
        var xVal = Owned(val.Features, val.Count, val.Dim);
        var yVal = torch.tensor(val.Labels.Select(l => (long)l).ToArray());
        var w = torch.tensor(classWeights.Select(v => (float)v).ToArray()).clone();
        var lossFn = torch.nn.CrossEntropyLoss(weight: w);

        var rng = new Random(seed);
        var order = Enumerable.Range(0, train.Count).ToArray();
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
            head.train();
            double lossSum = 0; int batches = 0;
            for (int start = 0; start < order.Length; start += cfg.BatchSize)
            {
                using var step = torch.NewDisposeScope();
                int count = Math.Min(cfg.BatchSize, order.Length - start);
                var idx = torch.tensor(order.AsSpan(start, count).ToArray().Select(i => (long)i).ToArray());
                var logits = head.forward(xTrain.index_select(0, idx));
                var loss = lossFn.forward(logits, yTrain.index_select(0, idx));
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                lossSum += loss.item<float>(); batches++;
            }
            steps += batches;
            Telemetry.TrainingSteps.Add(batches);

            double valLoss;
            head.eval();
            using (torch.no_grad())
            using (var evalScope = torch.NewDisposeScope())
                valLoss = val.Count > 0 ? lossFn.forward(head.forward(xVal), yVal).item<float>() : double.NaN;
            history.Add(new EpochLog(epoch, lr, lossSum / Math.Max(1, batches), valLoss));
            activity?.AddEvent(new System.Diagnostics.ActivityEvent("epoch", tags: new System.Diagnostics.ActivityTagsCollection
            {
                ["epoch"] = epoch, ["lr"] = lr, ["train_loss"] = lossSum / Math.Max(1, batches), ["val_loss"] = valLoss,
            }));

            if (cfg.Selection == "val-loss" && val.Count > 0 && valLoss < bestVal)
            {
                bestVal = valLoss; bestEpoch = epoch;
                foreach (var t in best?.Values ?? Enumerable.Empty<Tensor>()) t.Dispose();
                best = head.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
            }
        }

        if (cfg.Selection == "val-loss" && best is not null) head.load_state_dict(best);
        else bestEpoch = cfg.Epochs - 1;
        activity?.SetTag("fairmedfm.selected_epoch", bestEpoch);
        Telemetry.TrainingStepRate.Record(steps / Math.Max(1e-9, clock.Elapsed.TotalSeconds));

        head.eval();
        using (torch.no_grad())
        {
            return new TrainedProbe(Predict(head, val), Predict(head, test), bestEpoch, history, classWeights);
        }
    }

    /// <summary>
    /// TorchSharp's torch.tensor(float[]) puts the values in a buffer whose alignment changes from run to run, and the CPU
    /// matrix kernels round differently with it (last-bit differences in val losses and probabilities, enough to move the
    /// selected epoch or a threshold). A clone lives in torch's own aligned memory: the same seed gives the same head bit for bit.
    /// </summary>
    private static Tensor Owned(float[] values, int rows, int dim) => torch.tensor(values, new long[] { rows, dim }).clone();

    private static float[] Predict(Linear head, SplitData split)
    {
        if (split.Count == 0) return Array.Empty<float>();
        using var scope = torch.NewDisposeScope();
        var x = Owned(split.Features, split.Count, split.Dim);
        var p = torch.nn.functional.softmax(head.forward(x), 1).select(1, 1).contiguous();
        return p.data<float>().ToArray();
    }
}
