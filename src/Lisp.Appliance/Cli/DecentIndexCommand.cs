using System.Globalization;
using Lisp.Decent;
using Lisp.Wire;

namespace Lisp.Appliance.Cli;

/// <summary>
/// `lisp-decent decent-index`: where pull-based LISP-Decent puts an EID. One line per EID, tab-separated:
/// canonical printed EID, index, "&lt;index&gt;.&lt;suffix&gt;" (and, with --show-text, the exact text hashed).
/// Exit 0 when every EID printed, 1 when some EID text was bad (the others still print), 2 on usage errors.
/// </summary>
public static class DecentIndexCommand
{
    private const string Help = """
        Usage: lisp-decent decent-index --modulus N --dns-suffix NAME [options] EID...

        Prints, for each EID, the pull-based LISP-Decent map-server set it hashes to:
          <canonical printed EID> TAB <index> TAB <index>.<dns-suffix>

        Required:
          --modulus N            number of map-server sets (names 0..N-1); the same on every node
          --dns-suffix NAME      DNS suffix of the set names, e.g. ms.lispers.net -> 3.ms.lispers.net

        Options:
          --algorithm A          sha256 (default): SHA-256 of the printed EID, whole digest as one
                                 big-endian integer, mod N (the RFC rule; lispers.net 2019-2020).
                                 hmac-sha256-lisp-decent: HMAC-SHA-256 keyed "lisp-decent", first 6
                                 digest bytes as a big-endian integer, mod N (lispers.net since 2021).
          --hmac-key K           HMAC key for hmac-sha256-lisp-decent (default: lisp-decent)
          --digest-bytes W       leading digest bytes used by hmac-sha256-lisp-decent, 1..32 (default 6)
          --hash-mask M          character hash mask: hash only the first M characters of the text
                                 ([0]240.0.1.0/24 and [0]240.0.1.1/32 with 8 both hash "[0]240.0")
          --lookup-length BITS   address-bit hash mask: IP EIDs longer than BITS are masked to BITS
                                 bits and printed as /BITS before hashing (lispers.net decent-prefix).
                                 PREFIX=BITS limits it to EIDs inside PREFIX; may be repeated
                                 (e.g. --lookup-length 24 --lookup-length 64: 24 for IPv4, 64 for IPv6)
          --sg-hash MODE         how an (S,G) EID such as "[0](1.1.1.1/32, 224.1.1.1/32)" is hashed:
                                 group  (default) "[iid]group/gml" for registrations and lookups alike,
                                        so (S,G) and (*,G) registrations are where ITRs look
                                 draft  "[iid]group/gml-source/sml" (the draft's text; pair it with a
                                        --hash-mask that keeps only "[iid]group")
                                 source "[iid]source/sml": where a lispers.net 2019 ETR registers (S,G);
                                        lookups still hash the group, as its ITR does
          --show-text            add a 4th column: the exact text that was hashed
          --help                 this text

        EID forms: [iid]1.1.1.1/32  [iid]2001::1/128  [iid]'name'  [iid](source/len, group/len)
                   [iid]0000-1111-2222/48  [iid]+14087182001/64  [iid]48-51-12-N-2-20-55-E/100
        ("[iid]" may be left out for instance-id 0.)
        """;

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        var cl = CommandLine.Parse(args,
            ["modulus", "dns-suffix", "algorithm", "hmac-key", "digest-bytes", "hash-mask", "lookup-length", "sg-hash"],
            ["show-text"]);
        if (cl.Has("help"))
        {
            stdout.Write(Help);
            return 0;
        }
        if (cl.Error is not null) return Usage(stderr, cl.Error);

        var inv = CultureInfo.InvariantCulture;
        if (cl.Value("modulus") is not { } modText) return Usage(stderr, "--modulus N is required");
        if (!int.TryParse(modText, NumberStyles.None, inv, out int modulus) || modulus < 1)
            return Usage(stderr, $"--modulus must be a positive integer (got '{modText}')");
        if (cl.Value("dns-suffix") is not { } suffix || DecentIndex.NormalizeSuffix(suffix).Length == 0)
            return Usage(stderr, "--dns-suffix NAME is required");

