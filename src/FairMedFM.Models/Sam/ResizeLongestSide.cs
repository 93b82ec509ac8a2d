using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Models.Sam;

/// <summary>
/// segment-anything <c>utils/transforms.ResizeLongestSide</c>, the transform the official <c>SamPredictor</c> applies:
/// the image is resized so that its longest side is <c>target_length</c> (= img_size, aspect ratio kept; the short side
/// rounds half up: <c>int(side · scale + 0.5)</c>), and point/box prompts given in the original image's pixel frame are
/// scaled into the resized frame with the same factors per axis (x by new_w / old_w, y by new_h / old_h; computed in
/// float64 as the numpy path does, then stored as float32). <c>Sam.preprocess</c> then pads the resized image at the
/// bottom/right, so resized coordinates are also model-input coordinates.
/// FairMedFM does not use it: its images are already square at the model size, so prompts pass through unchanged.
/// </summary>
public static class ResizeLongestSide
{
    /// <summary><c>get_preprocess_shape(oldh, oldw, long_side_length)</c> → (newh, neww).</summary>
    public static (int H, int W) GetPreprocessShape(int oldH, int oldW, int longSideLength)
    {
        if (oldH <= 0 || oldW <= 0 || longSideLength <= 0)
            throw new ArgumentException($"sizes must be positive (got {oldH}×{oldW}, target {longSideLength}).");
        double scale = longSideLength * 1.0 / Math.Max(oldH, oldW);
        double newH = oldH * scale, newW = oldW * scale;
        return ((int)(newH + 0.5), (int)(newW + 0.5));
    }

    /// <summary><c>apply_coords</c>: [..., 2] (x, y) in the original (H, W) frame → the resized frame, float32.</summary>
    public static Tensor ApplyCoords(Tensor coords, (int H, int W) originalSize, int targetLength)
    {
        if (coords.shape.Length == 0 || coords.shape[^1] != 2)
            throw new ArgumentException($"coordinates must end in an (x, y) axis of 2, got [{string.Join(", ", coords.shape)}].");
        var (newH, newW) = GetPreprocessShape(originalSize.H, originalSize.W, targetLength);
        using var scope = NewDisposeScope();
        var c = coords.to(float64);
        var x = c.select(-1, 0).mul((double)newW / originalSize.W);
        var y = c.select(-1, 1).mul((double)newH / originalSize.H);
        return stack([x, y], -1).to(float32).MoveToOuterDisposeScope();
    }

    /// <summary><c>apply_boxes</c>: [..., 4] (x0, y0, x1, y1) → [N, 4] in the resized frame.</summary>
    public static Tensor ApplyBoxes(Tensor boxes, (int H, int W) originalSize, int targetLength)
    {
        if (boxes.shape.Length == 0 || boxes.shape[^1] != 4)
            throw new ArgumentException($"boxes must end in an axis of 4 (x0, y0, x1, y1), got [{string.Join(", ", boxes.shape)}].");
        using var scope = NewDisposeScope();
        return ApplyCoords(boxes.reshape(-1, 2, 2), originalSize, targetLength).reshape(-1, 4).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>apply_image_torch</c>: [B, C, H, W] → longest side <paramref name="targetLength"/>, bilinear with
    /// antialiasing (align_corners = false). The numpy <c>apply_image</c> resizes uint8 with PIL instead; image loading
    /// and resizing otherwise belong to the data layer.
    /// </summary>
    public static Tensor ApplyImageTorch(Tensor image, int targetLength)
    {
        if (image.dim() != 4) throw new ArgumentException($"image must be [B, C, H, W], got [{string.Join(", ", image.shape)}].");
        var (h, w) = GetPreprocessShape((int)image.shape[2], (int)image.shape[3], targetLength);
        return nn.functional.interpolate(image.to(float32), [h, w], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true);
    }
}
