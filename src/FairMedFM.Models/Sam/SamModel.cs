using FairMedFM.Models.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Models.Sam;

/// <summary>
/// Prompts for one image: any of points ([B, N, 2] (x, y) with labels [B, N]: 1 foreground, 0 background, −1 padding),
/// boxes ([B, 4] or [B, 1, 4] x0, y0, x1, y1) and a low-res mask ([B, 1, 4h, 4w] logits). Coordinates are in the
/// model-input frame (the <see cref="SamPredictor"/> in official mode transforms them from the original image first).
/// The caller keeps ownership of the tensors.
/// </summary>
public sealed record SamPrompt(Tensor? PointCoords = null, Tensor? PointLabels = null, Tensor? Boxes = null, Tensor? MaskInput = null)
{
    /// <summary>Points with label 1 (FairMedFM's point prompts are all positive).</summary>
    public static SamPrompt PositivePoints(Tensor coords) =>
        new(coords, ones(coords.shape[0], coords.shape[1], dtype: int64, device: coords.device));
}

/// <summary>
/// What SAM returns for one image's prompt sets (B of them, M masks each): low-res logits [B, M, 4h, 4w], predicted IoUs
/// [B, M], logits at the target size [B, M, H, W], masks (logit &gt; threshold, bool) and the best mask per prompt set
/// (argmax IoU, first on ties) [B]. Owns its tensors.
/// </summary>
public sealed class SamOutput : IDisposable
{
    public required Tensor LowResLogits { get; init; }
    public required Tensor IouPredictions { get; init; }
    public required Tensor MaskLogits { get; init; }
    public required Tensor Masks { get; init; }
    public required Tensor BestMaskIndex { get; init; }

    /// <summary>The best mask's logits per prompt set, [B, H, W] (FairMedFM: <c>masks[0][argmax(iou)]</c>).</summary>
    public Tensor BestMaskLogits()
    {
        using var scope = NewDisposeScope();
        long b = MaskLogits.shape[0];
        var idx = BestMaskIndex.view(b, 1, 1, 1).expand(b, 1, MaskLogits.shape[2], MaskLogits.shape[3]);
        return MaskLogits.gather(1, idx).squeeze(1).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        LowResLogits.Dispose();
        IouPredictions.Dispose();
        MaskLogits.Dispose();
        Masks.Dispose();
        BestMaskIndex.Dispose();
    }
}

/// <summary>One entry of <see cref="SamModel.Forward"/>'s batch (segment-anything <c>Sam.forward</c>'s dict).</summary>
/// <param name="Image">[3, h, w], 0–255 RGB, already resized so that max(h, w) = img_size (ResizeLongestSide).</param>
/// <param name="OriginalSize">(H, W) of the image before that resize: the size of the returned masks.</param>
public sealed record SamImageRecord(Tensor Image, (int H, int W) OriginalSize, SamPrompt Prompt);

