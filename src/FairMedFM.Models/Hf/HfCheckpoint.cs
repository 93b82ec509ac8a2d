using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace FairMedFM.Models.Hf;

/// <summary>
/// Reads the weights of a Hugging Face model folder as one state dict: model.safetensors, pytorch_model.bin, or a
/// sharded checkpoint (model.safetensors.index.json / pytorch_model.bin.index.json, whose "weight_map" names the shard
/// of every tensor). Every shard named by the index must exist and every tensor must be in the shard the index says.
/// </summary>
public static class HfCheckpoint
{
    /// <summary>The file names looked for, in order.</summary>
    public static readonly string[] WeightFileNames =
        ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"];

    /// <summary>The weights file (or index) in <paramref name="folder"/>, or null.</summary>
    public static string? Find(string folder) =>
        WeightFileNames.Select(n => Path.Combine(folder, n)).FirstOrDefault(File.Exists);

    /// <summary>Reads a single file or an index.json with its shards. The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        if (!path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)) return WeightLoader.ReadStateDict(path);
        var index = ReadIndex(path);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var shard in index.Values.Distinct(StringComparer.Ordinal).OrderBy(s => s, StringComparer.Ordinal))
            {
                var shardPath = Path.Combine(dir, shard);
                if (!File.Exists(shardPath))
                    throw new FileNotFoundException($"Shard '{shard}' named by '{path}' is missing.", shardPath);
                var sd = WeightLoader.ReadStateDict(shardPath);
                foreach (var (k, t) in sd)
                {
                    if (!index.TryGetValue(k, out var expectedShard) || expectedShard != shard)
                    {
                        foreach (var x in sd.Values) x.Dispose();
                        throw new InvalidDataException($"'{shardPath}' holds '{k}', which '{path}' places in " +
                                                       (expectedShard is null ? "no shard." : $"'{expectedShard}'."));
                    }
                    result[k] = t;
                }
            }
            var absent = index.Keys.Where(k => !result.ContainsKey(k)).Take(5).ToList();
            if (absent.Count > 0)
                throw new InvalidDataException($"'{path}' lists tensors its shards do not hold: {string.Join(", ", absent)}.");
            return result;
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>The "weight_map" of an index.json: tensor name → shard file name.</summary>
    public static Dictionary<string, string> ReadIndex(string indexPath)
    {
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(indexPath)) as JsonObject;
            var map = root?["weight_map"] as JsonObject
                      ?? throw new InvalidDataException($"'{indexPath}' has no \"weight_map\" object.");
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (k, v) in map)
            {
                var shard = v?.GetValue<string>() ?? throw new InvalidDataException($"'{indexPath}': no shard for '{k}'.");
                if (shard.Contains('/') || shard.Contains('\\') || shard.Contains(".."))
                    throw new InvalidDataException($"'{indexPath}': shard name '{shard}' is not a plain file name.");
                result[k] = shard;
            }
            return result;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{indexPath}' is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>
    /// Writes <paramref name="stateDict"/> as safetensors shards of at most <paramref name="maxShardBytes"/> each plus
    /// model.safetensors.index.json (transformers' layout: model-0000i-of-0000n.safetensors, sorted names).
    /// </summary>
    public static void SaveSharded(string folder, IReadOnlyDictionary<string, Tensor> stateDict, long maxShardBytes)
    {
        Directory.CreateDirectory(folder);
        var shards = new List<List<string>> { new() };
        long size = 0;
        foreach (var k in stateDict.Keys.OrderBy(k => k, StringComparer.Ordinal))
        {
            long n = stateDict[k].NumberOfElements * stateDict[k].ElementSize;
            if (size > 0 && size + n > maxShardBytes) { shards.Add([]); size = 0; }
            shards[^1].Add(k);
            size += n;
        }
        var weightMap = new JsonObject();
        long total = 0;
        for (int i = 0; i < shards.Count; i++)
        {
            var name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafeTensors.Save(Path.Combine(folder, name), shards[i].ToDictionary(k => k, k => stateDict[k]), new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var k in shards[i])
            {
                weightMap[k] = name;
                total += stateDict[k].NumberOfElements * stateDict[k].ElementSize;
            }
        }
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
        File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
