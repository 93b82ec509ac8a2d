namespace FairMedFM.Engine;

/// <summary>
/// Where the engine keeps what outlives a process: the content-addressed embedding and prediction caches,
/// converted weights, per-cell results, and where users put FM weights.
/// </summary>
public sealed record Workspace(string CacheDir, string? WeightsDir)
{
    public string EmbeddingsDir => Path.Combine(CacheDir, "embeddings");
    public string TextEmbeddingsDir => Path.Combine(CacheDir, "text-embeddings");
    public string PredictionsDir => Path.Combine(CacheDir, "predictions");
    public string ResultsDir => Path.Combine(CacheDir, "results");
    public string ModelsCacheDir => Path.Combine(CacheDir, "models");
    /// <summary>The append-only audit of computations that ran (<see cref="Cells.ComputationLog"/>).</summary>
    public string ComputationsDir => Path.Combine(CacheDir, Cells.ComputationLog.FolderName);

    /// <summary>Defaults: FAIRMEDFM_CACHE or ./.fairmedfm; FAIRMEDFM_WEIGHTS or ./weights when it exists.</summary>
    public static Workspace FromEnvironment(string? cacheDir = null, string? weightsDir = null)
    {
        cacheDir ??= Environment.GetEnvironmentVariable("FAIRMEDFM_CACHE") ?? Path.Combine(Environment.CurrentDirectory, ".fairmedfm");
        weightsDir ??= Environment.GetEnvironmentVariable("FAIRMEDFM_WEIGHTS");
        if (weightsDir is null && Directory.Exists(Path.Combine(Environment.CurrentDirectory, "weights")))
            weightsDir = Path.Combine(Environment.CurrentDirectory, "weights");
        return new Workspace(Path.GetFullPath(cacheDir), weightsDir is null ? null : Path.GetFullPath(weightsDir));
    }

    /// <summary>Write a file atomically (temp + rename) so a crash never leaves a half-written cache entry.</summary>
    public static void WriteAtomic(string path, Action<Stream> write)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var tmp = path + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp";
        using (var s = File.Create(tmp)) write(s);
        File.Move(tmp, path, overwrite: true);
    }

    public static void WriteAllTextAtomic(string path, string text) =>
        WriteAtomic(path, s => { using var w = new StreamWriter(s); w.Write(text); });
}
