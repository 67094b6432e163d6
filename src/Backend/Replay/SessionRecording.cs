using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using SpIstio.Backend.Api;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Replay;

/// <summary>
/// Reads a recorded session from a backend's query API (<c>/api/sessions/{id}</c>, then
/// <c>/api/spans/{traceId}/{spanId}</c> per exchange): the inbound exchanges, in start order,
/// which are what a client sent to the service under test.
/// </summary>
public static class SessionRecording
{
    /// <summary>
    /// The inbound exchanges of one service of the session: <paramref name="service"/>, or when
    /// null the session's entry service (the service of its first inbound exchange: what the
    /// user's client called; the others were called by it and answer again on their own when
    /// it is replayed). Throws <see cref="ReplayException"/> with a readable reason.
    /// </summary>
    public static async Task<RecordedSession> LoadAsync(HttpClient backend, string sessionId, string? service, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        using var response = await backend.GetAsync("api/sessions/" + Uri.EscapeDataString(sessionId), cancellationToken).ConfigureAwait(false);
        await EnsureOkAsync(response, "session '" + sessionId + "'", cancellationToken).ConfigureAwait(false);
        var session = await response.Content.ReadFromJsonAsync(BackendJsonContext.Default.SessionDetailDto, cancellationToken).ConfigureAwait(false)
            ?? throw new ReplayException("the backend sent an empty session");

        var (chosen, spans) = Select(session.Spans, service);
        var recorded = new List<RecordedExchange>();
        foreach (var span in spans)
        {
            using var detailResponse = await backend.GetAsync("api/spans/" + span.TraceId + "/" + span.SpanId, cancellationToken).ConfigureAwait(false);
            await EnsureOkAsync(detailResponse, "span " + span.SpanId, cancellationToken).ConfigureAwait(false);
            var detail = await detailResponse.Content.ReadFromJsonAsync(BackendJsonContext.Default.SpanDetailDto, cancellationToken).ConfigureAwait(false)
                ?? throw new ReplayException("the backend sent an empty span");
            recorded.Add(ToRecorded(span, detail));
        }

        return new RecordedSession(chosen, service is null, recorded);
    }

    /// <summary>
    /// As above, read from the store directly (the backend's replay jobs): the tenant's session, at
    /// most <paramref name="maxExchanges"/> exchanges (more is refused: a job holds them all).
    /// </summary>
    public static async Task<RecordedSession> LoadAsync(ISpanQueryStore store, long tenant, string sessionId, string? service, int maxExchanges, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        var summaries = await store.GetSessionAsync(tenant, sessionId, cancellationToken).ConfigureAwait(false)
            ?? throw new ReplayException("session '" + sessionId + "' was not found");
        var (chosen, spans) = Select(summaries.Select(SpanViews.ToDto), service);
        if (spans.Count > maxExchanges)
        {
            throw new ReplayException(string.Create(CultureInfo.InvariantCulture, $"the session has {spans.Count} inbound exchanges of service '{chosen}'; a replay job takes at most {maxExchanges} (use sp replay for more)"));
        }

        var recorded = new List<RecordedExchange>(spans.Count);
        foreach (var span in spans)
        {
            var stored = await store.GetSpanAsync(tenant, span.TraceId, span.SpanId, cancellationToken).ConfigureAwait(false)
                ?? throw new ReplayException("span " + span.SpanId + " was not found (retention removed it while the job loaded the session)");
            recorded.Add(ToRecorded(span, SpanViews.ToDetail(stored)));
        }

        return new RecordedSession(chosen, service is null, recorded);
    }

    /// <summary>
    /// Other recordings of <paramref name="replayed"/>'s journey (<c>--learn-from auto</c>): among the
    /// tenant's most recent 50 sessions that touched the same service, those whose inbound exchanges
    /// of that service have the same steps (<see cref="SessionValues.StepsDiffer"/>, checked on the
    /// session's span list before any exchange is read), at most <paramref name="max"/>.
    /// </summary>
    public static async Task<IReadOnlyList<JourneyRecording>> FindJourneysAsync(HttpClient backend, string sessionId, RecordedSession replayed, int max, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(replayed);
        var found = new List<JourneyRecording>();
        if (replayed.Service is null)
        {
            return found;
        }

        using var response = await backend.GetAsync("api/sessions?limit=50&service=" + Uri.EscapeDataString(replayed.Service), cancellationToken).ConfigureAwait(false);
        await EnsureOkAsync(response, "the session list", cancellationToken).ConfigureAwait(false);
        var page = await response.Content.ReadFromJsonAsync(BackendJsonContext.Default.SessionListDto, cancellationToken).ConfigureAwait(false);
        foreach (var candidate in page?.Items ?? [])
        {
            if (found.Count >= max)
            {
                break;
            }

            if (string.Equals(candidate.SessionId, sessionId, StringComparison.Ordinal))
            {
                continue;
            }

            using var detailResponse = await backend.GetAsync("api/sessions/" + Uri.EscapeDataString(candidate.SessionId), cancellationToken).ConfigureAwait(false);
            if (detailResponse.StatusCode != HttpStatusCode.OK
                || await detailResponse.Content.ReadFromJsonAsync(BackendJsonContext.Default.SessionDetailDto, cancellationToken).ConfigureAwait(false) is not { } detail)
            {
                // Retention removed it since the list was read: not a recording any more.
                continue;
            }

            var (_, spans) = Select(detail.Spans, replayed.Service);
            var steps = spans.Select(s => new RecordedExchange { TraceId = s.TraceId, SpanId = s.SpanId, Method = s.Method ?? "GET", Path = s.Path ?? "/" }).ToList();
            if (SessionValues.StepsDiffer(replayed.Exchanges, steps) is null)
            {
                var loaded = await LoadAsync(backend, candidate.SessionId, replayed.Service, cancellationToken).ConfigureAwait(false);
                found.Add(new JourneyRecording(candidate.SessionId, loaded.Exchanges));
            }
        }

        return found;
    }

