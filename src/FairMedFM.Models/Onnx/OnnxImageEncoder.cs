using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.OnnxRuntime;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;
using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Models.Onnx;

/// <summary>How an ONNX FM is run: the file and which of its inputs and outputs the encoder uses.</summary>
public sealed record OnnxEncoderSpec
{
    /// <summary>Absolute path of the .onnx file.</summary>
    public required string OnnxPath { get; init; }

    /// <summary>Input name; null = the model's only image input.</summary>
    public string? Input { get; init; }

    /// <summary>Output name; null = the model's first output.</summary>
    public string? Output { get; init; }

    /// <summary>
    /// How the chosen output becomes one vector per image: "flatten" (default: [B, D], [B, D, 1, 1] …), "cls" (token 0
    /// of [B, T, D]) or "mean" (mean over T of [B, T, D]).
    /// </summary>
    public string Pooling { get; init; } = "flatten";
}

/// <summary>
/// <see cref="IImageEncoder"/> over any FM exported to ONNX, run by ONNX Runtime as a frozen encoder. The input's
/// name, element type and fixed sizes are read from the model: a dynamic batch dimension gets the whole batch in one
/// run, a fixed batch of 1 (or n) is looped over. The output is the one named in the spec or the model's first.
/// On a CUDA device the CUDA execution provider is used; that needs the Microsoft.ML.OnnxRuntime.Gpu.Linux package,
/// which a build with -p:FairMedFMCuda=true references instead of the CPU one.
/// </summary>
public sealed class OnnxImageEncoder : IImageEncoder
{
    public const string Family = "onnx";

    /// <summary>File name of a user card in the weights folder: &lt;weights&gt;/&lt;id&gt;/onnx-card.json.</summary>
    public const string CardFileName = "onnx-card.json";

    private readonly InferenceSession _session;
    private readonly string _input;
    private readonly string _output;
    private readonly long[] _inputDims;
    private readonly long _fixedBatch; // 0 = dynamic
    private readonly string _pooling;
    private bool _disposed;

    public string ModelId { get; }
    public int FeatureDim { get; }
    public string WeightsHash { get; }
    public OnnxEncoderSpec Spec { get; }
    public IReadOnlyList<string> InputNames => _session.InputMetadata.Keys.ToList();
    public IReadOnlyList<string> OutputNames => _session.OutputMetadata.Keys.ToList();

