using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Lisp.Wire;
using Lisp.Wire.Crypto;

namespace Lisp.Perf;

/// <summary>
/// HMAC-SHA-256 of one message the size of a Map-Register (100 and 300 bytes): Lisp.Wire.Crypto with the key prepared
/// once (what the map-server does per site), the same with the key set up per call, System.Security.Cryptography's
/// one-shot HMACSHA256.HashData (OpenSSL on Linux; what MessageAuthentication used before), and the whole
/// MessageAuthentication.Verify of a signed Map-Register-sized message with a cached AuthenticationKey.
/// `dotnet run -c Release -- --filter '*Hmac*' --runtimes jit,aot-v2`.
/// </summary>
[MemoryDiagnoser]
public class HmacSha256Bench
{
    [Params(100, 300)]
    public int Length;

    private byte[] _message = [];
    private byte[] _key = [];
    private HmacKey _prepared;
    private AuthenticationKey _authKey = null!;
    private byte[] _signed = [];
    private readonly byte[] _mac = new byte[32];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        _message = new byte[Length];
        rng.NextBytes(_message);
        _key = "site-key-of-a-typical-length"u8.ToArray();
        _prepared = HmacKey.Sha256(_key);
        _authKey = new AuthenticationKey(_key);
        // A message with the Map-Register header layout (algorithm 2, 32-byte field at 16), signed.
        _signed = (byte[])_message.Clone();
        _signed[13] = (byte)AuthAlgorithm.HmacSha256_128;
        _signed[14] = 0;
        _signed[15] = 32;
        MessageAuthentication.Sign(_signed, AuthAlgorithm.HmacSha256_128, _authKey);
        if (!MessageAuthentication.Verify(_signed, _authKey)) throw new InvalidOperationException("setup: verify failed");
        _prepared.Compute(_message, _mac);
        var oracle = HMACSHA256.HashData(_key, _message);
        if (!oracle.AsSpan().SequenceEqual(_mac)) throw new InvalidOperationException("setup: HMAC differs from System.Security.Cryptography");
    }

    [Benchmark(Baseline = true)]
    public int SystemHmacSha256HashData() => HMACSHA256.HashData(_key, _message, _mac);

    [Benchmark]
    public int OursPreparedKey() => _prepared.Compute(_message, _mac);

    [Benchmark]
    public int OursKeyPerCall() => HmacKey.Sha256(_key).Compute(_message, _mac);

    [Benchmark]
    public bool VerifyMapRegisterCachedKey() => MessageAuthentication.Verify(_signed, _authKey);
}
