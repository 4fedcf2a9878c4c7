using System.Globalization;
using System.Text;
using Lisp.Wire;
using Lisp.Wire.Crypto;

namespace Lisp.Decent;

/// <summary>
/// How the EID text is turned into a number before "mod modulus" (pull-based LISP-Decent).
/// A deployment must pick one everywhere: the two put 14 of the seed's 20 EIDs in different sets.
/// </summary>
public enum DecentHashAlgorithm
{
    /// <summary>
    /// "sha256": SHA-256 of the UTF-8 printed EID, the whole 32-byte digest read as one big-endian unsigned
    /// integer. The draft/RFC rule and what lispers.net did in 2019-2020 (the seed's logs). The default.
    /// </summary>
    Sha256,

    /// <summary>
    /// "hmac-sha256-lisp-decent": HMAC-SHA-256 keyed with the ASCII bytes "lisp-decent" (configurable), the
    /// first <see cref="DecentHashOptions.DigestBytes"/> bytes (6 by default) of the digest as a big-endian
    /// integer. What lispers.net releases do since January 2021.
    /// </summary>
    HmacSha256,
}

/// <summary>
/// Which text an (S,G) EID (Multicast-Info or Source/Dest LCAF) is hashed as. The choice decides which set
/// multicast registrations and lookups meet in, so every node of a deployment must agree.
/// </summary>
public enum SourceGroupHashing
{
    /// <summary>
    /// Our default and the consistent choice: registrations AND lookups of (S,G) and (*,G) hash the group
    /// prefix alone, <c>[iid]group/gml</c>. An ITR asking for (S,G) cannot know whether the site registered
    /// (S,G) or (*,G); hashing only the group sends both to the same set. Lookups match the lispers.net ITR
    /// (it hashes the group for joins and requests, e.g. the seed's ff02::1:ff00:2 request went to set 3).
    /// </summary>
    Group,

    /// <summary>
    /// The draft's text <c>[iid]group/gml-source/sml</c> ((*,G) as <c>[iid]group/gml-0.0.0.0/0</c>), for
    /// registration and lookup alike. Only consistent between (S,G) and (*,G) with a hash mask that keeps
    /// <c>[iid]group</c> and cuts the rest (e.g. 12 characters for <c>[0]224.1.1.1</c>).
    /// </summary>
    Draft,

    /// <summary>
    /// lispers.net 2019 compatibility: an (S,G) REGISTRATION is hashed by its source prefix
    /// <c>[iid]source/sml</c> (what the seed's ETR did: <c>[0](1.1.1.1/32, 224.1.1.1/32)</c> went to set 1 =
    /// the set of <c>[0]1.1.1.1/32</c>), while LOOKUPS hash the group as its ITR does. Inconsistent by
    /// design (a lookup can miss the registration); only for talking to those peers.
    /// </summary>
    Source,
}

/// <summary>Why an EID is being hashed; only matters for <see cref="SourceGroupHashing.Source"/>.</summary>
public enum HashPurpose
{
    /// <summary>An ETR choosing where to send a Map-Register (and a map-server checking it got the right one).</summary>
    Register,

    /// <summary>An ITR choosing where to send a Map-Request.</summary>
    Lookup,
}

/// <summary>
/// Address-bit hash mask (newer lispers.net "decent-prefix"): IP EIDs inside <see cref="Within"/> (every IP
/// EID at least <see cref="Bits"/> long when null) longer than <see cref="Bits"/> are masked to <see cref="Bits"/>
/// address bits, and printed with that mask length, before hashing: with 24, <c>[0]240.0.1.1/32</c> hashes
/// as <c>[0]240.0.1.0/24</c>, the same text a registered <c>[0]240.0.1.0/24</c> hashes as. Shorter prefixes
/// are hashed as they are, so the lookup length must not exceed the shortest registered prefix.
/// </summary>
public sealed record LookupLengthRule(int Bits, EidPrefix? Within = null)
{
    public bool AppliesTo(EidPrefix eid) =>
        eid.Inner is IpAddress ip && (Within is null
            ? Bits <= ip.HostMaskLength
            : Within.Inner is IpAddress w && w.IsV4 == ip.IsV4 && Within.Covers(eid));
}

/// <summary>Everything that decides an EID's index. Pure data; validated by <see cref="Validate"/>.</summary>
public sealed record DecentHashOptions
{
    public const string Sha256Name = "sha256";
    public const string HmacName = "hmac-sha256-lisp-decent";
    public const string DefaultHmacKey = "lisp-decent";

