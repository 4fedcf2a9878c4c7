namespace Lisp.Appliance.Cli;

// Placeholder until its issue lands: says so plainly instead of pretending to work.
public static class LigCommand
{
    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        stderr.WriteLine("lisp-decent: this command is not built yet");
        return 2;
    }
}
