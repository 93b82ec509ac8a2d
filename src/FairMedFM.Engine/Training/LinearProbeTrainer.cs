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

    /// <summary>Indices and labels only (Dim 0, no features): for usages that read images rather than cached embeddings (LoRA).</summary>
    public static SplitData LabelsOnly(int[] indices, IReadOnlyList<int> allLabels) =>
        new(indices, Array.Empty<float>(), 0, indices.Select(i => allLabels[i]).ToArray());
}

public sealed record EpochLog(int Epoch, double Lr, double TrainLoss, double ValLoss);

/// <summary>Outcome of training a head: P(y=1) for validation and test, the epoch kept and the loss curve.</summary>
public sealed record TrainedProbe(float[] ValProbs, float[] TestProbs, int SelectedEpoch, IReadOnlyList<EpochLog> History, double[] ClassWeights);

/// <summary>
/// ERM linear probe on frozen embeddings: Linear(d, 2) with PyTorch's default init, trained by <see cref="ErmTrainer"/>
/// (class-weighted cross-entropy, FairMedFM's warm-up + half-cosine schedule, SGD or AdamW, weight decay on ≥2-D
/// parameters only, model selection on the validation split — never on test).
/// Seeded and deterministic: the same seed gives the same head bit for bit.
/// </summary>
public static class LinearProbeTrainer
{
    public static TrainedProbe Train(SplitData train, SplitData val, SplitData test, TrainingConfig cfg, int seed, CancellationToken ct = default) =>
        HeadTrainer.Train(train, val, test, cfg, seed, dim => SeededInit.Linear(dim, 2, seed), ct);
}

/// <summary>
/// Any head on cached embeddings (the linear probe, CLIP-adapt's prototypes), trained by <see cref="ErmTrainer"/>;
/// P(y=1) = softmax(head(x))[:, 1] for validation and test.
/// </summary>
public static class HeadTrainer
{
    /// <param name="makeHead">
    /// Builds the head for features of the given width. A random initialisation should come from a generator of its own
    /// seeded with the cell's seed (<see cref="SeededInit"/>), never from torch's global one, which parallel cells share.
    /// </param>
    /// <param name="inspect">Sees the trained head before it is disposed (tests).</param>
    public static TrainedProbe Train(SplitData train, SplitData val, SplitData test, TrainingConfig cfg, int seed,
        Func<int, nn.Module<Tensor, Tensor>> makeHead, CancellationToken ct = default, Action<nn.Module<Tensor, Tensor>>? inspect = null)
    {
        cfg.Validate();
        ErmTrainer.ClassWeights(train.Labels, cfg);

        using var scope = torch.NewDisposeScope();
        using var head = makeHead(train.Dim);
        using var model = new EmbeddingHeadModel(head, train, val, test);
        var fit = ErmTrainer.Fit(model, train.Labels, val.Labels, cfg, seed, ct);
        var probe = new TrainedProbe(ErmTrainer.Predict(model, ErmSplit.Validation, val.Count),
                                     ErmTrainer.Predict(model, ErmSplit.Test, test.Count), fit.SelectedEpoch, fit.History, fit.ClassWeights);
        inspect?.Invoke(head);
        return probe;
    }
}
