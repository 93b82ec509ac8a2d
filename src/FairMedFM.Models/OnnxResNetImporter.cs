using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Onnx;
using static TorchSharp.torch;

namespace FairMedFM.Models;

/// <summary>What one <see cref="OnnxResNetImporter.LoadCntkResNet18(string,string,out CntkImportInfo)"/> call did.</summary>
public sealed record CntkImportInfo(string OnnxPath, string OnnxSha256, string CachePath, bool Converted);

/// <summary>
/// Ports the CNTK ImageNet ResNet-18 ONNX (Microsoft.ML.DnnImageFeaturizer.ResNet18) to <see cref="ResNet"/> with
/// <see cref="ResNetConfig.CntkResNet18"/>. The graph is walked structurally (not by CNTK parameter numbers) and
/// every Conv/BatchNorm/pool attribute is checked against what the TorchSharp module computes, so a different export
/// fails loudly instead of loading into the wrong layers.
/// </summary>
public static class OnnxResNetImporter
{
    /// <summary>Bumped whenever the conversion output changes, so stale caches are not reused.</summary>
    public const int ConverterVersion = 1;

    public const string ModelId = "resnet18-imagenet-cntk";

    private static int _conversions;
    private static readonly object ConvertLock = new();
    private static readonly ConcurrentDictionary<(string, long, DateTime), string> ShaMemo = new();

    /// <summary>How many ONNX → state-dict conversions this process has run (cache misses).</summary>
    public static int ConversionCount => Volatile.Read(ref _conversions);

    public static ResNet LoadCntkResNet18(string onnxPath, string cacheDir) => LoadCntkResNet18(onnxPath, cacheDir, out _);

    /// <summary>
    /// Eval-mode ResNet with the ONNX weights. The converted weights are cached as
    /// <c>{cacheDir}/resnet18-imagenet-cntk.v{ConverterVersion}.{onnx sha256}.safetensors</c>, so conversion runs once.
    /// <see cref="ResNet.WeightsHash"/> is the ONNX file's sha256 (the cache is a pure function of it).
    /// </summary>
    public static ResNet LoadCntkResNet18(string onnxPath, string cacheDir, out CntkImportInfo info)
    {
        ArgumentException.ThrowIfNullOrEmpty(onnxPath);
        ArgumentException.ThrowIfNullOrEmpty(cacheDir);
        string sha = OnnxSha256(onnxPath);
        string cache = Path.Combine(cacheDir, $"{ModelId}.v{ConverterVersion}.{sha}.safetensors");
        bool converted = false;

        void Convert()
        {
            lock (ConvertLock)
            {
                if (File.Exists(cache) && !converted) return; // another thread finished it meanwhile
                var sd = ConvertToStateDict(onnxPath);
                try
                {
                    SafeTensors.Save(cache, sd, new Dictionary<string, string>
                    {
                        ["format"] = "pt",
                        ["source"] = "Microsoft.ML.DnnImageFeaturizer.ResNet18 " + PackagedModels.PackageVersion + " ResNet18.onnx",
                        ["source_onnx_sha256"] = sha,
                        ["converter_version"] = ConverterVersion.ToString(),
                    });
                }
                finally
                {
                    foreach (var t in sd.Values) t.Dispose();
                }
                converted = true;
                Interlocked.Increment(ref _conversions);
            }
        }

        if (!File.Exists(cache)) Convert();
        var model = new ResNet(ModelId, ResNetConfig.CntkResNet18);
        try
        {
            WeightLoader.Load(model, cache, strict: true);
        }
        catch (Exception e) when (!converted && e is WeightLoadException or InvalidDataException or EndOfStreamException or NotSupportedException)
        {
            // A truncated or stale cache file: rebuild it once.
            File.Delete(cache);
            Convert();
            WeightLoader.Load(model, cache, strict: true);
        }
        model.eval();
        model.WeightsHash = sha;
        info = new CntkImportInfo(Path.GetFullPath(onnxPath), sha, cache, converted);
        return model;
    }

    /// <summary>
    /// Reads an ONNX file with a shared read lock. OnnxSharp's ParseFromFile opens it read-write with no sharing, which
    /// takes an exclusive lock: test processes that hard-link the same packaged file then fail with "in use".
    /// </summary>
    internal static ModelProto ParseOnnx(string path)
    {
        using var s = File.OpenRead(path);
        return ModelProto.Parser.ParseFrom(s);
    }

    /// <summary>sha256 of the ONNX file, memoised per (path, size, mtime) because hashing 64 MB costs ~0.2 s.</summary>
    public static string OnnxSha256(string onnxPath)
    {
        var fi = new FileInfo(onnxPath);
        // Memoised on the file itself, not on a symbolic link to it (whose size and time do not change with the file).
        if (fi.LinkTarget is not null) fi = fi.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? fi;
        if (!fi.Exists) throw new FileNotFoundException($"ONNX file not found: '{onnxPath}'.", onnxPath);
        return ShaMemo.GetOrAdd((fi.FullName, fi.Length, fi.LastWriteTimeUtc), _ => WeightLoader.FileSha256(fi.FullName));
    }

