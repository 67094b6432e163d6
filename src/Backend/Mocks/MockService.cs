using System.Text.Json.Nodes;
using SpIstio.Backend.Api;
using SpIstio.Backend.Storage;
using SpIstio.Core.GrpcMessages;
using static SpIstio.Backend.Mocks.MockMapping;

namespace SpIstio.Backend.Mocks;

/// <summary>Making mocks from captured exchanges: what <c>POST /api/mocks/from-span</c> and the Trace View's "Use as mock" both call.</summary>
public static class MockService
{
    /// <summary>
    /// Creates a mock from a captured exchange of <paramref name="tenant"/> and stores it: the one
    /// way to do so, used by <c>POST /api/mocks/from-span/…</c> and the Trace View's "Use as mock".
    /// The caller has checked the admin scope.
    /// </summary>
    public static async Task<MockFromSpanResult> CreateFromSpanAsync(
        ISpanQueryStore spans, IMockStore mocks, long tenant, string traceId, string spanId, MockFromOptions options, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spans);
        ArgumentNullException.ThrowIfNull(mocks);
        ArgumentNullException.ThrowIfNull(traceId);
        ArgumentNullException.ThrowIfNull(spanId);
        ArgumentNullException.ThrowIfNull(options);
        var span = await spans.GetSpanAsync(tenant, traceId.ToLowerInvariant(), spanId.ToLowerInvariant(), cancellationToken).ConfigureAwait(false);
        if (span is null)
        {
            return new MockFromSpanResult(null, MockFromSpanError.NotFound, "span '" + spanId + "' of trace '" + traceId + "' not found");
        }

        if (!span.IsExchange || span.StatusCode is null || span.Path is null)
        {
            return new MockFromSpanResult(null, MockFromSpanError.NotAnExchange, "the span is not an HTTP exchange with a response");
        }

        var detail = SpanViews.ToDetail(span);
        if (detail.ResponseBody is { Truncated: true })
        {
            return new MockFromSpanResult(null, MockFromSpanError.TruncatedBody, "the captured response body is truncated; a mock would replay part of it");
        }

        var headers = ReadPairs(span.ResponseHeadersJson);
        AddGrpcStatus(headers, span.AttributesJson);
        var authority = options.AnyHost ? "" : span.Authority ?? "";
        var method = span.Method ?? "GET";
        var mock = new MockRecord
        {
            Service = options.Service ?? span.ServiceName,
            Environment = options.Environment ?? "",
            Method = method,
            Authority = authority,
            Path = span.Path,
            Query = span.Query,
            RequestBody = span.RequestBody,
            MatchKey = MockKeys.ForMock(method, authority, span.Path, span.Query, span.RequestBody.Span),
            StatusCode = span.StatusCode.Value,
            ResponseHeadersJson = HeadersJson(headers, dropContentEncoding: detail.ResponseBody?.Decoded == true),
            ResponseBody = span.ResponseBody,
            Description = options.Description,
            SourceTraceId = span.TraceId,
            SourceSpanId = span.SpanId,
            CreatedAt = now,
            UpdatedAt = now,
            ExpiresAt = options.ExpiresAt,
        };
        var added = await mocks.AddMockAsync(tenant, mock, cancellationToken).ConfigureAwait(false);
        return new MockFromSpanResult(added, MockFromSpanError.None, null);
    }

    /// <summary>
    /// A gRPC call's answer needs its status (issue 18 §5). Front ends record trailers among the
    /// response headers; when a span has none there (another exporter, a call cut before its
    /// trailers), the status comes from <c>rpc.grpc.status_code</c> (a string from older agents, an
    /// integer from newer ones) and <c>sp.grpc.message</c>.
    /// </summary>
    internal static void AddGrpcStatus(List<(string Name, string Value)> headers, string attributesJson)
    {
        if (!headers.Exists(h => string.Equals(h.Name, "content-type", StringComparison.OrdinalIgnoreCase) && GrpcSpanAttributes.IsGrpc(h.Value))
            || headers.Exists(h => string.Equals(h.Name, "grpc-status", StringComparison.OrdinalIgnoreCase))
            || JsonNode.Parse(attributesJson) is not JsonObject attributes
            || attributes[GrpcSpanAttributes.RpcStatusCode] is not JsonValue code)
        {
            return;
        }

        var text = code.GetValueKind() == System.Text.Json.JsonValueKind.Number ? code.ToJsonString() : code.GetValue<string>();
        if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var status))
        {
            return;
        }

        headers.Add(("grpc-status", status.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        if (attributes[GrpcSpanAttributes.StatusMessage] is JsonValue message && message.GetValueKind() == System.Text.Json.JsonValueKind.String)
        {
            headers.Add(("grpc-message", Uri.EscapeDataString(message.GetValue<string>())));
        }
    }
}
