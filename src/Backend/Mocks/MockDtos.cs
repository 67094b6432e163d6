using System.Text.Json;
using System.Text.Json.Serialization;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Mocks;

/// <summary>A mock as the API shows and accepts it.</summary>
public sealed record MockDto
{
    /// <summary>Id (ignored on create).</summary>
    public long Id { get; init; }

    /// <summary>Service whose requests it answers; empty for any.</summary>
    public string? Service { get; init; }

    /// <summary>Environment label; empty for any.</summary>
    public string? Environment { get; init; }

    /// <summary>Request method (default GET).</summary>
    public string? Method { get; init; }

    /// <summary>Request host[:port]; empty for any host.</summary>
    public string? Authority { get; init; }

    /// <summary>Request path (required).</summary>
    public string? Path { get; init; }

    /// <summary>Request query without '?'.</summary>
    public string? Query { get; init; }

    /// <summary>Request body as text.</summary>
    public string? RequestBody { get; init; }

    /// <summary>Request body as base64 (when not text); wins over <see cref="RequestBody"/>.</summary>
    public string? RequestBodyBase64 { get; init; }

    /// <summary>Response status (default 200).</summary>
    public int? Status { get; init; }

    /// <summary>Response headers as [name, value] pairs.</summary>
    public IReadOnlyList<IReadOnlyList<string>>? Headers { get; init; }

    /// <summary>Response body as text.</summary>
    public string? Body { get; init; }

    /// <summary>Response body as base64 (when not text); wins over <see cref="Body"/>.</summary>
    public string? BodyBase64 { get; init; }

    /// <summary>Free text.</summary>
    public string? Description { get; init; }

    /// <summary>Trace of the exchange it was made from.</summary>
    public string? SourceTraceId { get; init; }

    /// <summary>Span of the exchange it was made from.</summary>
    public string? SourceSpanId { get; init; }

    /// <summary>Created (output only).</summary>
    public DateTimeOffset? CreatedAt { get; init; }

    /// <summary>Last changed (output only).</summary>
    public DateTimeOffset? UpdatedAt { get; init; }

    /// <summary>When it stops answering; null for never.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }
}

/// <summary>Options of <c>POST /api/mocks/from-span/{traceId}/{spanId}</c> and <c>POST /api/mocks/har</c>.</summary>
public sealed record MockFromOptions
{
    /// <summary>Environment label of the new mocks.</summary>
    public string? Environment { get; init; }

    /// <summary>Service of the new mocks (HAR import; from-span uses the span's service unless set).</summary>
    public string? Service { get; init; }

    /// <summary>Match any host instead of the recorded one.</summary>
    public bool AnyHost { get; init; }

    /// <summary>When the new mocks stop answering.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>Free text.</summary>
    public string? Description { get; init; }
}

/// <summary>Why a mock could not be made from a captured exchange.</summary>
public enum MockFromSpanError
{
    /// <summary>The mock was made.</summary>
    None,

    /// <summary>No such span in the tenant.</summary>
    NotFound,

    /// <summary>The span is not an HTTP exchange with a response.</summary>
    NotAnExchange,

    /// <summary>The captured response body is truncated.</summary>
    TruncatedBody,
}

/// <summary>The outcome of <see cref="MockService.CreateFromSpanAsync"/>.</summary>
/// <param name="Mock">The stored mock, or null when it could not be made.</param>
/// <param name="Error">Why not.</param>
/// <param name="Problem">A sentence saying why not.</param>
public sealed record MockFromSpanResult(MockRecord? Mock, MockFromSpanError Error, string? Problem);

/// <summary>A list of mocks.</summary>
/// <param name="Items">The mocks, oldest first.</param>
/// <param name="Next">When there are more: the <c>after</c> value of the next page (the last id of this one).</param>
public sealed record MockListDto(IReadOnlyList<MockDto> Items, string? Next = null);

/// <summary>Source-generated JSON metadata of the mock API (camelCase, web defaults).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(MockDto))]
[JsonSerializable(typeof(MockListDto))]
[JsonSerializable(typeof(MockFromOptions))]
public sealed partial class MockJsonContext : JsonSerializerContext;