        var algorithm = DecentHashAlgorithm.Sha256;
        if (cl.Value("algorithm") is { } algText && !DecentHashOptions.TryParseAlgorithm(algText, out algorithm))
            return Usage(stderr, $"--algorithm must be {DecentHashOptions.Sha256Name} or {DecentHashOptions.HmacName} (got '{algText}')");

        int digestBytes = 6;
        if (cl.Value("digest-bytes") is { } dbText && (!int.TryParse(dbText, NumberStyles.None, inv, out digestBytes) || digestBytes is < 1 or > 32))
            return Usage(stderr, $"--digest-bytes must be 1..32 (got '{dbText}')");

        int hashMask = 0;
        if (cl.Value("hash-mask") is { } hmText && !int.TryParse(hmText, NumberStyles.None, inv, out hashMask))
            return Usage(stderr, $"--hash-mask must be a character count (got '{hmText}')");

        var sg = SourceGroupHashing.Group;
        if (cl.Value("sg-hash") is { } sgText && !DecentHashOptions.TryParseSourceGroup(sgText, out sg))
            return Usage(stderr, $"--sg-hash must be group, draft or source (got '{sgText}')");

        var rules = new List<LookupLengthRule>();
        foreach (var ll in cl.Values("lookup-length"))
        {
            EidPrefix? within = null;
            string bitsText = ll;
            int eq = ll.LastIndexOf('=');
            if (eq >= 0)
            {
                if (!EidPrefix.TryParse(ll[..eq], out within, out var perr) || within is null || !within.IsIp)
                    return Usage(stderr, $"--lookup-length {ll}: {perr ?? "PREFIX must be an IP prefix"}");
                bitsText = ll[(eq + 1)..];
            }
            if (!int.TryParse(bitsText, NumberStyles.None, inv, out int bits) || bits > 128)
                return Usage(stderr, $"--lookup-length must be BITS or PREFIX=BITS with BITS 0..128 (got '{ll}')");
            rules.Add(new LookupLengthRule(bits, within));
        }

        var options = new DecentHashOptions
        {
            Modulus = modulus,
            Algorithm = algorithm,
            HmacKey = cl.Value("hmac-key") ?? DecentHashOptions.DefaultHmacKey,
            DigestBytes = digestBytes,
            HashMask = hashMask,
            LookupLengths = rules,
            SourceGroup = sg,
        };
        if (options.Validate() is { } verr) return Usage(stderr, verr);
        if (cl.Positional.Count == 0) return Usage(stderr, "give at least one EID");

        var hasher = new DecentHasher(options);
        bool showText = cl.Has("show-text");
        int rc = 0;
        foreach (var text in cl.Positional)
        {
            if (!EidPrefix.TryParse(text, out var eid, out var err) || eid is null)
            {
                stderr.WriteLine($"lisp-decent decent-index: bad EID '{text}': {err}");
                rc = 1;
                continue;
            }
            var loc = hasher.Locate(eid, suffix, HashPurpose.Register);
            stdout.Write(loc.Eid);
            stdout.Write('\t');
            stdout.Write(loc.Index.ToString(inv));
            stdout.Write('\t');
            stdout.Write(loc.DnsName);
            if (showText)
            {
                stdout.Write('\t');
                stdout.Write(loc.HashedText);
            }
            stdout.WriteLine();
        }
        return rc;
    }

    private static int Usage(TextWriter stderr, string message)
    {
        stderr.WriteLine($"lisp-decent decent-index: {message}");
        stderr.WriteLine("usage: lisp-decent decent-index --modulus N --dns-suffix NAME [--algorithm A] [--hash-mask M] [--lookup-length BITS] [--sg-hash group|draft|source] EID...  (--help for details)");
        return 2;
    }
}
