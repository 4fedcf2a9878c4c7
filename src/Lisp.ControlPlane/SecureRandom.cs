using System.Runtime.InteropServices;

namespace Lisp.ControlPlane;

/// <summary>
/// The roles' default randomness: nonces (the only thing that ties a Map-Reply, Map-Notify or RLOC-probe reply to its
/// request, so a predictable one lets an off-path sender forge answers) and timer jitter. Bytes come from the
/// kernel's CSPRNG through getrandom(2), read 4 KiB at a time per thread (one syscall per 512 nonces), with
/// /dev/urandom as the fallback where getrandom is missing. Not System.Random (predictable) and not
/// RandomNumberGenerator (on Linux it goes through the device's OpenSSL, which the appliance should not need for
/// this). Tests that want repeatable runs still pass their own seeded <see cref="Random"/> to a role.
/// </summary>
public sealed partial class SecureRandom : Random
{
    private const int BatchBytes = 4096;

    /// <summary>One instance serves every thread: the buffer behind it is per thread.</summary>
    public static SecureRandom Instance { get; } = new();

    [ThreadStatic] private static byte[]? t_buffer;
    [ThreadStatic] private static int t_used;

    private SecureRandom()
    {
    }

    public override void NextBytes(byte[] buffer) => NextBytes(buffer.AsSpan());

    public override void NextBytes(Span<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            var pool = t_buffer;
            if (pool is null || t_used == BatchBytes)
            {
                pool = t_buffer ??= new byte[BatchBytes];
                Fill(pool);
                t_used = 0;
            }
            int n = Math.Min(buffer.Length, BatchBytes - t_used);
            pool.AsSpan(t_used, n).CopyTo(buffer);
            pool.AsSpan(t_used, n).Clear();   // a byte handed out is not kept
            t_used += n;
            buffer = buffer.Slice(n);
        }
    }

    /// <summary>Uniform in [0, 1) from 53 random bits; Next(...) and NextDouble() derive from it.</summary>
    protected override double Sample()
    {
        Span<byte> b = stackalloc byte[8];
        NextBytes(b);
        return (BitConverter.ToUInt64(b) >> 11) * (1.0 / (1UL << 53));
    }

    public override double NextDouble() => Sample();

    private static unsafe void Fill(byte[] pool)
    {
        int done = 0;
        fixed (byte* p = pool)
        {
            while (done < pool.Length)
            {
                nint r = GetRandom(p + done, (nuint)(pool.Length - done), 0);
                if (r > 0)
                {
                    done += (int)r;
                    continue;
                }
                int errno = Marshal.GetLastPInvokeError();
                if (errno == 4) continue;   // EINTR
                FillFromDevice(pool.AsSpan(done), errno);
                return;
            }
        }
    }

    private static void FillFromDevice(Span<byte> rest, int errno)
    {
        try
        {
            using var f = File.OpenRead("/dev/urandom");
            f.ReadExactly(rest);
        }
        catch (IOException e)
        {
            throw new InvalidOperationException($"no kernel randomness: getrandom failed (errno {errno}) and /dev/urandom could not be read ({e.Message})", e);
        }
    }

    [LibraryImport("libc", EntryPoint = "getrandom", SetLastError = true)]
    private static unsafe partial nint GetRandom(byte* buffer, nuint length, uint flags);
}
