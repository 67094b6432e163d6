namespace SpIstio.Backend.Storage;

/// <summary>
/// A mock: a request matcher (method, authority, path, query and body, reduced to one replay
/// <see cref="MatchKey"/>) and the response that answers it, scoped by tenant, service and an
/// environment label, optionally expiring.
/// </summary>
public sealed record MockRecord
{
    /// <summary>Store-assigned id (0 before it is stored).</summary>
    public long Id { get; init; }

    /// <summary>The service whose requests it answers; empty for any service.</summary>
    public string Service { get; init; } = "";

    /// <summary>Environment label (<c>staging</c>, <c>ci</c>); empty for any environment.</summary>
    public string Environment { get; init; } = "";

    /// <summary>HTTP method, upper case.</summary>
    public required string Method { get; init; }

    /// <summary>Host and optional port the request must be addressed to; empty for any host.</summary>
    public string Authority { get; init; } = "";

    /// <summary>Path without the query.</summary>
    public required string Path { get; init; }

    /// <summary>Query without '?', or null.</summary>
    public string? Query { get; init; }

    /// <summary>The request body the mock matches (JSON compared canonically).</summary>
    public ReadOnlyMemory<byte> RequestBody { get; init; }

    /// <summary>The replay key of the request fields above (see <c>MockKeys</c>); what lookups match on.</summary>
    public required string MatchKey { get; init; }

    /// <summary>Response status.</summary>
    public int StatusCode { get; init; } = 200;

    /// <summary>Response headers as a JSON array of [name, value] pairs.</summary>
    public string ResponseHeadersJson { get; init; } = "[]";

    /// <summary>Response body.</summary>
    public ReadOnlyMemory<byte> ResponseBody { get; init; }

    /// <summary>Free text.</summary>
    public string? Description { get; init; }

    /// <summary>Trace of the captured exchange the mock was made from, if any.</summary>
    public string? SourceTraceId { get; init; }

    /// <summary>Span of the captured exchange the mock was made from, if any.</summary>
    public string? SourceSpanId { get; init; }

    /// <summary>When it was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When it was last changed.</summary>
    public DateTimeOffset UpdatedAt { get; init; }

    /// <summary>After this time it no longer answers; null for never.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }
}

/// <summary>Filters of the mock list.</summary>
public sealed record MockQuery
{
    /// <summary>Only mocks of this service (and, with <see cref="IncludeAnyService"/>, those for any service).</summary>
    public string? Service { get; init; }

    /// <summary>With <see cref="Service"/>: include mocks whose service is empty (they answer every service).</summary>
    public bool IncludeAnyService { get; init; }

    /// <summary>Only mocks of this environment label (and those for any environment).</summary>
    public string? Environment { get; init; }

    /// <summary>When set, mocks expired at this time are left out.</summary>
    public DateTimeOffset? LiveAt { get; init; }

    /// <summary>The most mocks one list returns when the caller does not say (a page of the Trace View, the API without <c>limit</c>).</summary>
    public const int DefaultLimit = 200;

    /// <summary>The most mocks one list may return: a list is held whole in memory and sent in one answer.</summary>
    public const int MaxLimit = 1000;

    /// <summary>How many mocks to return at most (1 to <see cref="MaxLimit"/>; the store clamps).</summary>
    public int Limit { get; init; } = DefaultLimit;

    /// <summary>Only mocks with a greater id: the <see cref="Page{T}.NextCursor"/> of the previous page.</summary>
    public long? AfterId { get; init; }
}
