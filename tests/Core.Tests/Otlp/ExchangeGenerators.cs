using System.Diagnostics;
using FsCheck;
using FsCheck.Fluent;
using SpIstio.Core.Model;

namespace SpIstio.Core.Tests.Otlp;

/// <summary>FsCheck generators for arbitrary, model-valid exchanges.</summary>
public static class ExchangeGenerators
{
    // Pieces that exercise escaping and UTF-8 (multi-byte, a surrogate pair) without lone surrogates,
    // which no UTF-8 wire format can carry.
    private static readonly string[] _textPieces = ["a", "Z", "0", " ", "-", "é", "中", "😀", "\"", "\\", "=", ";", "/", "\t", "%20", "{", "}"];
    private static readonly string[] _headerNames = ["accept", "x-a", "x-b", "content-type", "set-cookie", "x-request-id", "cookie"];

    /// <summary>Arbitrary exchanges for <c>[Property(Arbitrary = …)]</c>.</summary>
    public static Arbitrary<Exchange> Exchange() => ExchangeGen.ToArbitrary();

    private static Gen<string> Text(int max) =>
        Gen.Choose(0, max).SelectMany(n => Gen.Elements(_textPieces).ArrayOf(n)).Select(p => string.Concat(p));

    private static Gen<string> Token =>
        Gen.Choose(1, 8).SelectMany(n => Gen.Elements("abcdefghijklmnopqrstuvwxyz0123456789".ToCharArray()).ArrayOf(n)).Select(c => new string(c));

    private static Gen<byte[]> Bytes(int length) => Gen.Choose(0, 255).Select(i => (byte)i).ArrayOf(length);

    private static Gen<T?> OrNullRef<T>(Gen<T> gen)
        where T : class =>
        Gen.Frequency((1, Gen.Constant<T?>(null)), (3, gen.Select(x => (T?)x)));

    private static Gen<string> Path =>
        Gen.Choose(0, 4).SelectMany(n => Gen.OneOf(Token, Text(3).Where(s => !s.Contains('?'))).ArrayOf(n))
            .Select(segments => "/" + string.Join("/", segments));

    private static Gen<string> Authority =>
        from host in Gen.Elements("example.com", "payments.default.svc.cluster.local", "10.0.0.7", "[::1]", "")
        from port in Gen.Elements("", ":80", ":8080", ":65535")
        select host.Length == 0 ? "" : host + port;

    private static Gen<List<KeyValuePair<string, string>>> Headers =>
        Gen.Choose(0, 8).SelectMany(n =>
            (from name in Gen.Elements(_headerNames)
             from value in Text(6)
             select new KeyValuePair<string, string>(name, value)).ListOf(n));

    private static Gen<CapturedBody> Body =>
        Gen.OneOf(
            Gen.Constant(CapturedBody.Empty),
            from text in Text(12)
            from meta in BodyMeta
            select Make(System.Text.Encoding.UTF8.GetBytes(text), BodyKind.Text, meta),
            from length in Gen.Choose(0, 40)
            from bytes in Bytes(length)
            from meta in BodyMeta
            select Make(bytes, BodyKind.Binary, meta),
            // Text in a charset other than UTF-8 (ISO-8859-1 "é").
            BodyMeta.Select(meta => Make([0x63, 0x61, 0x66, 0xE9], BodyKind.Text, meta)),
            // Seen but not captured (capture limit 0): only the metadata.
            BodyMeta.Select(meta => Make([], BodyKind.Empty, meta)));

    private static Gen<(int Extra, bool Truncated, string? ContentType, string? Encoding, bool Decoded)> BodyMeta =>
        from extra in Gen.Elements(0, 0, 10, -1)
        from contentType in OrNullRef(Gen.Elements("application/json", "text/plain; charset=utf-8", "image/png"))
        from encoding in OrNullRef(Gen.Elements("gzip", "br"))
        from decoded in Gen.Elements(true, false)
        select (extra, extra > 0, contentType, encoding, decoded && encoding is not null);

    private static CapturedBody Make(byte[] content, BodyKind kind, (int Extra, bool Truncated, string? ContentType, string? Encoding, bool Decoded) meta) =>
        new(content, meta.Extra < 0 ? -1 : content.Length + meta.Extra, meta.Truncated, kind, meta.ContentType, meta.Encoding, meta.Decoded);

