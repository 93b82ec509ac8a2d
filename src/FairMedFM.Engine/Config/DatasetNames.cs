using System.Collections.Concurrent;
using YamlDotNet.RepresentationModel;

namespace FairMedFM.Engine.Config;

/// <summary>
/// The one name a dataset goes by in failure lines, matrices, reports and traces: its card's <c>name:</c> field. Only a card
/// without a name, or one that cannot be read at all, falls back to the card's file stem. Only the name is read here (not
/// the whole card), so a card that is otherwise invalid is still called by its own name in its failure line.
/// </summary>
public static class DatasetNames
{
    private static readonly ConcurrentDictionary<string, (long Stamp, string Name)> Cache = new();

    public static string Of(string cardPath)
    {
        var stem = Path.GetFileNameWithoutExtension(cardPath);
        try
        {
            var full = Path.GetFullPath(cardPath);
            if (!File.Exists(full)) return stem;
            long stamp = File.GetLastWriteTimeUtc(full).Ticks;
            if (Cache.TryGetValue(full, out var hit) && hit.Stamp == stamp) return hit.Name;
            var name = ReadName(File.ReadAllText(full)) ?? stem;
            Cache[full] = (stamp, name);
            return name;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException) { return stem; }
    }

    /// <summary>The top-level <c>name</c> of a YAML or JSON card (JSON is YAML), or null when there is none or the text does not parse.</summary>
    internal static string? ReadName(string text)
    {
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode map) return null;
            foreach (var (k, v) in map.Children)
                if (k is YamlScalarNode { Value: "name" } && v is YamlScalarNode { Value: { } n } && !string.IsNullOrWhiteSpace(n))
                    return n.Trim();
            return null;
        }
        catch (Exception e) when (e is YamlDotNet.Core.YamlException or InvalidOperationException) { return null; }
    }
}
