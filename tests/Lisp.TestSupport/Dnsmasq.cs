using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Xunit;

namespace Lisp.TestSupport;

/// <summary>
/// A real dnsmasq serving A/AAAA records from a hosts file, on 127.0.0.1 and a free port, for DNS tests.
/// <list type="bullet">
/// <item>No upstream, no /etc/hosts, no config file, no pid file; logs (queries included) to its stderr,
/// which is kept in <see cref="Log"/>.</item>
/// <item>Records live in an --addn-hosts file in a temp folder: <see cref="SetRecords"/> rewrites it and
/// sends SIGHUP, then waits until dnsmasq says it re-read the file.</item>
/// <item>Domains in <c>localDomains</c> (default "test") are answered locally only: unknown names there
/// get NXDOMAIN (anything else gets REFUSED, as there is no upstream).</item>
/// <item><see cref="Stop"/> kills the process (the port is then closed: queries fail);
/// <see cref="Start"/> starts it again on the same port. Dispose kills it and removes the folder.</item>
/// </list>
/// Use <see cref="SkipIfMissing"/> first in a [SkippableFact].
/// </summary>
public sealed partial class Dnsmasq : IDisposable
{
    public const string DefaultPath = "/usr/sbin/dnsmasq";

    private readonly string _dir;
    private readonly string _hostsPath;
    private readonly int _localTtl;
    private readonly string[] _localDomains;
    private readonly StringBuilder _log = new();
    private readonly object _lock = new();
    private readonly Action<string>? _output;
    private Process? _process;
    private int _reads;

