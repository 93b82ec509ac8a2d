using System.Text;
using System.Text.Json;

namespace FairMedFM.Engine.Cells;

/// <summary>
/// One heavy computation that actually ran (not a cache hit, not a reused result): a backbone pass over a dataset
/// (<c>kind</c> "embedding", key = the embedding cache key) or the training and evaluation of one cell (<c>kind</c>
/// "training", key = the cell id), with where (origin = silo address or host:pid, device), when, and how it ended. A training
/// writes a "started" record when it takes its device slot and a second record when it ends; an embedding one record at its end.
/// </summary>
public sealed record ComputationRecord
{
    public required string Kind { get; init; }
    public required string Key { get; init; }
    public string? CellId { get; init; }
    public string? Sweep { get; init; }
    public int? Attempt { get; init; }
    public string? Dataset { get; init; }
    public string? Model { get; init; }
    public required string Origin { get; init; }
    /// <summary>The device whose slot it ran in (trainings); null for the embedding stage, which is not pinned to a device.</summary>
    public string? Device { get; init; }
    public int Pid { get; init; }
    /// <summary>"started" (a training began; its end is a second record), "done", "failed" or "cancelled".</summary>
    public required string Status { get; init; }
    /// <summary>Images pushed through the backbone (embeddings).</summary>
    public int? Images { get; init; }
    public string? Error { get; init; }
    public DateTimeOffset StartedUtc { get; init; }
    /// <summary>Null on a "started" record.</summary>
    public DateTimeOffset? FinishedUtc { get; init; }

    /// <summary>Whether this record closes a computation (done, failed or cancelled) rather than announcing one.</summary>
    [System.Text.Json.Serialization.JsonIgnore] public bool Ended => Status != Started;

    public const string Embedding = "embedding";
    public const string Training = "training";
    public const string Started = "started";
}

/// <summary>
/// Append-only audit of what was computed, in <c>&lt;cache&gt;/computations/</c> beside the shared caches: one JSON line per
/// record, one file per writing process (<c>&lt;origin&gt;.jsonl</c>), so writers never share a file — safe on a shared
/// volume (NFS too) without cross-process locks. A line is written with one call and flushed to disk before the caller
/// goes on; a process killed in the middle of a write can leave at most a torn last line, which readers skip. A training whose
/// process was killed leaves its "started" record without an end. <c>cat computations/*.jsonl</c> answers "what
/// ran where, when, how often"; the failure tests count trainings and backbone passes from it.
/// </summary>
public sealed class ComputationLog
{
    public const string FolderName = "computations";
    private readonly object _gate = new();

    public ComputationLog(string directory, string origin)
    {
        if (string.IsNullOrWhiteSpace(origin)) throw new ArgumentException("a computation log needs an origin (silo address or host:pid)");
        Directory = directory;
        Origin = origin;
        FilePath = Path.Combine(directory, FileNameFor(origin));
    }

    public string Directory { get; }
    public string Origin { get; }
    public string FilePath { get; }

    /// <summary>The origin of a process that is not a silo: host and process id.</summary>
    public static string ProcessOrigin => $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>File name of an origin: characters other than letters, digits, '.', '-' become '_'.</summary>
    public static string FileNameFor(string origin) =>
        new string(origin.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' ? c : '_').ToArray()) + ".jsonl";

    /// <summary>Appends one record (Origin and Pid are filled in). Throws <see cref="IOException"/> when the folder is unwritable.</summary>
    public ComputationRecord Append(ComputationRecord record)
    {
        record = record with { Origin = Origin, Pid = Environment.ProcessId };
        var line = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(record, JsonDefaults.Canonical) + "\n");
        lock (_gate)
        {
            System.IO.Directory.CreateDirectory(Directory);
            using var f = new FileStream(FilePath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            f.Write(line);
            f.Flush(flushToDisk: true);
        }
        return record;
    }

    /// <summary>Every record of every writer in <paramref name="directory"/> (none if it does not exist), in file then line order.
    /// A line that does not parse (a torn write of a killed process) is skipped.</summary>
    public static IReadOnlyList<ComputationRecord> ReadAll(string directory)
    {
        var all = new List<ComputationRecord>();
        if (!System.IO.Directory.Exists(directory)) return all;
        foreach (var file in System.IO.Directory.EnumerateFiles(directory, "*.jsonl").Order(StringComparer.Ordinal))
        {
            string text;
            using (var f = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
            using (var r = new StreamReader(f, Encoding.UTF8)) text = r.ReadToEnd();
            foreach (var line in text.Split('\n'))
            {
                if (line.Length == 0) continue;
                try
                {
                    if (JsonSerializer.Deserialize<ComputationRecord>(line, JsonDefaults.Canonical) is { } rec) all.Add(rec);
                }
                catch (JsonException) { }
            }
        }
        return all;
    }
}
