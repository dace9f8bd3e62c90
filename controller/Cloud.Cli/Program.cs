using Cloud.Cli;
using Spectre.Console;

var console = AnsiConsole.Console;
try
{
    return await Commands.Invoke(console, args);
}
catch (CliException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
