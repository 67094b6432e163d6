using System.Globalization;
using System.Text.Json;
using SpIstio.Backend.Storage;
using SpIstio.Core.Otlp;

namespace SpIstio.Backend.Api;

/// <summary>Reads the stored span model (<see cref="SpanModelJson"/>) into the API's <see cref="SpanModelDto"/>.</summary>
internal static class SpanModelReader
{
    private static readonly JsonElement s_emptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    /// <summary>
    /// The model of a stored span. Rows stored before the model was kept have none; their status is
    /// rebuilt from the error flag so every span answers with one.
    /// </summary>
    public static SpanModelDto Read(string? modelJson, bool isError)
    {
        if (string.IsNullOrEmpty(modelJson))
        {
            return new SpanModelDto { Status = new StatusDto(isError ? "ERROR" : "UNSET", null), Events = [], Links = [] };
        }

        using var document = JsonDocument.Parse(modelJson);
        var root = document.RootElement;
        JsonElement? resource = root.TryGetProperty("resource", out var r) ? r.Clone() : null;
        ScopeDto? scope = null;
        if (root.TryGetProperty("scope", out var s))
        {
            scope = new ScopeDto(
                s.GetProperty("name").GetString() ?? "",
                s.TryGetProperty("version", out var v) ? v.GetString() : null,
                s.TryGetProperty("attributes", out var sa) ? sa.Clone() : null);
        }

        var status = root.TryGetProperty("status", out var st)
            ? new StatusDto(st.GetProperty("code").GetString() ?? "UNSET", st.TryGetProperty("message", out var m) ? m.GetString() : null)
            : new StatusDto("UNSET", null);

        var events = new List<EventDto>();
        if (root.TryGetProperty("events", out var ev))
        {
            foreach (var e in ev.EnumerateArray())
            {
                var nanosText = e.GetProperty("timeUnixNano").GetString() ?? "0";
                var nanos = ulong.Parse(nanosText, NumberStyles.None, CultureInfo.InvariantCulture);
                events.Add(new EventDto(
                    e.GetProperty("name").GetString() ?? "",
                    ExchangeSpanMapper.FromUnixNanos(nanos),
                    nanosText,
                    e.TryGetProperty("attributes", out var ea) ? ea.Clone() : s_emptyObject,
                    Count(e, "droppedAttributesCount")));
            }
        }

        var links = new List<LinkDto>();
        if (root.TryGetProperty("links", out var lk))
        {
            foreach (var l in lk.EnumerateArray())
            {
                links.Add(new LinkDto(
                    l.GetProperty("traceId").GetString() ?? "",
                    l.GetProperty("spanId").GetString() ?? "",
                    l.TryGetProperty("traceState", out var ts) ? ts.GetString() : null,
                    Count(l, "flags"),
                    l.TryGetProperty("attributes", out var la) ? la.Clone() : s_emptyObject,
                    Count(l, "droppedAttributesCount")));
            }
        }

        return new SpanModelDto
        {
            Resource = resource,
            Scope = scope,
            Status = status,
            Events = events,
            Links = links,
            TraceState = root.TryGetProperty("traceState", out var state) ? state.GetString() : null,
            Flags = Count(root, "flags"),
            DroppedAttributesCount = Count(root, "droppedAttributesCount"),
            DroppedEventsCount = Count(root, "droppedEventsCount"),
            DroppedLinksCount = Count(root, "droppedLinksCount"),
        };
    }

    private static uint Count(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? value.GetUInt32() : 0;
}
