using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;
using SpIstio.Backend.Storage;
using SpIstio.Core.Otlp;

namespace SpIstio.Backend.Api;

/// <summary>
/// What the query API and the Trace View both show, built once: trace views (waterfall data), span
/// details with decoded bodies, trace lists and the service graph. Endpoints and pages call these;
/// neither builds its own.
/// </summary>
internal static class SpanViews
{
    /// <summary>The API form of a search page; the UI shares it.</summary>
    internal static TraceListDto ToTraceList(TracePage page)
    {
        var items = new List<TraceSummaryDto>(page.Items.Count);
        foreach (var t in page.Items)
        {
            items.Add(new TraceSummaryDto(t.TraceId, t.StartTime, Ms(t.EndTime - t.StartTime), t.RootService, t.RootName, t.RootMethod, t.RootRoute,
                t.RootStatusCode, t.SpanCount, t.ErrorCount, t.ClientErrorCount, t.Services, t.SessionId) { RootGrpcStatus = t.RootGrpcStatus });
        }

        return new TraceListDto(items, page.NextCursor, page.ScanLimited);
    }

    /// <summary>Nodes (every service, with health), edges and rates over the traffic's own time span. The UI shares it.</summary>
    internal static async Task<ServiceGraphDto> ServiceGraphAsync(ISpanQueryStore store, long tenant, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken)
    {
        var edges = await store.GetServiceGraphAsync(tenant, from, to, cancellationToken).ConfigureAwait(false);
        var health = await store.GetServiceHealthAsync(tenant, from, to, cancellationToken).ConfigureAwait(false);
        var nodes = new SortedDictionary<string, ServiceNodeDto>(StringComparer.Ordinal);
        DateTimeOffset? first = null, last = null;
        foreach (var h in health)
        {
            first = first is null || h.FirstSeen < first ? h.FirstSeen : first;
            last = last is null || h.LastSeen > last ? h.LastSeen : last;
            nodes[h.Service] = new ServiceNodeDto(h.Service, h.Served, h.Errors, h.ClientErrors, Rate(h.Errors, h.Served), Health(h.Errors, h.Served));
        }

        // A rate over the whole selected window understates bursts (184 calls in 2 minutes are not 0.13/min over a day).
        var minutes = first is { } f && last is { } l ? Math.Max(1, (l - f).TotalMinutes) : 1;
        var dtos = new List<ServiceEdgeDto>(edges.Count);
        foreach (var e in edges)
        {
            foreach (var name in new[] { e.Caller, e.Callee })
            {
                // A host the caller reached that no agent captured: a node without its own numbers.
                nodes.TryAdd(name, new ServiceNodeDto(name, 0, 0, 0, 0, "unknown"));
            }

            dtos.Add(new ServiceEdgeDto(e.Caller, e.Callee, e.Calls, e.Errors, Rate(e.Errors, e.Calls), e.P50Ms, e.P95Ms, e.P99Ms)
            {
                ClientErrors = e.ClientErrors,
                ClientErrorRate = Rate(e.ClientErrors, e.Calls),
                CallsPerMinute = e.Calls / minutes,
            });
        }

        return new ServiceGraphDto(from, to, [.. nodes.Keys], dtos)
        {
            Nodes = [.. nodes.Values],
            TrafficFrom = first,
            TrafficTo = last,
        };
    }

    /// <summary>A node's colour class from its error rate (the one error definition).</summary>
    internal static string Health(long errors, long requests) => requests == 0
        ? "unknown"
        : Rate(errors, requests) switch
        {
            >= 0.05 => "failing",
            >= 0.01 => "degraded",
            _ => "healthy",
        };

    /// <summary>Waterfall data of a trace's spans (at least one, in start order): offsets, depths and roots. The UI shares it.</summary>
    internal static TraceViewDto ToTraceView(string id, IReadOnlyList<SpanSummary> spans)
    {
        var start = spans[0].StartTime;
        var end = spans[0].EndTime;
        var known = new Dictionary<string, SpanSummary>(StringComparer.Ordinal);
        foreach (var s in spans)
        {
            known[s.SpanId] = s;
            start = s.StartTime < start ? s.StartTime : start;
            end = s.EndTime > end ? s.EndTime : end;
        }

        var roots = new List<string>();
        var rows = new List<WaterfallSpanDto>(spans.Count);
        foreach (var s in spans)
        {
            var depth = 0;
            var parent = s.ParentSpanId;
            // Bounded walk: a malicious exporter could send a parent cycle.
            while (parent is not null && depth < spans.Count && known.TryGetValue(parent, out var p))
            {
                depth++;
                parent = p.ParentSpanId;
            }

            if (s.ParentSpanId is null || !known.ContainsKey(s.ParentSpanId))
            {
                roots.Add(s.SpanId);
            }

            rows.Add(new WaterfallSpanDto(ToDto(s), Ms(s.StartTime - start), depth));
        }

        return new TraceViewDto(id, start, Ms(end - start), roots, rows);
    }

