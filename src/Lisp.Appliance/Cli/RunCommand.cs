namespace Lisp.Appliance.Cli;

// Placeholder until the control-plane issue lands: without a config it shows the embedded seed demo.
public static class RunCommand
{
    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Count > 0)
        {
            stderr.WriteLine("lisp-decent run: the control plane is not built yet; only the embedded demo runs");
            return 2;
        }
        return DemoCommand.Run(args, stdout, stderr);
    }
}
