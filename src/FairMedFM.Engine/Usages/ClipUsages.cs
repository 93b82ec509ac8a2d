using FairMedFM.Data;
using FairMedFM.Engine.Config;
using FairMedFM.Engine.Training;
using FairMedFM.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Usages;

/// <summary>
/// FairMedFM's <c>CLIPWrapper</c> head: class prototypes [K, D] (initialised from the text embeddings of the class
/// prompts) and <c>logits = scale · norm(x) · norm(P)ᵀ + bias</c>, both sides L2-normalised in every forward (so only
/// the prototypes' directions matter). Frozen for clip-zs, the only trained tensor for clip-adapt.
/// </summary>
public sealed class PrototypeHead : nn.Module<Tensor, Tensor>
{
    private readonly Parameter prototypes;

    /// <summary>Multiplier of the cosine similarities (the card's ZeroShotLogitScale applied to the weights).</summary>
    public double Scale { get; }

    /// <summary>Added to every logit (SigLIP-style logit_bias; 0 for CLIP).</summary>
    public double Bias { get; }

    public int Classes { get; }
    public int Dim { get; }

    public Parameter Prototypes => prototypes;

    public PrototypeHead(float[] values, int classes, int dim, double scale, double bias, bool trainable) : base("PrototypeHead")
    {
        if (values.Length != classes * dim) throw new ArgumentException($"{values.Length} prototype values for [{classes}, {dim}]");
        Classes = classes;
        Dim = dim;
        Scale = scale;
        Bias = bias;
        using (var raw = torch.tensor(values, new long[] { classes, dim }))
            prototypes = new Parameter(raw.clone(), requires_grad: trainable);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        // As openai/CLIP and FairMedFM's forward_clip: x / x.norm(dim=-1, keepdim=True), then scale · img @ textᵀ.
        var img = x / x.norm(1, keepdim: true);
        var txt = prototypes / prototypes.norm(1, keepdim: true);
        var logits = img.matmul(txt.t()).mul(Scale);
        if (Bias != 0) logits = logits.add(Bias);
        return logits.MoveToOuterDisposeScope();
    }
}

/// <summary>The zero-shot text side of a cell: prompts, their cached embeddings and the logit constants.</summary>
public sealed record ZeroShotText(TextEmbeddings Embeddings, double Scale, double Bias)
{
    public PrototypeHead Head(bool trainable) =>
        new(Embeddings.Values, Embeddings.Count, Embeddings.Dim, Scale, Bias, trainable);
}

/// <summary>
/// The CLIP-style usages on cached image embeddings (the image feature is the model's encode_image, the same
/// embedding-store entry the linear probe uses): <c>clip-zs</c> (zero-shot, nothing trained) and <c>clip-adapt</c>
/// (the two class prototypes trained by the linear probe's ERM loop). P(y=1) = softmax(logits)[:, 1].
/// </summary>
public static class ClipUsages
{
    /// <summary>Fails early (before any embedding is computed) when the model has no text tower or the card no prompts.</summary>
    public static void Validate(CellSpec spec, LoadedDataset data)
    {
        // Cards only a workspace can resolve (a user's ONNX card) are checked when the text side is built.
        if (ModelCatalog.TryCard(spec.Model) is { ZeroShotLogitScale: null })
            throw new ConfigException($"model '{spec.Model}' has no text tower (not a CLIP-style model); usage {spec.Usage} needs one");
        if (data.Card.ZeroShot is null)
            throw new ConfigException($"dataset card {data.Card.SourceFile} has no zero_shot block (text_template and class_names [class 0, class 1]), " +
                                      $"which usage {spec.Usage} needs for its prompts");
    }

    /// <summary>
    /// Prompts = text_template.format(class_name) for [class 0, class 1] of the dataset card, embedded by the model's
    /// text tower (cached by weights hash + prompts), with the card's zero-shot scale and bias.
    /// </summary>
    public static ZeroShotText Text(Workspace ws, string modelId, DatasetCard dataset, string usage = "clip-zs", CancellationToken ct = default)
    {
        var card = ModelCatalog.Card(modelId, ws);
        var zsScale = card.ZeroShotLogitScale
            ?? throw new ConfigException($"model '{modelId}' has no text tower (not a CLIP-style model); usage {usage} needs one");
        var zs = dataset.ZeroShot
            ?? throw new ConfigException($"dataset card {dataset.SourceFile} has no zero_shot block (text_template and class_names), which usage {usage} needs");
        var prompts = zs.Prompts();
        var store = new TextEmbeddingStore(ws.TextEmbeddingsDir);
        var text = store.GetOrCompute(modelId, ModelCatalog.WeightsHash(modelId, ws), prompts, () => ModelCatalog.CreateEncoder(modelId, ws), ct);
        double scale = zsScale.Fixed ?? zsScale.Apply(text.LogitScaleExp
            ?? throw new InvalidOperationException($"model '{modelId}': its card scales zero-shot logits by the weights' logit_scale, but its text encoder reports none"));
        return new ZeroShotText(text, scale, zsScale.Bias(text.LogitBias));
    }

    /// <summary>clip-zs: no training; the frozen prototypes score validation and test.</summary>
    public static TrainedProbe ZeroShot(ZeroShotText text, SplitData train, SplitData val, SplitData test)
    {
        CheckDims(text, train.Dim);
        using var scope = torch.NewDisposeScope();
        using var head = text.Head(trainable: false);
        using var model = new EmbeddingHeadModel(head, train, val, test);
        return new TrainedProbe(ErmTrainer.Predict(model, ErmSplit.Validation, val.Count), ErmTrainer.Predict(model, ErmSplit.Test, test.Count),
            SelectedEpoch: -1, History: Array.Empty<EpochLog>(), ClassWeights: new[] { 1.0, 1.0 });
    }

    /// <summary>clip-adapt: the prototypes (initialised from the text embeddings) are the only trained tensor, by the ERM loop.</summary>
    public static TrainedProbe Adapt(ZeroShotText text, SplitData train, SplitData val, SplitData test, TrainingConfig cfg, int seed,
        CancellationToken ct = default, Action<PrototypeHead>? inspect = null)
    {
        CheckDims(text, train.Dim);
        return HeadTrainer.Train(train, val, test, cfg, seed, _ => text.Head(trainable: true), ct,
            inspect is null ? null : h => inspect((PrototypeHead)h));
    }

    private static void CheckDims(ZeroShotText text, int imageDim)
    {
        if (imageDim != text.Embeddings.Dim)
            throw new InvalidOperationException(
                $"image features have {imageDim} dimensions but the text embeddings {text.Embeddings.Dim}: the image embedding is not in the joint image–text space");
    }
}