/// <summary>
/// segment-anything <c>Sam</c> (modeling/sam.py @ dca509f) with its state-dict names <c>image_encoder.*</c>,
/// <c>prompt_encoder.*</c>, <c>mask_decoder.*</c>; <c>pixel_mean</c>/<c>pixel_std</c> are non-persistent in the reference,
/// so here they are plain configuration (<see cref="SamConfig.PixelMean"/>), never in the state dict.
/// The image encoder is any module mapping [B, 3, S, S] to [B, C, S/16, S/16] (the ViT here, TinyViT for
/// MobileSAM/TinySAM), so one class serves every SAM v1 variant.
/// Two entry paths: FairMedFM's (<see cref="EmbedImage"/> on an already normalised S×S image, no preprocess, prompts in
/// that frame, masks at S×S) and the official one (<see cref="Preprocess"/>, <see cref="Forward"/>, <see cref="SamPredictor"/>).
/// </summary>
public sealed class SamModel : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> image_encoder;
    private readonly PromptEncoder prompt_encoder;
    private readonly MaskDecoder mask_decoder;

    public SamConfig Config { get; }
    public nn.Module<Tensor, Tensor> ImageEncoder => image_encoder;
    public PromptEncoder PromptEncoder => prompt_encoder;
    public MaskDecoder MaskDecoder => mask_decoder;

    /// <summary><c>image_encoder.img_size</c>: the square model input side.</summary>
    public int ImgSize => Config.ImgSize;

    public SamModel(string name, nn.Module<Tensor, Tensor> imageEncoder, SamConfig config) : base(name)
    {
        ArgumentNullException.ThrowIfNull(imageEncoder);
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        image_encoder = imageEncoder;
        int e = config.ImageEmbeddingSize;
        prompt_encoder = new PromptEncoder("prompt_encoder", config.PromptEmbedDim, (e, e), (config.ImgSize, config.ImgSize), config.MaskInChans);
        mask_decoder = new MaskDecoder("mask_decoder", config);
        RegisterComponents();
    }

    /// <summary>SAM v1 around segment-anything's ViT image encoder (<c>_build_sam</c>); decoder settings from <paramref name="config"/>.</summary>
    public static SamModel CreateVit(SamVitConfig encoder, SamConfig? config = null, string name = "sam")
    {
        config ??= SamConfig.ForVit(encoder);
        if (config.ImgSize != encoder.ImgSize || config.ImageEmbeddingSize != encoder.GridSize || config.PromptEmbedDim != encoder.OutChans)
            throw new ArgumentException($"SAM config (img {config.ImgSize}, grid {config.ImageEmbeddingSize}, dim {config.PromptEmbedDim}) does not fit " +
                                        $"the encoder (img {encoder.ImgSize}, grid {encoder.GridSize}, out {encoder.OutChans}).");
        return new SamModel(name, new SamImageEncoderViT("image_encoder", encoder), config);
    }

    /// <summary>
    /// Strict load of a SAM checkpoint (bare state dict or wrapped under "model"/"state_dict", .pth or .safetensors).
    /// Any missing, unexpected or mis-shaped key throws <see cref="WeightLoadException"/> naming it; nothing is copied then.
    /// </summary>
    public WeightLoadReport LoadCheckpoint(string path, WeightLoadOptions? options = null) =>
        WeightLoader.Load(this, path, options ?? new WeightLoadOptions { Strict = true });

    // ---- FairMedFM path -------------------------------------------------------------------------------------------

    /// <summary>
    /// <c>image_encoder(x)</c> on an input that is already normalised and S×S (FairMedFM's <c>set_torch_image</c>:
    /// <c>Sam.preprocess</c> is not called) → image embeddings [B, C, S/16, S/16], one per image. This is what the
    /// engine caches per image and model.
    /// </summary>
    public Tensor EmbedImage(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != 3)
            throw new ArgumentException($"SAM image input must be [B, 3, {ImgSize}, {ImgSize}], got [{string.Join(", ", x.shape)}].");
        if (x.shape[2] != ImgSize || x.shape[3] != ImgSize)
            throw new ArgumentException($"SAM image input must be {ImgSize}×{ImgSize} (this model's img_size), got {x.shape[2]}×{x.shape[3]}; " +
                                        "resize first (FairMedFM) or use Preprocess (official path: longest side = img_size, zero-padded).");
        var y = image_encoder.forward(x);
        int e = Config.ImageEmbeddingSize;
        if (y.dim() != 4 || y.shape[1] != Config.PromptEmbedDim || y.shape[2] != e || y.shape[3] != e)
        {
            var shape = string.Join(", ", y.shape);
            y.Dispose();
            throw new InvalidOperationException($"image encoder returned [{shape}], the decoder needs [B, {Config.PromptEmbedDim}, {e}, {e}].");
        }
        return y;
    }

    // ---- Official path --------------------------------------------------------------------------------------------

    /// <summary>
    /// <c>Sam.preprocess</c>: (x − pixel_mean) / pixel_std on a 0–255 RGB image [3, h, w] or [B, 3, h, w] whose longest
    /// side is at most img_size, then zero padding at the bottom and right to img_size × img_size.
    /// </summary>
    public Tensor Preprocess(Tensor image)
    {
        if ((image.dim() != 3 && image.dim() != 4) || image.shape[^3] != 3)
            throw new ArgumentException($"preprocess expects [3, h, w] or [B, 3, h, w], got [{string.Join(", ", image.shape)}].");
        long h = image.shape[^2], w = image.shape[^1];
        if (h > ImgSize || w > ImgSize)
            throw new ArgumentException($"image {h}×{w} is larger than img_size {ImgSize}: resize its longest side first (ResizeLongestSide).");
        using var scope = NewDisposeScope();
        var mean = tensor(Config.PixelMean.ToArray(), device: image.device).view(-1, 1, 1);
        var std = tensor(Config.PixelStd.ToArray(), device: image.device).view(-1, 1, 1);
        var x = image.to(float32).sub(mean).div(std);
        x = nn.functional.pad(x, [0, ImgSize - w, 0, ImgSize - h]);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>Sam.postprocess_masks</c>: low-res logits → bilinear (align_corners = false) to img_size × img_size, crop to the
    /// un-padded <paramref name="inputSize"/>, bilinear to <paramref name="originalSize"/>.
    /// </summary>
    public Tensor PostprocessMasks(Tensor lowRes, (int H, int W) inputSize, (int H, int W) originalSize)
    {
        if (lowRes.dim() != 4) throw new ArgumentException($"mask logits must be [B, M, h, w], got [{string.Join(", ", lowRes.shape)}].");
        if (inputSize.H <= 0 || inputSize.W <= 0 || inputSize.H > ImgSize || inputSize.W > ImgSize)
            throw new ArgumentException($"input size {inputSize.H}×{inputSize.W} must lie within img_size {ImgSize}.");
        if (originalSize.H <= 0 || originalSize.W <= 0) throw new ArgumentException($"original size {originalSize.H}×{originalSize.W} must be positive.");
        using var scope = NewDisposeScope();
        var m = nn.functional.interpolate(lowRes, [ImgSize, ImgSize], mode: InterpolationMode.Bilinear, align_corners: false);
        m = m.narrow(2, 0, inputSize.H).narrow(3, 0, inputSize.W);
        m = nn.functional.interpolate(m, [originalSize.H, originalSize.W], mode: InterpolationMode.Bilinear, align_corners: false);
        return m.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Prompt encoder + mask decoder on a (cached) image embedding, then <see cref="PostprocessMasks"/>, the mask threshold
    /// and argmax IoU: SamPredictor.predict_torch's steps, with the logits kept. <paramref name="imageEmbedding"/> is
    /// [1, C, h, w] (shared by all B prompt sets) or [B, C, h, w] (one per prompt set). Prompts in the input frame.
    /// </summary>
    public SamOutput Predict(Tensor imageEmbedding, SamPrompt prompt, bool multimaskOutput, (int H, int W) inputSize, (int H, int W) originalSize)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        using var scope = NewDisposeScope();
        var (sparse, dense) = prompt_encoder.Encode(prompt.PointCoords, prompt.PointLabels, prompt.Boxes, prompt.MaskInput);
        var (lowRes, iou) = mask_decoder.Forward(imageEmbedding, prompt_encoder.GetDensePe(), sparse, dense, multimaskOutput);
        var logits = PostprocessMasks(lowRes, inputSize, originalSize);
        var masks = logits.gt(Config.MaskThreshold);
        var best = iou.argmax(1);
        return new SamOutput
        {
            LowResLogits = lowRes.MoveToOuterDisposeScope(),
            IouPredictions = iou.MoveToOuterDisposeScope(),
            MaskLogits = logits.MoveToOuterDisposeScope(),
            Masks = masks.MoveToOuterDisposeScope(),
            BestMaskIndex = best.MoveToOuterDisposeScope(),
        };
    }

    /// <summary>FairMedFM's path: embedding of an S×S image, prompts in that frame, masks at S×S (input = original = S).</summary>
    public SamOutput Predict(Tensor imageEmbedding, SamPrompt prompt, bool multimaskOutput = true) =>
        Predict(imageEmbedding, prompt, multimaskOutput, (ImgSize, ImgSize), (ImgSize, ImgSize));

    /// <summary>
    /// segment-anything <c>Sam.forward</c>: stack the preprocessed images, encode them together, then per image run the
    /// prompts and postprocess to its original size. Prompts must already be in the resized frame (ResizeLongestSide).
    /// </summary>
    public IReadOnlyList<SamOutput> Forward(IReadOnlyList<SamImageRecord> batch, bool multimaskOutput)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Count == 0) return [];
        var outputs = new List<SamOutput>(batch.Count);
        using var scope = NewDisposeScope();
        var input = stack(batch.Select(r => Preprocess(r.Image)).ToArray(), 0);
        var embeddings = EmbedImage(input);
        try
        {
            for (int i = 0; i < batch.Count; i++)
            {
                var r = batch[i];
                var inputSize = ((int)r.Image.shape[^2], (int)r.Image.shape[^1]);
                var o = Predict(embeddings.narrow(0, i, 1), r.Prompt, multimaskOutput, inputSize, r.OriginalSize);
                foreach (var t in new[] { o.LowResLogits, o.IouPredictions, o.MaskLogits, o.Masks, o.BestMaskIndex }) t.MoveToOuterDisposeScope();
                outputs.Add(o);
            }
        }
        catch
        {
            foreach (var o in outputs) o.Dispose();
            throw;
        }
        return outputs;
    }
}