    /// <summary>
    /// Converts the ONNX initializers to a torchvision-named state dict for <see cref="ResNetConfig.CntkResNet18"/>
    /// (no fc; num_batches_tracked = 0). The caller owns the tensors.
    /// </summary>
    public static Dictionary<string, Tensor> ConvertToStateDict(string onnxPath)
    {
        var config = ResNetConfig.CntkResNet18;
        var g = ParseOnnx(onnxPath).Graph
                ?? throw new InvalidDataException($"'{onnxPath}' has no graph.");
        var w = new GraphWalker(g, onnxPath);
        var sd = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            string input = g.Input.Select(i => i.Name).First(n => !w.Inits.ContainsKey(n));

            // Stem: conv 7×7/2 → BN → ReLU → max-pool 3×3/2.
            var conv = w.Single(input, "Conv");
            w.Conv(conv, 7, 2, "conv1", sd);
            var bn = w.Single(conv.Output[0], "BatchNormalization");
            w.BatchNorm(bn, "bn1", sd);
            var relu = w.Single(bn.Output[0], "Relu");
            var pool = w.Single(relu.Output[0], "MaxPool");
            w.Expect(pool, "kernel_shape", [3, 3]);
            w.Expect(pool, "strides", [2, 2]);
            w.Expect(pool, "pads", ResNetPadding.CntkOnnx(3, 2));
            string cur = pool.Output[0];

            var counts = new List<int>();
            while (true)
            {
                var consumers = w.ConsumersOf(cur);
                var avg = consumers.FirstOrDefault(n => n.OpType is "AveragePool" or "GlobalAveragePool");
                if (avg is not null)
                {
                    if (avg.OpType == "AveragePool")
                    {
                        // 7×7 window over the 7×7 map at 224²: the global average the module takes.
                        w.Expect(avg, "kernel_shape", [7, 7]);
                        w.Expect(avg, "pads", [0, 0, 0, 0], optional: true);
                    }
                    if (!g.Output.Any(o => o.Name == avg.Output[0]))
                        throw w.Fail($"'{avg.Name}' is not the graph output.");
                    break;
                }
                var convs = consumers.Where(n => n.OpType == "Conv").ToList();
                var main = convs.Where(n => w.Ints(n, "kernel_shape")[0] == 3).ToList();
                var proj = convs.Where(n => w.Ints(n, "kernel_shape")[0] == 1).ToList();
                if (main.Count != 1 || proj.Count > 1 || convs.Count != main.Count + proj.Count)
                    throw w.Fail($"unexpected block structure after '{cur}'.");
                int stride = (int)w.Ints(main[0], "strides")[0];
                bool first = counts.Count == 0;
                if (first || proj.Count == 1) counts.Add(0);
                string p = $"layer{counts.Count}.{counts[^1]}";

                w.Conv(main[0], 3, stride, p + ".conv1", sd);
                var b1 = w.Single(main[0].Output[0], "BatchNormalization");
                w.BatchNorm(b1, p + ".bn1", sd);
                var r1 = w.Single(b1.Output[0], "Relu");
                var c2 = w.Single(r1.Output[0], "Conv");
                w.Conv(c2, 3, 1, p + ".conv2", sd);
                var b2 = w.Single(c2.Output[0], "BatchNormalization");
                w.BatchNorm(b2, p + ".bn2", sd);
                var add = w.Single(b2.Output[0], "Add");
                string shortcut = add.Input.Single(i => i != b2.Output[0]);
                if (proj.Count == 1)
                {
                    w.Conv(proj[0], 1, stride, p + ".downsample.0", sd);
                    var pb = w.Single(proj[0].Output[0], "BatchNormalization");
                    w.BatchNorm(pb, p + ".downsample.1", sd);
                    if (shortcut != pb.Output[0]) throw w.Fail($"projection of {p} does not feed '{add.Name}'.");
                }
                else if (shortcut != cur) throw w.Fail($"identity shortcut of {p} is not the block input.");
                cur = w.Single(add.Output[0], "Relu").Output[0];
                counts[^1]++;
            }
            if (!counts.SequenceEqual(config.Layers))
                throw w.Fail($"stage sizes [{string.Join(",", counts)}], expected [{string.Join(",", config.Layers)}].");
            return sd;
        }
        catch
        {
            foreach (var t in sd.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The mean image of ResNetPreprocess.onnx, float[3·224·224] in **BGR channel order, CHW layout** (channel 0 =
    /// blue): the model's input is <c>BGR(rgb in 0–255) − mean</c>. The graph is checked to be
    /// Split(RGB) → Concat(B,G,R) → Sub(mean).
    /// </summary>
    public static float[] ReadPreprocessMeanImage(string preprocessOnnxPath)
    {
        var g = ParseOnnx(preprocessOnnxPath).Graph
                ?? throw new InvalidDataException($"'{preprocessOnnxPath}' has no graph.");
        var w = new GraphWalker(g, preprocessOnnxPath);
        string input = g.Input.Select(i => i.Name).First(n => !w.Inits.ContainsKey(n));
        var split = w.Single(input, "Split");
        var concat = w.Single(split.Output[0], "Concat");
        if (!concat.Input.SequenceEqual(split.Output.Reverse()) || w.Ints(split, "axis")[0] != 1 || w.Ints(concat, "axis")[0] != 1)
            throw w.Fail("expected Split(axis 1) → Concat of the channels in reverse order (RGB → BGR).");
        var sub = w.Single(concat.Output[0], "Sub");
        if (sub.Input[0] != concat.Output[0]) throw w.Fail("expected BGR − mean.");
        var mean = w.Inits.GetValueOrDefault(sub.Input[1]) ?? throw w.Fail("mean image initializer not found.");
        var data = GraphWalker.Floats(mean);
        if (data.Length != 3 * 224 * 224) throw w.Fail($"mean image has {data.Length} values, expected {3 * 224 * 224}.");
        return data;
    }

    private sealed class GraphWalker
    {
        public readonly Dictionary<string, TensorProto> Inits;
        private readonly Dictionary<string, List<NodeProto>> _consumers = new();
        private readonly string _path;

        public GraphWalker(GraphProto g, string path)
        {
            _path = path;
            Inits = g.Initializer.ToDictionary(t => t.Name);
            foreach (var n in g.Node)
                foreach (var i in n.Input)
                {
                    if (!_consumers.TryGetValue(i, out var l)) _consumers[i] = l = [];
                    l.Add(n);
                }
        }

        public InvalidDataException Fail(string msg) => new($"Unsupported ONNX graph '{_path}': {msg}");

        public List<NodeProto> ConsumersOf(string tensor) => _consumers.GetValueOrDefault(tensor) ?? [];

        public NodeProto Single(string tensor, string op)
        {
            var m = ConsumersOf(tensor).Where(n => n.OpType == op).ToList();
            if (m.Count != 1) throw Fail($"expected one {op} consuming '{tensor}', found {m.Count}.");
            return m[0];
        }

        private AttributeProto? Attr(NodeProto n, string name) => n.Attribute.FirstOrDefault(a => a.Name == name);

        public long[] Ints(NodeProto n, string name)
        {
            var a = Attr(n, name) ?? throw Fail($"'{n.Name}' lacks attribute {name}.");
            return a.Ints.Count > 0 ? a.Ints.ToArray() : [a.I];
        }

        public void Expect(NodeProto n, string name, long[] expected, bool optional = false)
        {
            if (optional && Attr(n, name) is null) return;
            var v = Ints(n, name);
            if (!v.SequenceEqual(expected))
                throw Fail($"'{n.Name}' {name} = [{string.Join(",", v)}], the module computes [{string.Join(",", expected)}].");
        }

        public void Conv(NodeProto n, int k, int s, string key, Dictionary<string, Tensor> sd)
        {
            Expect(n, "kernel_shape", [k, k]);
            Expect(n, "strides", [s, s]);
            Expect(n, "pads", ResNetPadding.CntkOnnx(k, s), optional: k == 1);
            Expect(n, "dilations", [1, 1], optional: true);
            Expect(n, "group", [1], optional: true);
            if (Attr(n, "auto_pad") is { } ap && ap.S.ToStringUtf8() is not ("NOTSET" or "")) throw Fail($"'{n.Name}' uses auto_pad.");
            if (n.Input.Count != 2) throw Fail($"'{n.Name}' has a bias; the module's convs have none.");
            Add(sd, key + ".weight", n.Input[1]);
        }

        public void BatchNorm(NodeProto n, string key, Dictionary<string, Tensor> sd)
        {
            // The module's BatchNorm2d uses eps = 1e-5; the export stores it as float32.
            float eps = Attr(n, "epsilon")?.F ?? 1e-5f;
            if (Math.Abs(eps - 1e-5) > 1e-9) throw Fail($"'{n.Name}' epsilon {eps} ≠ 1e-5.");
            if (Attr(n, "spatial") is { } sp && sp.I != 1) throw Fail($"'{n.Name}' is not spatial BatchNorm.");
            Add(sd, key + ".weight", n.Input[1]);
            Add(sd, key + ".bias", n.Input[2]);
            Add(sd, key + ".running_mean", n.Input[3]);
            Add(sd, key + ".running_var", n.Input[4]);
            sd[key + ".num_batches_tracked"] = tensor(0L);
        }

        private void Add(Dictionary<string, Tensor> sd, string key, string init)
        {
            var t = Inits.GetValueOrDefault(init) ?? throw Fail($"initializer '{init}' for {key} not found.");
            sd[key] = tensor(Floats(t), t.Dims.ToArray());
        }

        public static float[] Floats(TensorProto t)
        {
            if (t.DataType != (int)TensorProto.Types.DataType.Float)
                throw new InvalidDataException($"initializer '{t.Name}' is not float32.");
            if (t.FloatData.Count > 0) return t.FloatData.ToArray();
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw data is little-endian.");
            return MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
        }
    }
}