    /// <summary>Number of map-server sets (names 0 .. Modulus-1). Must be the same on every node.</summary>
    public int Modulus { get; init; } = 1;

    public DecentHashAlgorithm Algorithm { get; init; } = DecentHashAlgorithm.Sha256;

    /// <summary>HMAC key (ASCII/UTF-8) for <see cref="DecentHashAlgorithm.HmacSha256"/>.</summary>
    public string HmacKey { get; init; } = DefaultHmacKey;

    /// <summary>Leading digest bytes taken as the integer for the HMAC variant, 1..32 (lispers.net: 6).</summary>
    public int DigestBytes { get; init; } = 6;

    /// <summary>Character hash mask: hash only the first N characters of the text; 0 = the whole text.</summary>
    public int HashMask { get; init; }

    /// <summary>Address-bit hash masks; the matching rule with the longest <c>Within</c> wins.</summary>
    public IReadOnlyList<LookupLengthRule> LookupLengths { get; init; } = [];

    public SourceGroupHashing SourceGroup { get; init; } = SourceGroupHashing.Group;

    /// <summary>The config/CLI name of the algorithm.</summary>
    public string AlgorithmName => AlgorithmToName(Algorithm);

    public static string AlgorithmToName(DecentHashAlgorithm a) => a == DecentHashAlgorithm.Sha256 ? Sha256Name : HmacName;

    /// <summary>Accepts "sha256" and "hmac-sha256-lisp-decent" (case-insensitive).</summary>
    public static bool TryParseAlgorithm(string? name, out DecentHashAlgorithm algorithm)
    {
        algorithm = DecentHashAlgorithm.Sha256;
        if (string.Equals(name, Sha256Name, StringComparison.OrdinalIgnoreCase)) return true;
        if (string.Equals(name, HmacName, StringComparison.OrdinalIgnoreCase))
        {
            algorithm = DecentHashAlgorithm.HmacSha256;
            return true;
        }
        return false;
    }

    /// <summary>Accepts "group", "draft", "source" (case-insensitive).</summary>
    public static bool TryParseSourceGroup(string? name, out SourceGroupHashing mode)
    {
        mode = SourceGroupHashing.Group;
        switch (name?.ToLowerInvariant())
        {
            case "group": return true;
            case "draft": mode = SourceGroupHashing.Draft; return true;
            case "source": mode = SourceGroupHashing.Source; return true;
            default: return false;
        }
    }

    /// <summary>Null when usable, else what is wrong (for config errors and the CLI).</summary>
    public string? Validate()
    {
        if (Modulus < 1) return $"modulus must be at least 1 (got {Modulus})";
        if (DigestBytes is < 1 or > 32) return $"digest width must be 1..32 bytes (got {DigestBytes})";
        if (HashMask < 0) return $"hash mask must be 0 (off) or a character count (got {HashMask})";
        if (Algorithm == DecentHashAlgorithm.HmacSha256 && HmacKey is null) return "HMAC key must be set";
        foreach (var r in LookupLengths)
        {
            if (r.Bits is < 0 or > 128) return $"lookup length must be 0..128 bits (got {r.Bits})";
            if (r.Within is not null && r.Within.Inner is not IpAddress) return $"lookup-length prefix {r.Within} is not an IP prefix";
        }
        return null;
    }
}

/// <summary>An EID's place in the pull-based mapping system.</summary>
/// <param name="Eid">the printed EID as given (canonical form, host bits cleared)</param>
/// <param name="HashedText">the exact text that was hashed, after (S,G) choice and hash masks</param>
/// <param name="Index">0 .. modulus-1</param>
/// <param name="DnsName"><c>&lt;index&gt;.&lt;suffix&gt;</c></param>
public readonly record struct DecentIndex(string Eid, string HashedText, int Index, string DnsName)
{
    public static string NameFor(int index, string dnsSuffix) =>
        index.ToString(CultureInfo.InvariantCulture) + "." + NormalizeSuffix(dnsSuffix);

    /// <summary>Drops surrounding whitespace, leading and trailing dots; lower case (DNS names are case-insensitive).</summary>
    public static string NormalizeSuffix(string suffix) => suffix.Trim().Trim('.').ToLowerInvariant();
}

/// <summary>
/// The pull-mode hash: EID -> text -> index -> DNS name. No I/O; thread-safe; allocation is one string per
/// call plus a small byte buffer.
/// </summary>
public sealed class DecentHasher
{
    private readonly HmacKey _hmacKey;   // prepared once: an index costs the EID text's blocks, not the key blocks too
    private readonly LookupLengthRule[] _rules;