    public int Port { get; private set; }
    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);
    public bool Running => _process is { HasExited: false };

    /// <summary>Everything dnsmasq wrote so far (start-up, reloads, queries).</summary>
    public string Log
    {
        get { lock (_lock) return _log.ToString(); }
    }

    public static string? Executable => File.Exists(DefaultPath) ? DefaultPath : null;

    /// <summary>Skips the calling [SkippableFact] (with the reason) when dnsmasq is not installed.</summary>
    public static void SkipIfMissing() =>
        Skip.If(Executable is null, $"dnsmasq not found at {DefaultPath} (apt-get install dnsmasq-base)");

    private Dnsmasq(int localTtl, string[] localDomains, Action<string>? output)
    {
        _localTtl = localTtl;
        _localDomains = localDomains;
        _output = output;
        _dir = Directory.CreateTempSubdirectory("dnsmasq-test-").FullName;
        _hostsPath = System.IO.Path.Combine(_dir, "hosts");
    }

    /// <summary>
    /// Starts dnsmasq serving <paramref name="records"/> (name, address) with TTL <paramref name="localTtl"/>.
    /// <paramref name="start"/> false only prepares it (port chosen, file written) for a server-down-at-start test.
    /// </summary>
    public static Dnsmasq Create(IEnumerable<(string Name, string Address)> records, int localTtl = 1,
        bool start = true, IEnumerable<string>? localDomains = null, Action<string>? output = null)
    {
        var d = new Dnsmasq(localTtl, (localDomains ?? ["test"]).ToArray(), output);
        try
        {
            d.WriteHosts(records);
            d.Port = Loopback.FreeUdpPort();
            if (start)
            {
                // A port that was free a moment ago can be taken (UDP or TCP) by now: try a few.
                for (int attempt = 0; ; attempt++)
                {
                    try
                    {
                        d.Start();
                        break;
                    }
                    catch (InvalidOperationException) when (attempt < 3)
                    {
                        d.Port = Loopback.FreeUdpPort();
                    }
                }
            }
            return d;
        }
        catch
        {
            d.Dispose();
            throw;
        }
    }

    /// <summary>Starts (again) on <see cref="Port"/>; waits until it answers. Throws when it does not start.</summary>
    public void Start()
    {
        if (Running) return;
        var exe = Executable ?? throw new InvalidOperationException("dnsmasq is not installed");
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        foreach (var a in Arguments()) psi.ArgumentList.Add(a);
        int readsBefore = Volatile.Read(ref _reads);
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        p.ErrorDataReceived += (_, e) => OnLine(e.Data);
        p.OutputDataReceived += (_, e) => OnLine(e.Data);
        if (!p.Start()) throw new InvalidOperationException("dnsmasq did not start");
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        _process = p;

        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(15))
        {
            if (p.HasExited)
            {
                p.WaitForExit();
                _process = null;
                throw new InvalidOperationException($"dnsmasq exited at start (code {p.ExitCode}): {Log}");
            }
            if (Volatile.Read(ref _reads) > readsBefore && Probe()) return;
            Thread.Sleep(20);
        }
        Stop();
        throw new InvalidOperationException("dnsmasq did not answer within 15 s: " + Log);
    }

    /// <summary>Kills dnsmasq (its port stops answering). Safe to call when not running.</summary>
    public void Stop()
    {
        var p = _process;
        _process = null;
        if (p is null) return;
        try
        {
            if (!p.HasExited)
            {
                p.Kill();
                p.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        p.Dispose();
    }

    /// <summary>Replaces the served records and makes a running dnsmasq re-read them (SIGHUP); waits for the reload.</summary>
    public void SetRecords(IEnumerable<(string Name, string Address)> records)
    {
        WriteHosts(records);
        var p = _process;
        if (p is null || p.HasExited) return;
        int before = Volatile.Read(ref _reads);
        if (SendSignal(p.Id, SigHup) != 0) throw new InvalidOperationException($"kill -HUP {p.Id} failed: errno {Marshal.GetLastPInvokeError()}");
        var sw = Stopwatch.StartNew();
        while (Volatile.Read(ref _reads) == before)
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(5)) throw new InvalidOperationException("dnsmasq did not reload its hosts file: " + Log);
            Thread.Sleep(10);
        }
    }

    /// <summary>Records "0.ms.test" -> 127.0.1.1, 127.0.1.2; "1.ms.test" -> 127.0.2.1, 127.0.2.2 ... (the seed's DNS slide on loopback).</summary>
    public static IEnumerable<(string Name, string Address)> SeedLikeRecords(string suffix, int modulus, int perName = 2)
    {
        for (int i = 0; i < modulus; i++)
        {
            for (int j = 1; j <= perName; j++) yield return ($"{i}.{suffix}", $"127.0.{i + 1}.{j}");
        }
    }

    public void Dispose()
    {
        Stop();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private IEnumerable<string> Arguments()
    {
        yield return "--keep-in-foreground";
        yield return "--conf-file=/dev/null";
        yield return "--no-resolv";
        yield return "--no-hosts";
        yield return "--no-poll";
        yield return "--pid-file=";
        yield return "--bind-interfaces";
        yield return "--listen-address=127.0.0.1";
        yield return "--port=" + Port;
        yield return "--local-ttl=" + _localTtl;
        yield return "--addn-hosts=" + _hostsPath;
        yield return "--log-queries";
        yield return "--log-facility=-";
        foreach (var d in _localDomains) yield return $"--local=/{d}/";
        // As root, dnsmasq would switch to "nobody", which cannot read our 0700 temp folder on SIGHUP.
        if (Environment.UserName == "root" || GetEuid() == 0) yield return "--user=root";
    }

    private void WriteHosts(IEnumerable<(string Name, string Address)> records)
    {
        var sb = new StringBuilder();
        foreach (var (name, address) in records) sb.Append(address).Append(' ').Append(name).Append('\n');
        var tmp = _hostsPath + ".new";
        File.WriteAllText(tmp, sb.ToString());
        File.Move(tmp, _hostsPath, overwrite: true);
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        lock (_lock) _log.AppendLine(line);
        if (line.Contains("read " + _hostsPath, StringComparison.Ordinal)) Interlocked.Increment(ref _reads);
        _output?.Invoke("dnsmasq: " + line);
    }

    /// <summary>One hand-built A query for a name that surely does not exist; any answer means it is up.</summary>
    private bool Probe()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.ReceiveTimeout = 200;
        var q = new List<byte> { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 };
        foreach (var label in new[] { "probe", "invalid" })
        {
            q.Add((byte)label.Length);
            q.AddRange(Encoding.ASCII.GetBytes(label));
        }
        q.AddRange(new byte[] { 0, 0, 1, 0, 1 });
        try
        {
            s.SendTo(q.ToArray(), EndPoint);
            var buf = new byte[512];
            int n = s.Receive(buf);
            return n >= 12 && buf[0] == 0x12 && buf[1] == 0x34;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private const int SigHup = 1;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();
}