    /// <summary>
    /// The full view of a stored span: body metadata moves from the attributes into the bodies; a gRPC
    /// call is decoded with <paramref name="grpc"/> (not at all when null: callers that only replay or
    /// compare the exchange skip the decode).
    /// </summary>
    internal static SpanDetailDto ToDetail(StoredSpan span, GrpcCalls.GrpcCallDecoder? grpc = null, Core.GrpcMessages.ProtobufDecodeBudget? grpcBudget = null)
    {
        var attributes = JsonNode.Parse(span.AttributesJson) as JsonObject ?? [];
        var requestBody = ToBody(span.RequestBody, attributes, OtlpAttributes.RequestBodyMetaPrefix);
        var responseBody = ToBody(span.ResponseBody, attributes, OtlpAttributes.ResponseBodyMetaPrefix);
        var summary = new SpanDto(
            span.TraceId, span.SpanId, span.ParentSpanId, span.Name, span.Kind, span.ServiceName, span.StartTime, span.EndTime,
            Ms(span.Duration), span.IsError, span.IsExchange, span.SessionId, span.Direction, span.Method, span.Authority, span.Path, span.StatusCode)
        {
            GrpcStatus = span.GrpcStatus,
        };
        return new SpanDetailDto
        {
            Span = summary,
            Scheme = span.Scheme,
            Query = span.Query,
            Route = span.Route,
            RequestHeaders = ParseJson(span.RequestHeadersJson),
            ResponseHeaders = ParseJson(span.ResponseHeadersJson),
            RequestBody = requestBody,
            ResponseBody = responseBody,
            Attributes = ParseJson(attributes.ToJsonString())!.Value,
            Model = SpanModelReader.Read(span.ModelJson, span.IsError),
            Grpc = grpc?.Decode(attributes, span.Path, grpcBudget),
        };
    }

    internal static BodyDto? ToBody(ReadOnlyMemory<byte> content, JsonObject attributes, string prefix)
    {
        var kind = Take(attributes, prefix + OtlpAttributes.BodyKindSuffix)?.GetValue<string>();
        var size = Take(attributes, prefix + OtlpAttributes.BodySizeSuffix);
        var truncated = Take(attributes, prefix + OtlpAttributes.BodyTruncatedSuffix);
        var contentType = Take(attributes, prefix + OtlpAttributes.BodyContentTypeSuffix)?.GetValue<string>();
        var contentEncoding = Take(attributes, prefix + OtlpAttributes.BodyContentEncodingSuffix)?.GetValue<string>();
        var decoded = Take(attributes, prefix + OtlpAttributes.BodyDecodedSuffix);
        if (content.IsEmpty && kind is null)
        {
            return null;
        }

        var bytes = content.Span;
        var isText = !string.Equals(kind, "binary", StringComparison.Ordinal);
        var asText = isText && Utf8.IsValid(bytes);
        return new BodyDto(
            asText ? "text" : "base64",
            isText ? "text" : "binary",
            asText ? Encoding.UTF8.GetString(bytes) : Convert.ToBase64String(bytes),
            bytes.Length,
            size is null ? bytes.Length : size.GetValue<long>(),
            truncated is not null && truncated.GetValue<bool>(),
            contentType,
            contentEncoding,
            decoded is not null && decoded.GetValue<bool>());
    }

    internal static JsonNode? Take(JsonObject attributes, string key)
    {
        if (attributes.TryGetPropertyValue(key, out var node))
        {
            attributes.Remove(key);
            return node;
        }

        return null;
    }

    internal static JsonElement? ParseJson(string? json)
    {
        if (json is null)
        {
            return null;
        }

        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    internal static SpanDto ToDto(StoredSpan s) => new(
        s.TraceId, s.SpanId, s.ParentSpanId, s.Name, s.Kind, s.ServiceName, s.StartTime, s.EndTime, Ms(s.Duration),
        s.IsError, s.IsExchange, s.SessionId, s.Direction, s.Method, s.Authority, s.Path, s.StatusCode)
    {
        GrpcStatus = s.GrpcStatus,
    };

    internal static SpanDto ToDto(SpanSummary s) => new(
        s.TraceId, s.SpanId, s.ParentSpanId, s.Name, s.Kind, s.ServiceName, s.StartTime, s.EndTime, Ms(s.EndTime - s.StartTime),
        s.IsError, s.IsExchange, s.SessionId, s.Direction, s.Method, s.Authority, s.Path, s.StatusCode)
    {
        GrpcStatus = s.GrpcStatus,
    };

    internal static double Ms(TimeSpan span) => span.TotalMilliseconds;

    internal static double Rate(long errors, long calls) => calls == 0 ? 0 : (double)errors / calls;
}
