using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Models.Vit;

/// <summary>
/// <see cref="IImageEncoder"/> over a frozen transformer module and the feature function FairMedFM takes from it
/// (normed CLS for DINOv2, CLS after the final norm for MedMAE, the pooled last block map for LVM-Med).
/// </summary>
public sealed class VitImageEncoder<TModel> : IAdaptableImageEncoder where TModel : nn.Module
{
    private readonly Func<TModel, Tensor, Tensor> _features;
    private readonly Device _device;
    private bool _disposed;

    public VitImageEncoder(string modelId, TModel model, Func<TModel, Tensor, Tensor> features, int featureDim,
                           string weightsHash, Device? device = null)
    {
        ModelId = modelId;
        Model = model;
        _features = features;
        FeatureDim = featureDim;
        WeightsHash = weightsHash;
        _device = device ?? CPU;
        FrozenModule.Freeze(model, _device);
    }

    public string ModelId { get; }
    public int FeatureDim { get; }
    public string WeightsHash { get; }
    public TModel Model { get; }

    public Tensor Encode(Tensor images)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"Encode expects [B,3,H,W], got {VitOps.Shape(images)}.", nameof(images));
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var x = images.to(float32).to(_device);
        var f = _features(Model, x);
        if (f.dim() != 2 || f.shape[0] != images.shape[0] || f.shape[1] != FeatureDim)
            throw new InvalidOperationException($"{ModelId}: feature of shape {VitOps.Shape(f)}, expected [{images.shape[0]},{FeatureDim}].");
        if (f.device.type != images.device.type || f.device.index != images.device.index) f = f.to(images.device);
        return f.MoveToOuterDisposeScope();
    }

    public nn.Module Backbone => Model;

    /// <summary>The feature function with autograd (LoRA training); eval/train mode is the caller's.</summary>
    public Tensor ForwardFeatures(Tensor images)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"ForwardFeatures expects [B,3,H,W], got {VitOps.Shape(images)}.", nameof(images));
        using var scope = NewDisposeScope();
        var f = _features(Model, images.to(float32).to(_device));
        if (f.dim() != 2 || f.shape[0] != images.shape[0] || f.shape[1] != FeatureDim)
            throw new InvalidOperationException($"{ModelId}: feature of shape {VitOps.Shape(f)}, expected [{images.shape[0]},{FeatureDim}].");
        return f.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Model.Dispose();
    }
}

/// <summary>Builds the transformer encoders of <see cref="ModelZoo"/> from their cards and weights files.</summary>
public static class VitModelZoo
{
    public const string FamilyTimmVit = "timm-vit";
    public const string FamilyDinoV2 = "dinov2";
    public const string FamilySamVit = "sam-vit";

    /// <summary>Whether <paramref name="card"/> is built here (rather than as a ResNet).</summary>
    public static bool Handles(ModelCard card) => card.Family is FamilyTimmVit or FamilyDinoV2 or FamilySamVit;

    /// <summary>
    /// Builds and loads the encoder of a transformer card. The (possibly full-size) module is built only after the
    /// weights file has been found, so a missing file fails fast with the expected name.
    /// </summary>
    public static IImageEncoder CreateEncoder(ModelCard card, string? weightsDir, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(card);
        var path = ModelZoo.ResolveWeightsFile(card, weightsDir);
        return card.Family switch
        {
            FamilyDinoV2 => CreateDinoV2(card, path, device),
            FamilyTimmVit => CreateMedMae(card, path, device),
            FamilySamVit => CreateLvmMed(card, path, device),
            _ => throw new NotSupportedException($"Model '{card.Id}' (family '{card.Family}') is not a transformer card."),
        };
    }

    /// <summary>DINOv2 (hub checkpoint, bare state dict): strict; feature = normed class token.</summary>
    public static IImageEncoder CreateDinoV2(ModelCard card, string path, Device? device = null)
    {
        var cfg = card.DinoV2 ?? throw new InvalidOperationException($"Card '{card.Id}' has no DinoV2 config.");
        var model = new DinoVisionTransformer(card.Id, cfg);
        return Build(card, model, path, m => WeightLoader.Load(m, path, strict: true),
                     (m, x) => m.forward(x), cfg.EmbedDim, device);
    }

    /// <summary>
    /// MedMAE (timm VisionTransformer, CLS after the final norm): the file's state dict (under "model" in MAE
    /// checkpoints) loaded by name. As in FairMedFM, unknown keys (the MAE decoder: decoder_*, mask_token) are
    /// tolerated and the classification head is never used (FairMedFM replaces it by Identity), so head.* keys are
    /// dropped whatever their shape. Unlike FairMedFM's strict=False, an encoder key missing from the file or of
    /// another shape is an error: it would otherwise leave that part of the encoder at its random initialisation.
    /// </summary>
    public static IImageEncoder CreateMedMae(ModelCard card, string path, Device? device = null)
    {
        var cfg = (card.Vit ?? throw new InvalidOperationException($"Card '{card.Id}' has no Vit config.")) with { NumClasses = 0 };
        var model = new VisionTransformer(card.Id, cfg);
        return Build(card, model, path, m =>
        {
            var report = WeightLoader.Load(m, path, new WeightLoadOptions
            {
                Strict = false,
                KeyMap = k => k.StartsWith("head.", StringComparison.Ordinal) ? null : k,
            });
            if (report.Missing.Count > 0 || report.MisShaped.Count > 0)
                throw new WeightLoadException(path, report);
            return report;
        }, (m, x) => m.ForwardPooled(x), cfg.EmbedDim, device);
    }

    /// <summary>
    /// LVM-Med ViT-B (SAM-style encoder): keys prefixed "model." (the wrapper's attribute), loaded strictly, neck
    /// included; feature = average of the last block map (batch axis kept, B24 fixed).
    /// </summary>
    public static IImageEncoder CreateLvmMed(ModelCard card, string path, Device? device = null)
    {
        var cfg = card.SamVit ?? throw new InvalidOperationException($"Card '{card.Id}' has no SamVit config.");
        var model = new SamImageEncoderViT(card.Id, cfg);
        return Build(card, model, path,
                     m => WeightLoader.Load(m, path, new WeightLoadOptions { Strict = true, StripPrefixes = ["model."] }),
                     (m, x) => m.ForwardPooled(x), cfg.EmbedDim, device);
    }

    private static IImageEncoder Build<TModel>(ModelCard card, TModel model, string path, Func<TModel, WeightLoadReport> load,
                                               Func<TModel, Tensor, Tensor> features, int featureDim, Device? device)
        where TModel : nn.Module
    {
        try
        {
            if (featureDim != card.FeatureDim)
                throw new InvalidOperationException($"Card '{card.Id}' declares FeatureDim {card.FeatureDim} but its config gives {featureDim}.");
            load(model);
            return new VitImageEncoder<TModel>(card.Id, model, features, featureDim, WeightLoader.FileSha256(path), device);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
