using System.Collections.Frozen;
using System.Globalization;
using System.Text;
using System.Text.Json;
using SpIstio.Core.Model;
using SpIstio.Core.Replay;

namespace SpIstio.Agent.Cache;

/// <summary>
/// The service's mock set as last pulled from the backend (<c>GET /v1/agent/mocks</c>), indexed by
/// the backend's own match key — <see cref="ReplayKey.Default"/> over method, authority, path,
/// query and body, with an empty authority for an any-host mock — so a request is answered locally
/// exactly when <c>/v1/agent/lookup</c> would answer it. Immutable: a new pull builds a new table.
/// </summary>
public sealed class PulledMocks
{
    private readonly FrozenDictionary<string, Entry> _byKey;

    private PulledMocks(FrozenDictionary<string, Entry> byKey, int count)
    {
        _byKey = byKey;
        Count = count;
    }

    /// <summary>The empty set (nothing pulled yet).</summary>
    public static PulledMocks Empty { get; } = new(FrozenDictionary<string, Entry>.Empty, 0);

    /// <summary>Mocks in the set.</summary>
    public int Count { get; }

    /// <summary>
    /// The mock answering <paramref name="request"/> (its request side, as the backend would see it)
    /// at <paramref name="now"/>: a host-specific mock first, then an any-host one; expired mocks
    /// never answer. Null when none does.
    /// </summary>
    public CachedResponse? Find(Exchange request, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (Count == 0)
        {
            return null;
        }

        var body = request.RequestBody.Content.Span;
        if (_byKey.TryGetValue(ReplayKey.Default.Compute(request.Method, request.Authority, request.Path, request.Query, body, null), out var entry)
            && entry.IsLiveAt(now))
        {
            return entry.Response;
        }

        if (_byKey.TryGetValue(ReplayKey.Default.Compute(request.Method, "", request.Path, request.Query, body, null), out entry)
            && entry.IsLiveAt(now))
        {
            return entry.Response;
        }

        return null;
    }

    /// <summary>
    /// Parses a mock-set answer (the mock API's list JSON: <c>{"items":[{method, authority, path,
    /// query, requestBody|requestBodyBase64, status, headers, body|bodyBase64, service, expiresAt}]}</c>).
    /// When two mocks share a key, one for <paramref name="service"/> wins over an any-service one,
    /// else the older (listed first) wins.
    /// </summary>
    /// <exception cref="JsonException">The body is not such a document.</exception>
    /// <exception cref="FormatException">A base64 body is not base64.</exception>
    public static PulledMocks Parse(ReadOnlySpan<byte> json, string service)
    {
        var reader = new Utf8JsonReader(json);
        using var document = JsonDocument.ParseValue(ref reader);
        if (!document.RootElement.TryGetProperty("items", out var items) || items.ValueKind != JsonValueKind.Array)
        {
            throw new JsonException("the mock set has no 'items' array");
        }

        var byKey = new Dictionary<string, (Entry Entry, bool ForService)>(StringComparer.Ordinal);
        var count = 0;
        foreach (var item in items.EnumerateArray())
        {
            var method = (Text(item, "method") ?? "GET").ToUpperInvariant();
            var path = Text(item, "path") ?? throw new JsonException("a mock has no 'path'");
            var authority = Text(item, "authority") ?? "";
            var query = Text(item, "query") is { Length: > 0 } q ? q : null;
            var requestBody = Bytes(item, "requestBody", "requestBodyBase64");
            var headers = new HeaderList();
            if (item.TryGetProperty("headers", out var pairs) && pairs.ValueKind == JsonValueKind.Array)
            {
                foreach (var pair in pairs.EnumerateArray())
                {
                    if (pair.ValueKind == JsonValueKind.Array && pair.GetArrayLength() == 2)
                    {
                        headers.Add((pair[0].GetString() ?? "").ToLowerInvariant(), pair[1].GetString() ?? "");
                    }
                }
            }

            var status = item.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetInt32() : 200;
            DateTimeOffset? expires = Text(item, "expiresAt") is { } e
                ? DateTimeOffset.Parse(e, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind)
                : null;
            var forService = string.Equals(Text(item, "service"), service, StringComparison.Ordinal);
            var entry = new Entry(new CachedResponse(status, headers, Bytes(item, "body", "bodyBase64")), expires);
            var key = ReplayKey.Default.Compute(method, authority, path, query, requestBody, null);
            count++;
            if (!byKey.TryGetValue(key, out var existing) || (forService && !existing.ForService))
            {
                byKey[key] = (entry, forService);
            }
        }

        return new PulledMocks(byKey.ToFrozenDictionary(p => p.Key, p => p.Value.Entry, StringComparer.Ordinal), count);
    }

    private static string? Text(JsonElement item, string name) =>
        item.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static byte[] Bytes(JsonElement item, string textName, string base64Name) =>
        Text(item, base64Name) is { } base64 ? Convert.FromBase64String(base64)
        : Text(item, textName) is { } text ? Encoding.UTF8.GetBytes(text)
        : [];

    private sealed record Entry(CachedResponse Response, DateTimeOffset? ExpiresAt)
    {
        public bool IsLiveAt(DateTimeOffset now) => ExpiresAt is not { } expires || expires > now;
    }
}
