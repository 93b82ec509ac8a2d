using System.Runtime.InteropServices;
using FairMedFM.Client;

// Cli.InvokeAsync reports user errors and interruptions itself (one line, documented exit codes).
var code = await new Cli().InvokeAsync(args);
if (code == Cli.ExitInterrupted && (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()))
{
    // After Ctrl-C a backbone forward may still be running in libtorch on a worker thread; a normal exit tears down the
    // runtime under it (segmentation fault). Leave at once instead: every finished cell and embedding is already on disk
    // (written atomically), exactly as after a SIGKILL, which the cache and the ledger are built to survive.
    Console.Out.Flush();
    Console.Error.Flush();
    Posix.Exit(code);
}
return code;

internal static class Posix
{
    [DllImport("libc", EntryPoint = "_exit")]
    internal static extern void Exit(int status);
}
