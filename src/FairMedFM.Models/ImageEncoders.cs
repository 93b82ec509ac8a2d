using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Models;

/// <summary>A frozen image encoder whose outputs the engine caches as embeddings.</summary>
public interface IImageEncoder : IDisposable
{
    /// <summary>Model-zoo id, e.g. "resnet18-imagenet-cntk".</summary>
    string ModelId { get; }

    int FeatureDim { get; }

    /// <summary>sha256 of the weights actually loaded (the weights file; for the packaged model, the ONNX file).</summary>
    string WeightsHash { get; }

    /// <summary>
    /// [B,3,H,W] float32, already normalised as the model's <see cref="ModelCard"/> says (see
    /// <see cref="ImageNormalization"/>) → [B, FeatureDim] on the input's device. Eval mode, inference mode, no grad.
    /// </summary>
    Tensor Encode(Tensor images);
}

/// <summary>What every frozen encoder does to its module once: move it to the device, eval mode, no gradients.</summary>
internal static class FrozenModule
{
    public static void Freeze(nn.Module module, Device device)
    {
        module.to(device);
        module.eval();
        foreach (var p in module.parameters()) p.requires_grad = false;
    }
}

/// <summary>
/// <see cref="IImageEncoder"/> over a <see cref="ResNet"/>: pooled features (classifier unused), or with
/// <c>l2HeadFeature</c> the fc output L2-normalised (C2L's projection feature).
/// </summary>
public sealed class ResNetImageEncoder : IImageEncoder
{
    private readonly ResNet _model;
    private readonly Device _device;
    private readonly bool _l2Head;
    private bool _disposed;

    public ResNetImageEncoder(string modelId, ResNet model, string weightsHash, Device? device = null, bool l2HeadFeature = false)
    {
        if (l2HeadFeature && model.Config.NumClasses <= 0) throw new ArgumentException($"{modelId}: an fc feature needs NumClasses > 0");
        _l2Head = l2HeadFeature;
        ModelId = modelId;
        WeightsHash = weightsHash;
        _device = device ?? CPU;
        _model = model;
        FrozenModule.Freeze(_model, _device);
    }

    public string ModelId { get; }
    public string WeightsHash { get; }
    public int FeatureDim => _l2Head ? _model.Config.NumClasses : _model.FeatureDim;
    public ResNet Model => _model;

    public Tensor Encode(Tensor images)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"Encode expects [B,3,H,W], got [{string.Join(",", images.shape)}].", nameof(images));
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var x = images.to(float32).to(_device);
        var f = _l2Head ? nn.functional.normalize(_model.forward(x), p: 2, dim: 1) : _model.ForwardFeatures(x);
        if (f.device.type != images.device.type || f.device.index != images.device.index) f = f.to(images.device);
        return f.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _model.Dispose();
    }
}

/// <summary>
/// An image encoder whose backbone can be adapted (LoRA) and run with autograd: the engine wraps some of the
/// <see cref="Backbone"/>'s Linear modules and trains them together with a head, the rest staying frozen.
/// </summary>
public interface IAdaptableImageEncoder : IImageEncoder
{
    /// <summary>The module whose parameters <see cref="ForwardFeatures"/> uses (owned by the encoder: disposed with it).</summary>
    nn.Module Backbone { get; }

    /// <summary>
    /// The same feature as <see cref="IImageEncoder.Encode"/>, with autograd enabled (not inference mode) so that
    /// trainable parameters inside the backbone get gradients; [B,3,H,W] → [B, FeatureDim] on the backbone's device.
    /// The caller chooses train or eval mode.
    /// </summary>
    Tensor ForwardFeatures(Tensor images);
}
