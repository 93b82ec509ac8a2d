using static TorchSharp.torch;

namespace FairMedFM.Models.Sam;

/// <summary>How a <see cref="SamPredictor"/> treats its image and prompts.</summary>
public enum SamInputMode
{
    /// <summary>
    /// FairMedFM (<c>wrappers/sam_model.py</c>): the image is already normalised (the data set's / ImageNet statistics)
    /// and resized to img_size × img_size; no <c>Sam.preprocess</c>; prompts are in that frame and passed unchanged;
    /// masks come back at img_size (input size = original size).
    /// </summary>
    FairMedFM,

    /// <summary>
    /// segment-anything <c>SamPredictor.set_torch_image</c> / <c>predict</c>: a 0–255 RGB image whose longest side is
    /// img_size (ResizeLongestSide already applied), <c>Sam.preprocess</c> (pixel mean/std, bottom/right zero pad);
    /// prompts given in the original image's frame are moved by <see cref="ResizeLongestSide"/>; masks come back at the
    /// original size.
    /// </summary>
    Official,
}

/// <summary>
/// SamPredictor-like state: one image's embedding (computed here or taken from a cache) and its sizes, then any number
/// of prompt queries against it. Owns the embedding it holds; not thread-safe (one predictor per worker).
/// </summary>
public sealed class SamPredictor : IDisposable
{
    private readonly SamModel _model;
    private Tensor? _features;

    public SamInputMode Mode { get; }
    public (int H, int W) InputSize { get; private set; }
    public (int H, int W) OriginalSize { get; private set; }
    public bool IsImageSet => _features is not null;

    /// <summary>The current image embedding [1, C, h, w] (owned by the predictor).</summary>
    public Tensor Features => _features ?? throw new InvalidOperationException("No image is set: call SetImage or SetImageEmbedding first.");

    public SamPredictor(SamModel model, SamInputMode mode)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        Mode = mode;
    }

    /// <summary>
    /// Encodes one image [1, 3, h, w]. FairMedFM mode: already normalised, h = w = img_size, and
    /// <paramref name="originalSize"/> defaults to it. Official mode: 0–255 RGB with max(h, w) = img_size (as
    /// <c>set_torch_image</c> asserts); <paramref name="originalSize"/> is the size before ResizeLongestSide.
    /// </summary>
    public void SetImage(Tensor image, (int H, int W)? originalSize = null)
    {
        if (image.dim() != 4 || image.shape[0] != 1 || image.shape[1] != 3)
            throw new ArgumentException($"SetImage expects one image [1, 3, h, w], got [{string.Join(", ", image.shape)}].");
        int h = (int)image.shape[2], w = (int)image.shape[3];
        if (Math.Max(h, w) != _model.ImgSize)
            throw new ArgumentException($"the image's longest side must be img_size {_model.ImgSize} (got {h}×{w}); apply ResizeLongestSide first.");
        Tensor features;
        using (var scope = NewDisposeScope())
        {
            features = Mode == SamInputMode.FairMedFM ? _model.EmbedImage(image) : _model.EmbedImage(_model.Preprocess(image));
            features.MoveToOuterDisposeScope();
        }
        Replace(features, (h, w), originalSize ?? (h, w));
    }

    /// <summary>
    /// Uses a cached embedding [1, C, h, w] of an image whose model-input size was <paramref name="inputSize"/> (the
    /// un-padded resized size; img_size × img_size on the FairMedFM path) and original size <paramref name="originalSize"/>.
    /// The predictor keeps its own reference (the caller may dispose its tensor).
    /// </summary>
    public void SetImageEmbedding(Tensor embedding, (int H, int W) inputSize, (int H, int W) originalSize)
    {
        int e = _model.Config.ImageEmbeddingSize;
        if (embedding.dim() != 4 || embedding.shape[0] != 1 || embedding.shape[1] != _model.Config.PromptEmbedDim || embedding.shape[2] != e || embedding.shape[3] != e)
            throw new ArgumentException($"a cached embedding must be [1, {_model.Config.PromptEmbedDim}, {e}, {e}], got [{string.Join(", ", embedding.shape)}].");
        Replace(embedding.alias(), inputSize, originalSize);
    }

    /// <summary>
    /// Masks for the prompts. Official mode: coordinates/boxes are in the original image's frame and are moved by
    /// ResizeLongestSide (as <c>SamPredictor.predict</c>); FairMedFM mode: used as given.
    /// </summary>
    public SamOutput Predict(SamPrompt prompt, bool multimaskOutput = true)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var features = Features;
        if (Mode == SamInputMode.FairMedFM)
            return _model.Predict(features, prompt, multimaskOutput, InputSize, OriginalSize);
        using var scope = NewDisposeScope();
        var moved = prompt with
        {
            PointCoords = prompt.PointCoords is null ? null : ResizeLongestSide.ApplyCoords(prompt.PointCoords, OriginalSize, _model.ImgSize),
            Boxes = prompt.Boxes is null ? null : ResizeLongestSide.ApplyBoxes(prompt.Boxes, OriginalSize, _model.ImgSize),
        };
        var o = _model.Predict(features, moved, multimaskOutput, InputSize, OriginalSize);
        foreach (var t in new[] { o.LowResLogits, o.IouPredictions, o.MaskLogits, o.Masks, o.BestMaskIndex }) t.MoveToOuterDisposeScope();
        return o;
    }

    /// <summary>Masks for prompts already in the model-input frame (<c>predict_torch</c>), whatever the mode.</summary>
    public SamOutput PredictTorch(SamPrompt prompt, bool multimaskOutput = true) =>
        _model.Predict(Features, prompt, multimaskOutput, InputSize, OriginalSize);

    public void ResetImage()
    {
        _features?.Dispose();
        _features = null;
    }

    private void Replace(Tensor features, (int H, int W) inputSize, (int H, int W) originalSize)
    {
        if (inputSize.H <= 0 || inputSize.W <= 0 || inputSize.H > _model.ImgSize || inputSize.W > _model.ImgSize)
        {
            features.Dispose();
            throw new ArgumentException($"input size {inputSize.H}×{inputSize.W} must lie within img_size {_model.ImgSize}.");
        }
        ResetImage();
        features.DetachFromDisposeScope();
        _features = features;
        InputSize = inputSize;
        OriginalSize = originalSize;
    }

    public void Dispose() => ResetImage();
}
