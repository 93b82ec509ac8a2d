using FairMedFM.Data;
using FairMedFM.Engine.Cells;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Embeddings;
using FairMedFM.Engine.Training;

namespace FairMedFM.Engine.Usages;

/// <summary>
/// Dispatch of a cell by usage (<see cref="GridSpec.KnownUsages"/>): everything after the split and before the
/// threshold — the part that turns a cell's data into P(y=1) for validation and test. The rest of a cell (split,
/// threshold, metrics, result files) is the same for every usage.
/// </summary>
public static class UsageRunner
{
    /// <summary>Whether the usage reads the cached frozen-backbone embeddings (all but lora, which trains inside the backbone).</summary>
    public static bool NeedsEmbeddings(string usage) => usage != "lora";

    /// <summary>Usage-specific checks that fail a cell before any embedding or training work.</summary>
    public static void Validate(CellSpec spec, LoadedDataset data)
    {
        switch (spec.Usage)
        {
            case "clip-zs" or "clip-adapt":
                ClipUsages.Validate(spec, data);
                break;
            case "lora":
                // Cards only a workspace can resolve (a user's ONNX card) are checked when the cell trains.
                if (ModelCatalog.TryCard(spec.Model) is { } card) LoraConfig.Resolve(card, spec.Lora);
                break;
        }
    }

    /// <summary>P(y=1) for the validation and test rows of a cell. <paramref name="emb"/> is null exactly for usages that need no embeddings.</summary>
    public static TrainedProbe Train(Workspace workspace, CellSpec spec, LoadedDataset data, EmbeddingMatrix? emb,
        SplitData train, SplitData val, SplitData test, CancellationToken ct = default)
    {
        if (NeedsEmbeddings(spec.Usage) && emb is null)
            throw new InvalidOperationException($"usage {spec.Usage} runs on cached embeddings, but none were given");
        return spec.Usage switch
        {
            "lp" => LinearProbeTrainer.Train(train, val, test, spec.Training, spec.Seed, ct),
            "clip-zs" => ClipUsages.ZeroShot(ClipUsages.Text(workspace, spec.Model, data.Card, spec.Usage, ct), train, val, test),
            "clip-adapt" => ClipUsages.Adapt(ClipUsages.Text(workspace, spec.Model, data.Card, spec.Usage, ct), train, val, test, spec.Training, spec.Seed, ct),
            "lora" => LoraUsage.Train(workspace, spec, data, train, val, test, ct),
            _ => throw new ConfigException($"usage '{spec.Usage}' is not available (available: {string.Join(", ", GridSpec.KnownUsages)})"),
        };
    }
}
