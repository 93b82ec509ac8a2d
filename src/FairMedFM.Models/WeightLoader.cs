using System.Collections;
using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FairMedFM.Models;

/// <summary>A tensor whose shape in the file differs from the module's.</summary>
public sealed record ShapeMismatch(string Name, long[] Expected, long[] InFile)
{
    public override string ToString() => $"{Name}: expected [{string.Join(", ", Expected)}], file has [{string.Join(", ", InFile)}]";
}

/// <summary>Outcome of a state-dict load. Keys are the module's names (after prefix stripping / key mapping).</summary>
public sealed record WeightLoadReport(
    IReadOnlyList<string> Loaded,
    IReadOnlyList<string> Missing,
    IReadOnlyList<string> Unexpected,
    IReadOnlyList<string> MisShaped)
{
    public IReadOnlyList<ShapeMismatch> ShapeMismatches { get; init; } = [];
    public string File { get; init; } = "";
    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0 && MisShaped.Count == 0;
}

/// <summary>Thrown by strict loading when the file's keys or shapes differ from the module's.</summary>
public sealed class WeightLoadException : Exception
{
    public string File { get; }
    public IReadOnlyList<string> Missing { get; }
    public IReadOnlyList<string> Unexpected { get; }
    /// <summary>"name: expected [..], file has [..]" for each mis-shaped tensor.</summary>
    public IReadOnlyList<string> MisShaped { get; }
    public IReadOnlyList<ShapeMismatch> ShapeMismatches { get; }

    public WeightLoadException(string file, WeightLoadReport report)
        : base(Describe(file, report))
    {
        File = file;
        Missing = report.Missing;
        Unexpected = report.Unexpected;
        MisShaped = report.MisShaped;
        ShapeMismatches = report.ShapeMismatches;
    }

    private const int Shown = 20;

    private static string Describe(string file, WeightLoadReport r)
    {
        var sb = new StringBuilder();
        sb.Append($"Weights file '{file}' does not match the module (strict load): {r.Missing.Count} missing, " +
                  $"{r.Unexpected.Count} unexpected, {r.MisShaped.Count} mis-shaped; {r.Loaded.Count} matched.");
        void List(string title, IReadOnlyList<string> items)
        {
            if (items.Count == 0) return;
            sb.Append($"\n{title} ({items.Count}):");
            foreach (var s in items.Take(Shown)) sb.Append("\n  ").Append(s);
            if (items.Count > Shown) sb.Append($"\n  ... and {items.Count - Shown} more");
        }
        List("Missing keys (in module, not in file)", r.Missing);
        List("Unexpected keys (in file, not in module)", r.Unexpected);
        List("Mis-shaped keys", r.MisShaped);
        return sb.ToString();
    }
}

/// <summary>Options beyond strictness and one prefix.</summary>
public sealed class WeightLoadOptions
{
    public bool Strict { get; init; } = true;

    /// <summary>Prefixes removed from file keys, first match wins (e.g. "module.", "encoder.").</summary>
    public IReadOnlyList<string> StripPrefixes { get; init; } = [];

    /// <summary>
    /// When every file key starts with "module." (torch DataParallel/DDP checkpoints) strip it. On by default: such
    /// a file cannot match any module otherwise.
    /// </summary>
    public bool AutoStripDataParallel { get; init; } = true;

    /// <summary>Maps a file key (after prefix stripping) to a module key; return null to drop the tensor.</summary>
    public Func<string, string?>? KeyMap { get; init; }
}

/// <summary>Strict, reporting state-dict loading from .safetensors and PyTorch pickle (.pth/.pt/.bin/.ckpt) files.</summary>
public static class WeightLoader
{
    /// <summary>Top-level wrapper keys of training checkpoints that hold the actual state dict.</summary>
    private static readonly string[] WrapperKeys = ["state_dict", "model", "model_state_dict", "module", "net", "teacher", "student"];

    public static WeightLoadReport Load(nn.Module module, string path, bool strict = true, string? stripPrefix = null)
        => Load(module, path, new WeightLoadOptions
        {
            Strict = strict,
            StripPrefixes = stripPrefix is null ? [] : [stripPrefix],
        });

