using Lisp.Appliance.Cli;

namespace Lisp.Appliance;

public static class Program
{
    public const string Help = """
        lisp-decent: a LISP xTR that is its own decentralized mapping system (LISP-Decent, RFC 9962).

        Usage: lisp-decent COMMAND [options]      (lisp-decent COMMAND --help for each command's options)

        Commands:
          run            run the appliance (control plane roles, mapping system); no --config = embedded demo node
          lig            send a Map-Request for an EID and print the Map-Reply (LISP Internet Groper)
          show           show a running node's status, site-table, map-cache, registrations or counters
          decent-index   print the LISP-Decent pull-mode index and DNS name of EIDs
          decode         decode LISP control messages from hex, a vector file or a pcap capture
          load           load generator for map-servers / map-resolvers (register, request, mixed, refresh, sink)
          demo           decode the seed's Map-Request packets (embedded data)
          version        print version, commit, build date, architecture, static/dynamic, crypto backend

        Options:
          -h, --help     show this help
        """;

    public static int Main(string[] args)
    {
        try
        {
            return Dispatch(args, Console.Out, Console.Error);
        }
        catch (Exception e)
        {
            // Last line of defence: an operator gets one clear line, not a stack trace from a native binary.
            Console.Error.WriteLine($"lisp-decent: internal error: {e.GetType().Name}: {e.Message}");
            return 70;
        }
    }

    public static int Dispatch(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            stdout.WriteLine(Help);
            return args.Length == 0 ? 2 : 0;
        }
        var rest = args[1..];
        switch (args[0])
        {
            case "decode":
                return DecodeCommand.Run(rest, stdout, stderr);
            case "run":
                return RunCommand.Run(rest, stdout, stderr);
            case "lig":
                return LigCommand.Run(rest, stdout, stderr);
            case "decent-index":
                return DecentIndexCommand.Run(rest, stdout, stderr);
            case "show":
                return ShowCommand.Run(rest, stdout, stderr);
            case "load":
                return LoadCommand.Run(rest, stdout, stderr);
            case "demo":
                return DemoCommand.Run(rest, stdout, stderr);
            case "version" or "--version":
                return VersionCommand.Run(rest, stdout, stderr);
            default:
                stderr.WriteLine($"lisp-decent: unknown command '{args[0]}' (see lisp-decent --help)");
                return 2;
        }
    }
}
