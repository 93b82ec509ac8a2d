using FairMedFM.Engine.Config;
using FairMedFM.Engine.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Tests;

/// <summary>The shared ERM loop: batched evaluation equals one-shot evaluation; a seeded head ignores the global generator.</summary>
public class ErmTrainerTests
{
    /// <summary>An embedding head model evaluated in small batches.</summary>
    private sealed class Batched(EmbeddingHeadModel inner, int batch) : IErmModel
    {
        public IReadOnlyList<(string Name, Parameter Param)> TrainableParameters() => inner.TrainableParameters();
        public void SetTraining(bool training) => inner.SetTraining(training);
        public Tensor Logits(ErmSplit split, Tensor? rows) => inner.Logits(split, rows);
        public int EvalBatchSize => batch;
    }

    [Fact]
    public void Evaluation_in_batches_equals_evaluation_in_one_call()
    {
        var train = LinearProbeTrainerTests.Synthetic(60, 8, 1.0, seed: 1);
        var val = LinearProbeTrainerTests.Synthetic(37, 8, 1.0, seed: 2, positiveRate: 0.3);
        using var head = SeededInit.Linear(8, 2, 5);
        using var whole = new EmbeddingHeadModel(head, train, val, val);
        var batched = new Batched(whole, 7);
        var w = new[] { 0.8, 1.4 };
        Assert.Equal(ErmTrainer.ValidationLoss(whole, val.Labels, w), ErmTrainer.ValidationLoss(batched, val.Labels, w), 6);
        var p1 = ErmTrainer.Predict(whole, ErmSplit.Test, val.Count);
        var p2 = ErmTrainer.Predict(batched, ErmSplit.Test, val.Count);
        Assert.Equal(p1.Length, p2.Length);
        Assert.True(p1.Zip(p2, (a, b) => Math.Abs(a - b)).Max() < 1e-6);
    }

    [Fact]
    public void Nothing_to_train_is_an_error()
    {
        var train = LinearProbeTrainerTests.Synthetic(20, 4, 1.0, seed: 1);
        using var head = SeededInit.Linear(4, 2, 0);
        foreach (var p in head.parameters()) p.requires_grad = false;
        using var model = new EmbeddingHeadModel(head, train, train, train);
        var e = Assert.Throws<InvalidOperationException>(() => ErmTrainer.Fit(model, train.Labels, train.Labels, new TrainingConfig(), 0));
        Assert.Contains("nothing to train", e.Message);
    }
}

/// <summary>Tests that draw from torch's global generator: they run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalTorchRngCollection
{
    public const string Name = "global torch generator";
}

[Collection(GlobalTorchRngCollection.Name)]
public class SeededInitTests
{
    [Fact]
    public void SeededInit_Linear_equals_torch_manual_seed_then_nn_Linear()
    {
        foreach (var (inF, seed) in new[] { (512, 0L), (768, 7L), (3, 123L) })
        {
            torch.manual_seed(seed);
            using var reference = nn.Linear(inF, 2);
            using var seeded = SeededInit.Linear(inF, 2, seed);
            Assert.True(UsageTestModels.BitEqual(UsageTestModels.Floats(reference.weight!), UsageTestModels.Floats(seeded.weight!)), $"weight, in={inF}");
            Assert.True(UsageTestModels.BitEqual(UsageTestModels.Floats(reference.bias!), UsageTestModels.Floats(seeded.bias!)), $"bias, in={inF}");
        }
    }

    [Fact]
    public async Task The_linear_probe_is_unaffected_by_other_threads_drawing_from_the_global_generator()
    {
        var train = LinearProbeTrainerTests.Synthetic(120, 16, 0.7, seed: 11);
        var val = LinearProbeTrainerTests.Synthetic(40, 16, 0.7, seed: 12);
        var cfg = new TrainingConfig { Epochs = 6, WarmupEpochs = 1, Blr = 0.01, BatchSize = 32 };
        var quiet = LinearProbeTrainer.Train(train, val, val, cfg, seed: 3);
        using var stop = new CancellationTokenSource();
        var noise = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                torch.manual_seed(Environment.TickCount64);
                using var t = torch.rand(64);
            }
        });
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var busy = LinearProbeTrainer.Train(train, val, val, cfg, seed: 3);
                Assert.True(UsageTestModels.BitEqual(quiet.TestProbs, busy.TestProbs), $"repeat {i}: another thread's draws changed the head");
            }
        }
        finally
        {
            stop.Cancel();
            await noise;
        }
    }
}