    /// <summary>The service to replay (the given one or the entry service) and its inbound exchanges with a response, in start order.</summary>
    private static (string? Service, List<SpanDto> Spans) Select(IEnumerable<SpanDto> sessionSpans, string? service)
    {
        var all = sessionSpans.OrderBy(s => s.StartTime).ToList();
        service ??= all.FirstOrDefault(s => s.IsExchange && string.Equals(s.Direction, "inbound", StringComparison.Ordinal) && s.StatusCode is not null)?.ServiceName;
        var chosen = all.Where(span => span.IsExchange && string.Equals(span.Direction, "inbound", StringComparison.Ordinal) && span.StatusCode is not null
            && (service is null || string.Equals(span.ServiceName, service, StringComparison.Ordinal))).ToList();
        return (service, chosen);
    }

    private static RecordedExchange ToRecorded(SpanDto span, SpanDetailDto detail) => new()
    {
        TraceId = span.TraceId,
        SpanId = span.SpanId,
        Service = span.ServiceName,
        StartTime = span.StartTime,
        Method = span.Method ?? "GET",
        Path = span.Path ?? "/",
        Query = detail.Query,
        RequestHeaders = Pairs(detail.RequestHeaders),
        RequestBody = Bytes(detail.RequestBody),
        RequestBodyTruncated = detail.RequestBody?.Truncated == true,
        Status = span.StatusCode ?? 0,
        ResponseHeaders = Pairs(detail.ResponseHeaders),
        ResponseBody = Bytes(detail.ResponseBody),
        ResponseBodyTruncated = detail.ResponseBody?.Truncated == true,
    };

    private static async Task EnsureOkAsync(HttpResponseMessage response, string what, CancellationToken cancellationToken)
    {
        if (response.StatusCode == HttpStatusCode.OK)
        {
            return;
        }

        var reason = response.StatusCode switch
        {
            HttpStatusCode.NotFound => what + " was not found",
            HttpStatusCode.Unauthorized => "the backend refused the key (401): pass one with read scope in --key or SP_API_KEY",
            HttpStatusCode.Forbidden => "the key has no read scope (403)",
            _ => what + ": the backend answered " + (int)response.StatusCode + " " + await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false),
        };
        throw new ReplayException(reason);
    }

    private static List<KeyValuePair<string, string>> Pairs(JsonElement? json)
    {
        var list = new List<KeyValuePair<string, string>>();
        if (json is not { ValueKind: JsonValueKind.Array } array)
        {
            return list;
        }

        foreach (var pair in array.EnumerateArray())
        {
            if (pair.GetArrayLength() >= 2)
            {
                list.Add(new(pair[0].GetString() ?? "", pair[1].GetString() ?? ""));
            }
        }

        return list;
    }

    private static byte[] Bytes(BodyDto? body) => body is null
        ? []
        : string.Equals(body.Encoding, "base64", StringComparison.Ordinal) ? Convert.FromBase64String(body.Content) : Encoding.UTF8.GetBytes(body.Content);
}

/// <summary>The exchanges to replay and whose they are.</summary>
/// <param name="Service">The service that received them (null when the session has no inbound exchange).</param>
/// <param name="IsEntryService">True when the service was not given and the session's entry service was taken.</param>
/// <param name="Exchanges">Its inbound exchanges, in start order.</param>
public sealed record RecordedSession(string? Service, bool IsEntryService, IReadOnlyList<RecordedExchange> Exchanges);

/// <summary>A replay could not start or continue; the message says why, for the user.</summary>
public sealed class ReplayException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ReplayException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ReplayException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public ReplayException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