    public DecentHashOptions Options { get; }

    public DecentHasher(DecentHashOptions options)
    {
        if (options.Validate() is { } err) throw new ArgumentException(err, nameof(options));
        Options = options;
        _hmacKey = HmacKey.Sha256(Encoding.UTF8.GetBytes(options.HmacKey));
        // Most specific first; rules without Within are the catch-alls and go last, longest first, so that
        // "24" and "64" together mean 24 bits for IPv4 and 64 for IPv6.
        _rules = options.LookupLengths.OrderByDescending(r => r.Within is null ? -1 : r.Within.MaskLength)
            .ThenByDescending(r => r.Bits).ToArray();
    }

    public int Modulus => Options.Modulus;

    /// <summary>The text hashed for <paramref name="eid"/>: (S,G) rule, then address-bit mask, then character mask.</summary>
    public string HashText(EidPrefix eid, HashPurpose purpose = HashPurpose.Register)
    {
        eid = eid.Canonical();
        string text;
        if (eid.SourceGroup() is var (source, group))
        {
            var mode = Options.SourceGroup;
            if (mode == SourceGroupHashing.Source && purpose == HashPurpose.Lookup) mode = SourceGroupHashing.Group;
            text = mode switch
            {
                SourceGroupHashing.Source => ApplyLookupLength(source).ToString(),
                SourceGroupHashing.Draft => ApplyLookupLength(group) + "-" + ApplyLookupLength(source).BodyText(),
                _ => ApplyLookupLength(group).ToString(),
            };
        }
        else
        {
            text = ApplyLookupLength(eid).ToString();
        }
        return ApplyHashMask(text);
    }

    /// <summary>The character hash mask alone: the first <see cref="DecentHashOptions.HashMask"/> characters.</summary>
    public string ApplyHashMask(string text) =>
        Options.HashMask > 0 && text.Length > Options.HashMask ? text[..Options.HashMask] : text;

    /// <summary>The address-bit hash mask alone (an IP prefix masked to the rule's length; others unchanged).</summary>
    public EidPrefix ApplyLookupLength(EidPrefix eid)
    {
        foreach (var r in _rules)
        {
            if (!r.AppliesTo(eid)) continue;
            if (eid.MaskLength <= r.Bits) return eid.Canonical();
            return EidPrefix.Create(eid.InstanceId, eid.Inner, r.Bits).Canonical();
        }
        return eid.Canonical();
    }

    public int IndexOf(EidPrefix eid, HashPurpose purpose = HashPurpose.Register) => IndexOfText(HashText(eid, purpose));

    /// <summary>Index of an already-built hash text (no masks applied here).</summary>
    public int IndexOfText(string text)
    {
        int max = Encoding.UTF8.GetMaxByteCount(text.Length);
        byte[]? rented = null;
        Span<byte> buf = max <= 512 ? stackalloc byte[max] : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(max));
        try
        {
            int n = Encoding.UTF8.GetBytes(text, buf);
            return IndexOfBytes(buf[..n]);
        }
        finally
        {
            if (rented is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    public int IndexOfBytes(ReadOnlySpan<byte> text)
    {
        Span<byte> digest = stackalloc byte[32];
        if (Options.Algorithm == DecentHashAlgorithm.Sha256)
        {
            Sha256.HashData(text, digest);
            return (int)BigEndianMod(digest, (uint)Options.Modulus);
        }
        _hmacKey.Compute(text, digest);
        return (int)BigEndianMod(digest[..Options.DigestBytes], (uint)Options.Modulus);
    }

    /// <summary>
    /// <paramref name="number"/> read as one big-endian unsigned integer, mod <paramref name="modulus"/>:
    /// Horner's rule byte by byte; the running remainder stays below 2^32 so r*256+b fits in 64 bits.
    /// </summary>
    public static uint BigEndianMod(ReadOnlySpan<byte> number, uint modulus)
    {
        if (modulus == 0) throw new ArgumentOutOfRangeException(nameof(modulus));
        ulong r = 0;
        foreach (byte b in number) r = ((r << 8) | b) % modulus;
        return (uint)r;
    }

    /// <summary>Index and DNS name together.</summary>
    public DecentIndex Locate(EidPrefix eid, string dnsSuffix, HashPurpose purpose = HashPurpose.Register)
    {
        string text = HashText(eid, purpose);
        int index = IndexOfText(text);
        return new DecentIndex(eid.Canonical().ToString(), text, index, DecentIndex.NameFor(index, dnsSuffix));
    }
}
