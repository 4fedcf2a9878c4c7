using System.Net;

namespace Lisp.Appliance.Config;

/// <summary>[management]: the management API's address and the limits of its HTTP server (issue 12).</summary>
public sealed record ManagementConfig
{
    public const int DefaultMaxConnections = 64;
    public const int DefaultMaxBody = 64 * 1024;

    /// <summary>[management] listen.</summary>
    public required IPEndPoint Listen { get; init; }
    /// <summary>[management] max_connections: open connections at most; more are answered 503 and closed (counted).</summary>
    public int MaxConnections { get; init; } = DefaultMaxConnections;
    /// <summary>[management] header_timeout: a request's head (and body) must arrive within this, from its first byte (slowloris).</summary>
    public TimeSpan HeaderTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>[management] idle_timeout: a kept-alive connection with no new request is closed after this (also a new connection's wait for its first byte).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>[management] max_body: request bodies larger than this (bytes) get 413.</summary>
    public int MaxBody { get; init; } = DefaultMaxBody;
    /// <summary>[management] token_file: its path (null = no authentication).</summary>
    public string? TokenFile { get; init; }
    /// <summary>The token_file's contents (trimmed): requests need `Authorization: Bearer TOKEN`.</summary>
    public string? Token { get; init; }
}
