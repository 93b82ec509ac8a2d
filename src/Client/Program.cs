using System.CommandLine;
using FairMedFM.Client;

var cli = new Cli();
try
{
    // Our own handler below: a user error (unwritable path, unreadable file) is one line, never a stack trace.
    return await cli.InvokeAsync(args, new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