    public static WeightLoadReport Load(nn.Module module, string path, WeightLoadOptions options)
    {
        var sd = ReadStateDict(path);
        try
        {
            return LoadStateDict(module, sd, options, path);
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Copies <paramref name="stateDict"/> into the module's parameters and buffers (dtype converted to the module's).
    /// Strict: nothing is copied and <see cref="WeightLoadException"/> is thrown on any mismatch. Non-strict: matching
    /// tensors are copied, the rest reported. The caller keeps ownership of the given tensors.
    /// </summary>
    public static WeightLoadReport LoadStateDict(nn.Module module, IReadOnlyDictionary<string, Tensor> stateDict,
                                                 WeightLoadOptions? options = null, string source = "<state dict>")
    {
        options ??= new WeightLoadOptions();
        var mapped = MapKeys(stateDict, options);
        var target = module.state_dict();

        var loaded = new List<string>();
        var missing = new List<string>();
        var misShaped = new List<ShapeMismatch>();
        foreach (var (name, t) in target)
        {
            if (!mapped.TryGetValue(name, out var src)) { missing.Add(name); continue; }
            if (!ShapesCompatible(t.shape, src.shape)) { misShaped.Add(new ShapeMismatch(name, t.shape, src.shape)); continue; }
            loaded.Add(name);
        }
        var unexpected = mapped.Keys.Where(k => !target.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        // copy_ would silently turn integers or booleans into floats: such a tensor is not the weights the file claims to be.
        // Integer buffers (BatchNorm's num_batches_tracked, position ids) are integer in the module too and load as before.
        foreach (var name in loaded)
        {
            var dst = target[name].dtype;
            var src = mapped[name].dtype;
            if (target[name].is_floating_point() && !mapped[name].is_floating_point() && !mapped[name].is_complex())
                throw new InvalidDataException(
                    $"'{source}': tensor '{name}' is {DTypeName(src)} in the file, but the module's parameter is {DTypeName(dst)}: " +
                    "an integer or boolean tensor cannot be floating-point weights (a corrupt or mislabelled file?)");
        }
        var report = new WeightLoadReport(loaded, missing, unexpected, misShaped.Select(m => m.ToString()).ToList())
        {
            ShapeMismatches = misShaped,
            File = source,
        };
        if (options.Strict && !report.IsExact) throw new WeightLoadException(source, report);

        // The scope frees only the temporaries made here (device moves, reshapes), never the caller's tensors.
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            foreach (var name in loaded)
            {
                var dst = target[name];
                dst.copy_(mapped[name].to(dst.device).reshape(dst.shape));
            }
        }
        return report;
    }

    private static string DTypeName(ScalarType t)
    {
        try { return SafeTensors.ToSafeTensorsDType(t); }
        catch (NotSupportedException) { return t.ToString(); }
    }

    // A rank-0 scalar and a one-element [1] tensor are the same value (pickled scalars can come back as [1]).
    private static bool ShapesCompatible(long[] a, long[] b)
    {
        if (a.AsSpan().SequenceEqual(b)) return true;
        static long N(long[] s) => s.Aggregate(1L, (x, y) => x * y);
        return (a.Length == 0 || b.Length == 0) && N(a) == 1 && N(b) == 1;
    }

    private static Dictionary<string, Tensor> MapKeys(IReadOnlyDictionary<string, Tensor> sd, WeightLoadOptions o)
    {
        bool stripDp = o.AutoStripDataParallel && sd.Count > 0 && sd.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal));
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (key, t) in sd)
        {
            string? k = key;
            if (stripDp) k = k["module.".Length..];
            foreach (var p in o.StripPrefixes)
                if (k.StartsWith(p, StringComparison.Ordinal)) { k = k[p.Length..]; break; }
            if (o.KeyMap is not null) k = o.KeyMap(k);
            if (k is null) continue;
            if (!result.TryAdd(k, t))
                throw new InvalidDataException($"Two file keys map to the module key '{k}' (check prefixes / key map).");
        }
        return result;
    }

    /// <summary>
    /// Reads a state dict: safetensors by content (magic-free, so by header check) or PyTorch zip-pickle. Training
    /// checkpoints wrapping the dict under "state_dict"/"model"/… are unwrapped; non-tensor entries are skipped.
    /// The caller owns the tensors.
    /// </summary>
    public static Dictionary<string, Tensor> ReadStateDict(string path)
    {
        if (!System.IO.File.Exists(path)) throw new FileNotFoundException($"Weights file not found: '{path}'.", path);
        if (FileLength(path) == 0) throw new InvalidDataException($"weights file '{path}' is empty (an interrupted download?)");
        try { return ReadStateDictUnchecked(path); }
        catch (Exception e) when (e is EndOfStreamException or IOException or InvalidDataException or System.Text.Json.JsonException or FormatException
                                      && !e.Message.Contains(path, StringComparison.Ordinal))
        {
            // Decoder errors ("End of Central Directory record could not be found") must say which file they are about.
            throw new InvalidDataException($"cannot read weights file '{path}': {e.Message}", e);
        }
    }

    private static Dictionary<string, Tensor> ReadStateDictUnchecked(string path)
    {
        if (IsZip(path))
        {
            if (IsTorchScriptArchive(path))
                throw new InvalidDataException(
                    $"'{path}' is a TorchScript archive (torch.jit.save: it holds code/ and constants.pkl), not a state dict. " +
                    TorchScriptConversion(Path.GetFileName(path), Path.GetFileNameWithoutExtension(path) + ".safetensors"));
            if (ZipCheckpointProblem(path) is { } problem) throw new InvalidDataException(problem);
            return ReadPickle(path);
        }
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || LooksLikeSafeTensors(path))
            return SafeTensors.Load(path);
        throw new InvalidDataException($"'{path}' is neither safetensors nor a PyTorch zip checkpoint (legacy non-zip torch.save files are not supported; re-save with torch>=1.6).");
    }

    /// <summary>How to turn the TorchScript file <paramref name="file"/> into a state dict named <paramref name="output"/> (PyTorch, once).</summary>
    public static string TorchScriptConversion(string file, string output) =>
        "Convert it once with PyTorch: python -c \"import torch; " +
        (output.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
            ? $"from safetensors.torch import save_file; m = torch.jit.load('{file}', map_location='cpu'); " +
              $"save_file({{k: v.float().contiguous() for k, v in m.state_dict().items()}}, '{output}')\""
            : $"m = torch.jit.load('{file}', map_location='cpu'); torch.save({{k: v.float() for k, v in m.state_dict().items()}}, '{output}')\"") +
        $" and put {output} in the weights folder.";

    /// <summary>The length of the file a path names, following symbolic links (the Hugging Face cache links each file to a
    /// blob; FileInfo.Length would give the link's own length).</summary>
    public static long FileLength(string path)
    {
        var fi = new FileInfo(path);
        return fi.LinkTarget is null ? fi.Length : (fi.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? fi).Length;
    }

    /// <summary>
    /// Why a weights file cannot be loaded, found without reading its tensors (for <c>models list</c>): empty, a zip that
    /// is not a torch.save checkpoint or is TorchScript, a safetensors header that is malformed or points past the end of
    /// the file, or neither format; a sharded HF index whose shards are missing or bad. Null when the file looks loadable.
    /// </summary>
    public static string? FileProblem(string path)
    {
        try
        {
            var length = FileLength(path);
            if (length == 0) return $"{Path.GetFileName(path)} is empty (an interrupted download?)";
            if (path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase))
            {
                // The loader's own reading of the index (plain shard names only), so the list and a cell agree.
                var dir = Path.GetDirectoryName(path)!;
                foreach (var shard in Hf.HfCheckpoint.ReadIndex(path).Values.Distinct())
                {
                    var shardPath = Path.Combine(dir, shard);
                    if (shard.Length == 0 || !System.IO.File.Exists(shardPath)) return $"shard '{shard}' named by {Path.GetFileName(path)} is missing";
                    if (FileProblem(shardPath) is { } bad) return bad;
                }
                return null;
            }
            if (IsZip(path))
                return IsTorchScriptArchive(path)
                    ? $"'{path}' is a TorchScript archive, not a state dict. " +
                      TorchScriptConversion(Path.GetFileName(path), Path.GetFileNameWithoutExtension(path) + ".safetensors")
                    : ZipCheckpointProblem(path);
            if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || LooksLikeSafeTensors(path))
            {
                var (entries, _, dataStart) = SafeTensors.ReadHeader(path);
                return SafeTensors.Truncation(entries, dataStart, length, path);
            }
            return $"'{path}' is neither safetensors nor a PyTorch zip checkpoint";
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Whatever goes wrong with one file is that file's problem: `models list` must go on with the others.
            if (e is not (IOException or InvalidDataException or UnauthorizedAccessException or System.Text.Json.JsonException))
                return $"'{path}': {TorchErrors.Clean(e.Message)}";
            return e.Message.Contains(path, StringComparison.Ordinal) || e.Message.Contains(Path.GetFileName(path), StringComparison.Ordinal)
                ? e.Message : $"'{path}': {e.Message}";
        }
    }

    /// <summary>Why a zip file is not a torch.save checkpoint (no data.pkl under its root folder, or not a readable zip), or
    /// null when it has the layout. Cheap: reads the zip directory only.</summary>
    public static string? ZipCheckpointProblem(string path)
    {
        try
        {
            using var zip = System.IO.Compression.ZipFile.OpenRead(path);
            var names = zip.Entries.Select(e => e.FullName).ToList();
            if (names.Any(n => n == "data.pkl" || (n.EndsWith("/data.pkl", StringComparison.Ordinal) && n.Count(c => c == '/') == 1))) return null;
            var shown = string.Join(", ", names.Take(5)) + (names.Count > 5 ? $", … ({names.Count} entries)" : "");
            return $"'{path}' is a zip archive but not a PyTorch checkpoint: no data.pkl inside (entries: {(names.Count == 0 ? "none" : shown)}); " +
                   "expected a file written by torch.save, or .safetensors";
        }
        catch (InvalidDataException e)
        {
            return $"'{path}' starts like a zip archive but cannot be read as one ({e.Message}); a truncated or corrupt download?";
        }
    }

    private static bool IsZip(string path)
    {
        using var fs = System.IO.File.OpenRead(path);
        Span<byte> sig = stackalloc byte[4];
        return fs.Read(sig) == 4 && sig[0] == 0x50 && sig[1] == 0x4b && sig[2] == 0x03 && sig[3] == 0x04;
    }

    /// <summary>
    /// True for a torch.jit.save archive (e.g. OpenAI's CLIP ViT-B-32.pt): a zip with a code/ folder or
    /// constants.pkl under its root folder. A torch.save archive has data.pkl, data/ and version only.
    /// </summary>
    public static bool IsTorchScriptArchive(string path)
    {
        try
        {
            using var zip = System.IO.Compression.ZipFile.OpenRead(path);
            return zip.Entries.Any(e =>
            {
                var parts = e.FullName.Split('/');
                return parts.Length >= 2 && (parts[1] == "code" || (parts.Length == 2 && parts[1] == "constants.pkl"));
            });
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }

    private static bool LooksLikeSafeTensors(string path)
    {
        using var fs = System.IO.File.OpenRead(path);
        Span<byte> b = stackalloc byte[9];
        if (fs.Read(b) < 9) return false;
        ulong n = BitConverter.ToUInt64(b);
        return n > 0 && (long)n < fs.Length && b[8] == (byte)'{';
    }

    private static Dictionary<string, Tensor> ReadPickle(string path)
    {
        IDictionary table;
        try { table = PyTorchUnpickler.UnpickleStateDict(path); }
        catch (Exception e) when (e is FormatException or EndOfStreamException or OverflowException)
        {
            // Bytes that are no pickle at all: the parser's "input string '…' was not in a correct format" says nothing useful.
            throw new InvalidDataException($"'{path}': its data.pkl is not a pickled state dict (unreadable pickle data); " +
                                           "re-save it with torch.save(model.state_dict(), ...) or as .safetensors", e);
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or InvalidCastException or KeyNotFoundException
                                      or IndexOutOfRangeException or ArgumentException or NullReferenceException or InvalidDataException)
        {
            // The unpickler's own messages ("Sequence contains no matching element") say nothing about the file.
            // A cast failure means the pickle holds another kind of object (a list, a whole module) where a dict belongs.
            var why = e is InvalidCastException ? "it holds another kind of object than a dict of tensors" : TorchErrors.Clean(e.Message);
            throw new InvalidDataException($"'{path}': data.pkl is not a PyTorch state dict this loader can read ({why}); " +
                                           "re-save it with torch.save(model.state_dict(), ...) or as .safetensors", e);
        }
        var dict = Unwrap(table);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in dict)
            if (e.Key is string k && e.Value is Tensor t) result[k] = t;
        if (result.Count == 0)
        {
            var keys = dict.Keys.Cast<object?>().Select(k => k?.ToString() ?? "None").Take(8).ToList();
            throw new InvalidDataException($"'{path}' holds no tensors at its top level or under {string.Join("/", WrapperKeys)} " +
                                           $"(top-level keys: {(keys.Count == 0 ? "none" : string.Join(", ", keys))})");
        }
        return result;
    }

    private static IDictionary Unwrap(IDictionary table)
    {
        // A bare state dict holds tensors at the top; a checkpoint holds the dict under a wrapper key.
        bool hasTensors = table.Values.Cast<object?>().Any(v => v is Tensor);
        if (hasTensors) return table;
        foreach (var k in WrapperKeys)
            if (table.Contains(k) && table[k] is IDictionary inner) return Unwrap(inner);
        return table;
    }

    public static string FileSha256(string path)
    {
        using var fs = System.IO.File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }

    /// <summary>
    /// sha256 over the tensors themselves (sorted name, dtype, shape, raw bytes): the same weights give the same hash
    /// whatever file format they came from.
    /// </summary>
    public static string StateDictSha256(IReadOnlyDictionary<string, Tensor> stateDict)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var name in stateDict.Keys.OrderBy(k => k, StringComparer.Ordinal))
        {
            using var scope = NewDisposeScope();
            var t = stateDict[name].detach().cpu().contiguous();
            h.AppendData(Encoding.UTF8.GetBytes($"{name}\0{SafeTensors.ToSafeTensorsDType(t.dtype)}\0{string.Join(",", t.shape)}\0"));
            if (t.NumberOfElements > 0) h.AppendData(t.bytes);
        }
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }
}