    public OnnxImageEncoder(string modelId, OnnxEncoderSpec spec, int? featureDim = null, Device? device = null, int intraOpThreads = 0)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (!File.Exists(spec.OnnxPath)) throw new FileNotFoundException($"ONNX file of model '{modelId}' not found: '{spec.OnnxPath}'.", spec.OnnxPath);
        if (spec.Pooling is not ("flatten" or "cls" or "mean"))
            throw new ArgumentException($"Model '{modelId}': pooling '{spec.Pooling}' is not flatten, cls or mean.");
        ModelId = modelId;
        Spec = spec;
        _pooling = spec.Pooling;
        try { _session = new InferenceSession(spec.OnnxPath, CreateSessionOptions(device, intraOpThreads)); }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"'{spec.OnnxPath}' (model '{modelId}') cannot be loaded by ONNX Runtime: {e.Message}", e);
        }
        try
        {
            var inputs = _session.InputMetadata;
            if (spec.Input is { } inName)
            {
                if (!inputs.ContainsKey(inName))
                    throw new ArgumentException($"Model '{modelId}': no input '{inName}'; inputs: {string.Join(", ", inputs.Keys)}.");
                _input = inName;
            }
            else if (inputs.Count == 1) _input = inputs.Keys.Single();
            else throw new ArgumentException($"Model '{modelId}' has inputs {string.Join(", ", inputs.Keys)}: name the image input.");
            var im = inputs[_input];
            if (im.ElementDataType != TensorElementType.Float)
                throw new NotSupportedException($"Model '{modelId}': input '{_input}' is {im.ElementDataType}, only float32 inputs are supported.");
            _inputDims = im.Dimensions.Select(d => (long)d).ToArray();
            if (_inputDims.Length != 4 || (_inputDims[1] > 0 && _inputDims[1] != 3))
                throw new NotSupportedException($"Model '{modelId}': input '{_input}' has shape [{string.Join(",", _inputDims)}], expected [B,3,H,W].");
            _fixedBatch = _inputDims[0] > 0 ? _inputDims[0] : 0;

            var outputs = _session.OutputMetadata;
            _output = spec.Output ?? outputs.Keys.First();
            if (!outputs.ContainsKey(_output))
                throw new ArgumentException($"Model '{modelId}': no output '{_output}'; outputs: {string.Join(", ", outputs.Keys)}.");
            int? declared = PerSampleSize(outputs[_output].Dimensions);
            if (featureDim is { } fd && declared is { } dd && fd != dd)
                throw new ArgumentException($"Model '{modelId}': the card says feature_dim {fd} but output '{_output}' gives {dd}.");
            FeatureDim = featureDim ?? declared ?? ProbeFeatureDim();
            WeightsHash = WeightLoader.FileSha256(spec.OnnxPath);
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Session options: CPU, or the CUDA execution provider when <paramref name="device"/> is a CUDA device (then the
    /// GPU build of ONNX Runtime must be the one referenced, see the class remarks).
    /// </summary>
    public static SessionOptions CreateSessionOptions(Device? device, int intraOpThreads = 0)
    {
        var o = new SessionOptions { InterOpNumThreads = 1 };
        if (intraOpThreads > 0) o.IntraOpNumThreads = intraOpThreads;
        if (device is { type: DeviceType.CUDA })
        {
            try
            {
                o.AppendExecutionProvider_CUDA(Math.Max(0, device.index));
            }
            catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
            {
                o.Dispose();
                throw new NotSupportedException(
                    "ONNX Runtime's CUDA execution provider is not available: build with -p:FairMedFMCuda=true (references " +
                    "Microsoft.ML.OnnxRuntime.Gpu.Linux) on a machine with CUDA 12 and cuDNN 9. " + e.Message, e);
            }
        }
        return o;
    }

    // Elements per sample of the pooled output, when the metadata fixes them.
    private int? PerSampleSize(int[] dims)
    {
        var rest = dims.Skip(1).ToArray();
        if (_pooling != "flatten")
        {
            if (rest.Length != 2) throw new NotSupportedException($"Model '{ModelId}': pooling '{_pooling}' needs a [B, T, D] output, '{_output}' has rank {dims.Length}.");
            return rest[1] > 0 ? rest[1] : null;
        }
        return rest.All(d => d > 0) ? rest.Aggregate(1, (a, b) => a * b) : null;
    }

    private int ProbeFeatureDim()
    {
        long h = _inputDims[2] > 0 ? _inputDims[2] : 224, w = _inputDims[3] > 0 ? _inputDims[3] : 224;
        using var x = zeros(1, 3, h, w);
        using var f = Run(x);
        return (int)f.shape[1];
    }

    public Tensor Encode(Tensor images)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"Encode expects [B,3,H,W], got [{string.Join(",", images.shape)}].", nameof(images));
        for (int d = 2; d < 4; d++)
            if (_inputDims[d] > 0 && images.shape[d] != _inputDims[d])
                throw new ArgumentException($"Model '{ModelId}' takes {_inputDims[2]}×{_inputDims[3]} images, got {images.shape[2]}×{images.shape[3]}.");
        using var scope = NewDisposeScope();
        var x = images.detach().to(float32).cpu().contiguous();
        long b = x.shape[0];
        Tensor result;
        if (_fixedBatch == 0) result = Run(x);
        else
        {
            var parts = new List<Tensor>();
            for (long s = 0; s < b; s += _fixedBatch)
            {
                long n = Math.Min(_fixedBatch, b - s);
                var chunk = x.narrow(0, s, n);
                if (n < _fixedBatch) chunk = cat([chunk, zeros(_fixedBatch - n, x.shape[1], x.shape[2], x.shape[3])], 0);
                parts.Add(Run(chunk).narrow(0, 0, n));
            }
            result = cat(parts, 0);
        }
        if (result.shape[1] != FeatureDim)
            throw new InvalidOperationException($"Model '{ModelId}': output gives {result.shape[1]} features per image, expected {FeatureDim}.");
        if (images.device.type != DeviceType.CPU) result = result.to(images.device);
        return result.MoveToOuterDisposeScope();
    }

    // One session run on a contiguous CPU float batch → [n, features].
    private Tensor Run(Tensor x)
    {
        var data = x.data<float>().ToArray();
        using var input = OrtValue.CreateTensorValueFromMemory(data, x.shape);
        using var ro = new RunOptions();
        using var outs = _session.Run(ro, [_input], [input], [_output]);
        var o = outs[0];
        if (o.GetTensorTypeAndShape().ElementDataType != TensorElementType.Float)
            throw new NotSupportedException($"Model '{ModelId}': output '{_output}' is not float32.");
        var shape = o.GetTensorTypeAndShape().Shape;
        var t = tensor(o.GetTensorDataAsSpan<float>().ToArray(), shape);
        if (shape.Length == 0 || shape[0] != x.shape[0])
            throw new InvalidOperationException($"Model '{ModelId}': output '{_output}' has shape [{string.Join(",", shape)}] for a batch of {x.shape[0]}.");
        return _pooling switch
        {
            "cls" => t.select(1, 0),
            "mean" => t.mean([1]),
            _ => t.reshape(shape[0], -1),
        };
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _session.Dispose();
    }

    // ---- cards ----

    public static bool Handles(ModelCard card) => card.Family == Family;

    public static IImageEncoder Create(ModelCard card, string? weightsDir, Device? device = null)
    {
        var spec = card.Onnx ?? throw new InvalidOperationException($"Card '{card.Id}' has no ONNX spec.");
        var encoder = new OnnxImageEncoder(card.Id, spec, card.FeatureDim > 0 ? card.FeatureDim : null, device);
        // A model with a fixed input size must be fed that size: say so now, naming the card's key, rather than after the
        // whole dataset has been pre-processed to a size the model cannot take.
        if (encoder._inputDims[2] > 0 && encoder._inputDims[3] > 0 && (encoder._inputDims[2] != card.ImageSize || encoder._inputDims[3] != card.ImageSize))
        {
            var (h, w) = (encoder._inputDims[2], encoder._inputDims[3]);
            encoder.Dispose();
            throw new ArgumentException($"Model '{card.Id}': the card's image_size is {card.ImageSize}, but input '{encoder._input}' of '{spec.OnnxPath}' takes {h}×{w} images; set \"image_size\": {h}.");
        }
        return encoder;
    }

    /// <summary>Largest <c>image_size</c> an ONNX card may declare.</summary>
    public const int MaxImageSize = 4096;

    private static readonly string[] CardKeys = ["id", "onnx", "input", "output", "pooling", "image_size", "feature_dim", "normalization", "license", "source"];

    /// <summary>
    /// Reads a user's ONNX model card (JSON). Keys: id, onnx (path relative to the card, inside the weights folder), input,
    /// output, pooling, image_size (&gt; 0), feature_dim (&gt; 0; absent = read from the model), normalization
    /// ({"kind": "meanstd", "mean": [..], "std": [..]} or {"kind": "dataset"}), license, source. Unknown keys are errors.
    /// <paramref name="weightsDir"/> is the folder the ONNX file must lie in (default: the folder above the card's, as in
    /// &lt;weights&gt;/&lt;id&gt;/onnx-card.json): weights are read only from the weights folder.
    /// </summary>
    public static ModelCard LoadCard(string path, string? weightsDir = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX model card not found: '{path}'.", path);
        InvalidDataException Bad(string msg) => new($"ONNX model card '{path}': {msg}");
        JsonObject o;
        try
        {
            o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"'{path}' is not a JSON object.");
            _ = o.Count;
        }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not valid JSON{Hf.HfConfigJson.Describe(e)}", e); }
        catch (ArgumentException e) { throw Bad($"a key appears twice ({e.Message})."); }
        foreach (var (k, _) in o)
            if (!CardKeys.Contains(k)) throw Bad($"unknown key '{k}' (known: {string.Join(", ", CardKeys)}).");
        string? Str(JsonObject obj, string k, string name)
        {
            if (obj[k] is not { } n) return null;
            return n is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Bad($"'{name}' must be a string, not {n.ToJsonString()}.");
        }
        int? PositiveInt(string k)
        {
            if (o[k] is not { } n) return null;
            if (n is JsonValue v && v.TryGetValue<int>(out var i))
                return i > 0 ? i : throw Bad($"'{k}' must be a positive integer, not {i}.");
            throw Bad($"'{k}' must be a positive integer, not {n.ToJsonString()}.");
        }
        string Req(string k) => Str(o, k, k) is { Length: > 0 } v ? v : throw Bad($"'{k}' is required.");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var root = Path.GetFullPath(weightsDir ?? Path.GetDirectoryName(dir) ?? dir);
        var onnxName = Req("onnx");
        if (Path.IsPathRooted(onnxName))
            throw Bad($"'onnx' is an absolute path ('{onnxName}'); give it relative to the card, inside the weights folder '{root}' " +
                      "(weights are read only from the weights folder).");
        var onnx = Path.GetFullPath(Path.Combine(dir, onnxName));
        var rootPrefix = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        if (!onnx.StartsWith(rootPrefix, StringComparison.Ordinal))
            throw Bad($"'onnx' ('{onnxName}') points outside the weights folder '{root}' (weights are read only from the weights folder).");
        int imageSize = PositiveInt("image_size") ?? throw Bad("'image_size' is required.");
        // Pre-processing holds a batch of images of this side; past a few thousand pixels that is no image model's input.
        if (imageSize > MaxImageSize) throw Bad($"'image_size' is {imageSize}; at most {MaxImageSize} pixels.");
        int featureDim = PositiveInt("feature_dim") ?? 0;
        var norm = o["normalization"] as JsonObject ?? throw Bad("'normalization' is required ({\"kind\": \"meanstd\", \"mean\": [..], \"std\": [..]} or {\"kind\": \"dataset\"}).");
        var kind = Str(norm, "kind", "normalization.kind") ?? throw Bad("normalization.kind is required.");
        float[]? Floats(string k)
        {
            if (norm[k] is null) return null;
            if (norm[k] is not JsonArray a) throw Bad($"normalization.{k} must be an array of numbers.");
            return a.Select(v => v is JsonValue jv && jv.TryGetValue<float>(out var f) ? f
                                 : throw Bad($"normalization.{k} must be an array of numbers, not {a.ToJsonString()}.")).ToArray();
        }
        float[]? mean = Floats("mean"), std = Floats("std");
        if (kind == "meanstd" && (mean?.Length != 3 || std?.Length != 3 || std.Any(x => x <= 0)))
            throw Bad("normalization 'meanstd' needs mean and std of 3 values each (std > 0).");
        if (kind is not ("meanstd" or "dataset")) throw Bad($"normalization.kind '{kind}' is not meanstd or dataset.");
        var pooling = Str(o, "pooling", "pooling") ?? "flatten";
        if (pooling is not ("flatten" or "cls" or "mean")) throw Bad($"'pooling' is '{pooling}', not flatten, cls or mean.");
        return new ModelCard
        {
            Id = Req("id"),
            Family = Family,
            Onnx = new OnnxEncoderSpec
            {
                OnnxPath = onnx,
                Input = Str(o, "input", "input"),
                Output = Str(o, "output", "output"),
                Pooling = pooling,
            },
            FeatureDim = featureDim,
            ImageSize = imageSize,
            WeightsFile = null,
            NormalizationKind = kind,
            Mean = mean,
            Std = std,
            License = Str(o, "license", "license"),
            Source = Str(o, "source", "source") ?? $"ONNX model card {path}",
        };
    }

    /// <summary>
    /// The user's ONNX cards in <paramref name="weightsDir"/> (&lt;weights&gt;/&lt;id&gt;/onnx-card.json), each with its
    /// status for <c>models list</c>: found (the ONNX file is there and not empty) or unusable with the reason. Built-in ids
    /// are skipped (they win over a card of the same name).
    /// </summary>
    public static IReadOnlyList<(string Id, ModelCard? Card, string Status, bool Available)> ListCards(string? weightsDir, IEnumerable<string> builtInIds)
    {
        var result = new List<(string, ModelCard?, string, bool)>();
        if (string.IsNullOrEmpty(weightsDir) || !Directory.Exists(weightsDir)) return result;
        var builtIn = new HashSet<string>(builtInIds, StringComparer.OrdinalIgnoreCase);
        IEnumerable<string> dirs;
        try { dirs = Directory.EnumerateDirectories(weightsDir).OrderBy(d => d, StringComparer.Ordinal).ToList(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return result; }
        foreach (var d in dirs)
        {
            var id = Path.GetFileName(d);
            var cardPath = Path.Combine(d, CardFileName);
            if (!File.Exists(cardPath)) continue;
            if (builtIn.Contains(id))
            {
                // The built-in card wins (its file name is what a cell loads): say so rather than ignore the user's card.
                result.Add((id, null, $"unusable: '{cardPath}' is ignored: '{id}' is a built-in model (give the ONNX card another id and folder)", false));
                continue;
            }
            try
            {
                var card = LoadCard(cardPath, weightsDir);
                if (!string.Equals(card.Id, id, StringComparison.OrdinalIgnoreCase))
                    result.Add((id, card, $"unusable: '{cardPath}' declares id '{card.Id}', not '{id}'", false));
                else if (!File.Exists(card.Onnx!.OnnxPath))
                    result.Add((id, card, $"missing: '{card.Onnx.OnnxPath}' named by {CardFileName}", false));
                else if (WeightLoader.FileLength(card.Onnx.OnnxPath) == 0)
                    result.Add((id, card, $"unusable: '{card.Onnx.OnnxPath}' is empty", false));
                else
                    result.Add((id, card, $"found: {id}/{Path.GetRelativePath(d, card.Onnx.OnnxPath)}", true));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                result.Add((id, null, "unusable: " + e.Message, false));
            }
        }
        return result;
    }
}
