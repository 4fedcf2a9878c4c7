using System.Runtime.InteropServices;

namespace Lisp.Appliance.Cli;

/// <summary>
/// SIGHUP is the reload request. A process started with SIGHUP ignored (`nohup lisp-decent run &`, some supervisors)
/// inherits that, and the .NET runtime then never delivers the signal to a <see cref="PosixSignalRegistration"/>:
/// reloads were lost without a word (found by running the suite under nohup). Resetting the disposition to the
/// default before registering lets the registration take it; the registered handler cancels the default action,
/// so a hangup reloads instead of killing the node.
/// </summary>
internal static partial class SignalDisposition
{
    private const int SigHup = 1;
    private static readonly nint SigDfl = 0;

    /// <summary>Returns true when SIGHUP had been ignored (and is now back to the default, for the registration to take).</summary>
    public static bool UnignoreHangup() => Signal(SigHup, SigDfl) == 1; // SIG_IGN is 1

    [LibraryImport("libc", EntryPoint = "signal")]
    private static partial nint Signal(int signal, nint handler);
}
