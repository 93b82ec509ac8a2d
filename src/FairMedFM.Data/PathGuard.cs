namespace FairMedFM.Data;

/// <summary>
/// Confines what grid files and dataset cards can make a process read to its configured data roots. A card submitted
/// to a shared cluster could otherwise name <c>/etc/shadow</c>, another user's data, or a symlink pointing there.
/// Paths are compared after resolving every symbolic link on the way (a link inside a root that points outside is
/// outside). With no roots configured the guard lets everything through (a single user's own machine).
/// </summary>
public sealed class PathGuard
{
    /// <summary>Environment variable holding the roots, separated by the platform's path separator (':' on Linux).</summary>
    public const string EnvironmentVariable = "FAIRMEDFM_DATA_ROOTS";

    public static PathGuard Unconfined { get; } = new(Array.Empty<string>());

    private static PathGuard? _current;

    /// <summary>
    /// The guard dataset loading uses in this process: FAIRMEDFM_DATA_ROOTS when first asked for (a root that does not
    /// exist is a <see cref="DataException"/> on every load — fail closed, never silently unconfined); a host may set it.
    /// </summary>
    public static PathGuard Current
    {
        get => _current ??= FromEnvironment();
        set => _current = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>Canonical (absolute, links resolved) root folders; empty = unconfined.</summary>
    public IReadOnlyList<string> Roots { get; }

    public bool IsConfined => Roots.Count > 0;

    public PathGuard(IEnumerable<string> roots)
    {
        var list = new List<string>();
        foreach (var r in roots)
        {
            if (string.IsNullOrWhiteSpace(r)) continue;
            var canon = Canonical(r.Trim());
            if (!Directory.Exists(canon)) throw new DataException($"data root is not an existing folder: '{r.Trim()}'");
            list.Add(canon.Length > 1 ? canon.TrimEnd(Path.DirectorySeparatorChar) : canon);
        }
        Roots = list;
    }

    /// <summary>Roots from a list separated by <see cref="Path.PathSeparator"/>; null or blank = unconfined.</summary>
    public static PathGuard Parse(string? list) =>
        string.IsNullOrWhiteSpace(list) ? Unconfined : new PathGuard(list.Split(Path.PathSeparator));

    public static PathGuard FromEnvironment() => Parse(Environment.GetEnvironmentVariable(EnvironmentVariable));

    /// <summary>True when <paramref name="path"/>, links resolved, lies inside a root (always true when unconfined).</summary>
    public bool Allows(string path)
    {
        if (!IsConfined) return true;
        var canon = Canonical(path);
        foreach (var root in Roots)
        {
            if (root == "/") return true;
            if (canon == root || canon.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    /// <summary>
    /// Throws a <see cref="DataException"/> naming what asked for the path (the card field, or the CSV file, row and
    /// column) when <paramref name="path"/> is outside every root. <paramref name="what"/> says which path it is.
    /// </summary>
    public void Check(string path, string what, string? file = null, int? row = null, string? column = null, string? field = null)
    {
        if (Allows(path)) return;
        throw new DataException(
            $"{what} '{path}' is outside the configured data roots ({string.Join(Path.PathSeparator, Roots)}; set by {EnvironmentVariable})",
            file, row, column, field);
    }

    /// <summary>
    /// The absolute path with every symbolic link resolved, for paths that exist in part: the existing prefix is
    /// resolved, the rest appended (a file that does not exist yet cannot be a link).
    /// </summary>
    public static string Canonical(string path)
    {
        var full = Path.GetFullPath(path);
        var parts = full.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        var current = Path.GetPathRoot(full) ?? "/";
        int hops = 0;
        for (int i = 0; i < parts.Length; i++)
        {
            var next = Path.Combine(current, parts[i]);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (info.Exists && info.LinkTarget is { } target)
            {
                if (++hops > 40) throw new DataException($"too many levels of symbolic links resolving '{path}'");
                // The link's target replaces this component; resolve it again (it may itself hold links).
                var resolved = Path.GetFullPath(Path.IsPathRooted(target) ? target : Path.Combine(current, target));
                var rest = parts.Skip(i + 1).ToArray();
                parts = resolved.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Concat(rest).ToArray();
                current = Path.GetPathRoot(resolved) ?? "/";
                i = -1;
                continue;
            }
            current = next;
        }
        return current;
    }
}
