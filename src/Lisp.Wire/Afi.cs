namespace Lisp.Wire;

/// <summary>Address Family Identifiers used by LISP (IANA registry; 6 as lispers.net sends MAC addresses).</summary>
public static class Afi
{
    public const ushort None = 0;
    public const ushort IPv4 = 1;
    public const ushort IPv6 = 2;
    public const ushort Ieee802Legacy = 6;
    public const ushort E164 = 8;
    public const ushort DistinguishedName = 17;
    public const ushort Lcaf = 16387;
    public const ushort Mac48 = 16389;
}

/// <summary>LCAF type numbers (RFC 8060 section 3).</summary>
public static class LcafType
{
    public const byte AfiList = 1;
    public const byte InstanceId = 2;
    public const byte AsNumber = 3;
    public const byte ApplicationData = 4;
    public const byte GeoCoordinates = 5;
    public const byte OpaqueKey = 6;
    public const byte NatTraversal = 7;
    public const byte NonceLocator = 8;
    public const byte MulticastInfo = 9;
    public const byte ExplicitLocatorPath = 10;
    public const byte SecurityKey = 11;
    public const byte SourceDest = 12;
    public const byte ReplicationList = 13;
    public const byte Json = 14;
    public const byte KeyValue = 15;
    public const byte EncapsulationFormat = 16;
}
