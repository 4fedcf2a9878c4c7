using Lisp.ControlPlane;

namespace Lisp.Appliance.Hosting;

/// <summary>
/// One line per event on stdout: "2026-12-01T05:00:00.123Z info  registration-accepted [0]10.1.1.0/24 ...".
/// Thread-safe; lines below the configured level are dropped before formatting.
/// </summary>
public sealed class Log(LogLevel minimum, TextWriter output)
{
    private readonly object _gate = new();

    public LogLevel Minimum { get; } = minimum;

    public static LogLevel ParseLevel(string s) => s switch
    {
        "debug" => LogLevel.Debug,
        "warning" or "warn" => LogLevel.Warning,
        "error" => LogLevel.Error,
        _ => LogLevel.Info,
    };

    public void Write(LogLevel level, string evt, string message)
    {
        if (level < Minimum) return;
        string line = $"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {Name(level),-5} {evt} {message}";
        lock (_gate)
        {
            output.WriteLine(line);
            output.Flush();
        }
    }

    public void Info(string evt, string message) => Write(LogLevel.Info, evt, message);
    public void Warn(string evt, string message) => Write(LogLevel.Warning, evt, message);
    public void Error(string evt, string message) => Write(LogLevel.Error, evt, message);

    private static string Name(LogLevel l) => l switch
    {
        LogLevel.Debug => "debug",
        LogLevel.Info => "info",
        LogLevel.Warning => "warn",
        _ => "error",
    };
}
