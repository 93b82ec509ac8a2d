using System.CommandLine;
using FairMedFM.Client;

var cli = new Cli();
return await cli.Build().Parse(args).InvokeAsync();
