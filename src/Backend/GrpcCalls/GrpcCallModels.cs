using System.Text.Json.Nodes;

namespace SpIstio.Backend.GrpcCalls;

/// <summary>A captured gRPC call as the API, the Trace View and HAR show it: decoded in the backend.</summary>
/// <param name="Service">The full service name (<c>package.Service</c>).</param>
/// <param name="Method">The method name.</param>
/// <param name="StatusCode">The gRPC status code, or null when the call ended without one (cancelled, reset, a proxy's plain HTTP answer).</param>
/// <param name="StatusName">The status code's canonical name (<c>OK</c>, <c>NOT_FOUND</c>, …), or null with <paramref name="StatusCode"/>.</param>
/// <param name="StatusMessage">The percent-decoded <c>grpc-message</c>, or null.</param>
/// <param name="StatusDetails">The details of <c>grpc-status-details-bin</c>, each decoded; empty when none.</param>
/// <param name="Request">The request stream's messages, or null when none were captured.</param>
/// <param name="Response">The response stream's messages, or null when none were captured.</param>
public sealed record GrpcCallDto(
    string Service,
    string Method,
    int? StatusCode,
    string? StatusName,
    string? StatusMessage,
    IReadOnlyList<GrpcStatusDetailDto> StatusDetails,
    GrpcMessagesDto? Request,
    GrpcMessagesDto? Response)
{
    /// <summary>True when a configured descriptor set knows the method, so messages carry field names.</summary>
    public bool Described { get; init; }

    /// <summary>Why some messages are shown as bytes although they were captured whole, or null.</summary>
    public string? Note { get; init; }
}

/// <summary>One direction's captured messages.</summary>
/// <param name="Count">Messages the stream carried, listed or not (the agent keeps a bounded number).</param>
/// <param name="Truncated">True when the agent did not keep everything (a message cut, or messages past its limits).</param>
/// <param name="Messages">The messages kept, in stream order.</param>
/// <param name="Unreadable">Why the list could not be read (it was cut at ingest), or null.</param>
public sealed record GrpcMessagesDto(int Count, bool Truncated, IReadOnlyList<GrpcMessageDto> Messages, string? Unreadable = null);

/// <summary>One message: exactly one of <see cref="Json"/>, <see cref="Fields"/> and <see cref="Base64"/> is set.</summary>
/// <param name="Index">Position in its stream, from 0.</param>
/// <param name="OffsetMs">When its first byte was seen, in milliseconds from the start of the call.</param>
/// <param name="Size">The length its frame announced, in bytes.</param>
/// <param name="Compressed">The frame's compressed flag.</param>
/// <param name="Truncated">True when only part of it was captured (it is then never decoded: half a message would mislead).</param>
public sealed record GrpcMessageDto(int Index, double OffsetMs, long Size, bool Compressed, bool Truncated)
{
    /// <summary>The message type's full name when it was decoded with a descriptor set.</summary>
    public string? Type { get; init; }

    /// <summary>The message as proto3 JSON with field names (a descriptor set knows its method).</summary>
    public JsonNode? Json { get; init; }

    /// <summary>The schema-less view: <c>[{field, wire, value|string|message|bytes…}]</c> in wire order.</summary>
    public JsonNode? Fields { get; init; }

    /// <summary>The captured bytes, when neither view applies (truncated, still compressed, not protobuf, or over the decode budget).</summary>
    public string? Base64 { get; init; }

    /// <summary>True when the bytes are shown because decoding them would have passed the view's decode budget (fields, depth, or the size of one message).</summary>
    public bool BudgetExceeded { get; init; }
}

/// <summary>One detail of a <c>google.rpc.Status</c> (<c>BadRequest</c>, <c>ErrorInfo</c>, …), decoded like a message.</summary>
/// <param name="TypeUrl">The detail's type URL (<c>type.googleapis.com/google.rpc.BadRequest</c>).</param>
public sealed record GrpcStatusDetailDto(string TypeUrl)
{
    /// <summary>The detail as proto3 JSON, when a descriptor set knows its type.</summary>
    public JsonNode? Json { get; init; }

    /// <summary>The schema-less view otherwise.</summary>
    public JsonNode? Fields { get; init; }

    /// <summary>The bytes, when neither view applies.</summary>
    public string? Base64 { get; init; }
}