    private static Gen<DateTimeOffset> Time =>
        from seconds in Gen.Choose(0, int.MaxValue)
        from ticks in Gen.Choose(0, 9_999_999)
        select new DateTimeOffset(DateTime.UnixEpoch.Ticks + (seconds * TimeSpan.TicksPerSecond) + ticks, TimeSpan.Zero);

    private static Gen<Dictionary<string, string>> Attributes =>
        from n in Gen.Choose(0, 4)
        from keys in Token.Select(t => "app." + t).ArrayOf(n)
        from values in Text(5).ArrayOf(n)
        from inject in Gen.Frequency((4, Gen.Constant(false)), (1, Gen.Constant(true)))
        select Build(keys, values, inject);

    private static Dictionary<string, string> Build(string[] keys, string[] values, bool inject)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < keys.Length; i++)
        {
            d[keys[i]] = values[i];
        }

        if (inject)
        {
            // The original's lookup spans: a span type other than "extract" must survive.
            d["sp.span.type"] = "inject";
        }

        return d;
    }

    private static Gen<Exchange> ExchangeGen =>
        from direction in Gen.Elements(TrafficDirection.Inbound, TrafficDirection.Outbound)
        from service in Gen.Elements("checkout", "default-service", "payments-v2", "svc.with.dots")
        from method in Gen.Elements("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PURGE")
        from scheme in Gen.Elements("http", "https")
        from authority in Authority
        from path in Path
        from query in OrNullRef(Gen.Elements("", "a=1", "a=1&b=%20x", "q=é&q=2"))
        from requestHeaders in Headers
        from requestBody in Body
        from status in Gen.Frequency((1, Gen.Constant<int?>(null)), (5, Gen.Choose(100, 599).Select(s => (int?)s)))
        from responseHeaders in Headers
        from responseBody in Body
        from start in Time
        from duration in Gen.Choose(0, int.MaxValue)
        from traceId in Bytes(16).Where(b => b.Any(x => x != 0))
        from spanId in Bytes(8).Where(b => b.Any(x => x != 0))
        from parent in Gen.OneOf(Gen.Constant(new byte[8]), Bytes(8))
        from session in OrNullRef(Gen.OneOf(Token, Text(4)))
        from cache in Gen.Elements(CacheOutcome.None, CacheOutcome.Hit, CacheOutcome.Miss)
        from outcome in Gen.Elements(ExchangeOutcome.Completed, ExchangeOutcome.Completed, ExchangeOutcome.Failed, ExchangeOutcome.Cancelled, ExchangeOutcome.TimedOut)
        from error in OrNullRef(Text(5))
        from attributes in Attributes
        select Create(direction, service, method, scheme, authority, path, query, requestHeaders, requestBody, status,
            responseHeaders, responseBody, start, duration, traceId, spanId, parent, session, cache, outcome, error, attributes);

    private static Exchange Create(
        TrafficDirection direction, string service, string method, string scheme, string authority, string path, string? query,
        List<KeyValuePair<string, string>> requestHeaders, CapturedBody requestBody, int? status,
        List<KeyValuePair<string, string>> responseHeaders, CapturedBody responseBody, DateTimeOffset start, int duration,
        byte[] traceId, byte[] spanId, byte[] parent, string? session, CacheOutcome cache, ExchangeOutcome outcome, string? error,
        Dictionary<string, string> attributes)
    {
        var exchange = new Exchange
        {
            Direction = direction,
            ServiceName = service,
            Method = method,
            Scheme = scheme,
            Authority = authority,
            Path = path,
            Query = query,
            RequestBody = requestBody,
            StatusCode = status,
            ResponseBody = responseBody,
            StartTime = start,
            EndTime = start.AddTicks(duration),
            TraceId = ActivityTraceId.CreateFromBytes(traceId),
            SpanId = ActivitySpanId.CreateFromBytes(spanId),
            ParentSpanId = parent.Any(b => b != 0) ? ActivitySpanId.CreateFromBytes(parent) : default,
            SessionId = session,
            Cache = cache,
            Outcome = outcome,
            Error = error,
        };
        foreach (var (name, value) in requestHeaders)
        {
            exchange.RequestHeaders.Add(name, value);
        }

        foreach (var (name, value) in responseHeaders)
        {
            exchange.ResponseHeaders.Add(name, value);
        }

        foreach (var (key, value) in attributes)
        {
            exchange.Attributes[key] = value;
        }

        return exchange;
    }
}
