namespace Lisp.Appliance.Cli;

/// <summary>
/// Reads a whole input (a file, a FIFO, a character device such as /dev/zero, standard input) into memory, at
/// most <see cref="Limit"/> bytes: incrementally, so an input of unknown or endless size stops at the cap instead
/// of exhausting memory. The size a file claims is never trusted (a FIFO or a device claims 0).
/// </summary>
public static class BoundedInput
{
    /// <summary>64 MiB: far beyond any capture of LISP control traffic worth decoding at once.</summary>
    public const int Limit = 64 * 1024 * 1024;

    public const string LimitText = "64 MiB (67108864 bytes)";

    /// <summary>Outcome of <see cref="Read"/>: the bytes, or why there are none.</summary>
    public enum Outcome
    {
        Ok,
        TooLarge,
        Unreadable,
    }

    /// <summary>
    /// Opens <paramref name="path"/> ("-" = standard input) and reads it. <see cref="Outcome.TooLarge"/> as soon
    /// as more than <paramref name="limit"/> bytes arrived (no more is read); <see cref="Outcome.Unreadable"/>
    /// with the system's reason when it cannot be opened or read.
    /// </summary>
    public static Outcome Read(string path, int limit, out byte[] data, out string? error)
    {
        data = [];
        error = null;
        try
        {
            if (path == "-")
            {
                using var stdin = Console.OpenStandardInput();
                return Read(stdin, limit, out data);
            }
            if (Directory.Exists(path))
            {
                error = "it is a directory";
                return Outcome.Unreadable;
            }
            // A regular file that says it is too large is refused without reading it (a sparse 65 MiB file);
            // anything else (FIFO, device, a file that grows) is read up to the cap.
            var info = new FileInfo(path);
            if (info.Exists && info.Length > limit && (info.Attributes & FileAttributes.Device) == 0)
            {
                return Outcome.TooLarge;
            }
            using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
            return Read(s, limit, out data);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            error = e.Message;
            return Outcome.Unreadable;
        }
    }

    /// <summary>Reads <paramref name="s"/> to its end, or stops with <see cref="Outcome.TooLarge"/> once it passed <paramref name="limit"/> bytes.</summary>
    public static Outcome Read(Stream s, int limit, out byte[] data)
    {
        data = [];
        var buf = new byte[Math.Min(limit + 1, 64 * 1024)];
        int len = 0;
        while (true)
        {
            if (len == buf.Length)
            {
                if (len > limit) return Outcome.TooLarge;
                Array.Resize(ref buf, (int)Math.Min((long)limit + 1, (long)buf.Length * 2));
            }
            int n = s.Read(buf, len, buf.Length - len);
            if (n <= 0) break;
            len += n;
            if (len > limit) return Outcome.TooLarge;
        }
        Array.Resize(ref buf, len);
        data = buf;
        return Outcome.Ok;
    }
}
