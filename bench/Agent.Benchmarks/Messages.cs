using Google.Protobuf;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.ExtProc.Proto.Core;

namespace SpIstio.Agent.Benchmarks;

/// <summary>The messages Envoy sends for one exchange, built once and reused (Envoy's side is not what is measured).</summary>
internal sealed class ExchangeScript
{
    private ExchangeScript(string name, ProcessingRequest[] messages, bool observability)
    {
        Name = name;
        Messages = messages;
        Observability = observability;
    }

    public string Name { get; }

    public ProcessingRequest[] Messages { get; }

    public bool Observability { get; }

    /// <summary>GET, request and response headers only.</summary>
    public static ExchangeScript HeaderOnly() => new(
        "headers-only sync",
        [
            RequestHeaders("GET", "/api/items/42", endOfStream: true, ("accept", "application/json")),
            ResponseHeaders(endOfStream: true, ("content-type", "application/json"), ("content-length", "0")),
        ],
        observability: false);

    /// <summary>POST with a JSON body of <paramref name="bytes"/> each way, bodies BUFFERED (one message each).</summary>
    public static ExchangeScript Body(int bytes, bool observability)
    {
        var body = ByteString.CopyFromUtf8(Json(bytes));
        var length = bytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var messages = new[]
        {
            RequestHeaders("POST", "/api/orders", endOfStream: false, ("content-type", "application/json"), ("content-length", length)),
            new ProcessingRequest { RequestBody = new HttpBody { Body = body, EndOfStream = true } },
            ResponseHeaders(endOfStream: false, ("content-type", "application/json"), ("content-length", length)),
            new ProcessingRequest { ResponseBody = new HttpBody { Body = body, EndOfStream = true } },
        };
        foreach (var message in messages)
        {
            message.ObservabilityMode = observability;
        }

        var size = bytes % 1024 == 0 ? (bytes / 1024).ToString(System.Globalization.CultureInfo.InvariantCulture) + " KiB" : length + " B";
        return new ExchangeScript(size + (observability ? " bodies observability" : " bodies sync"), messages, observability);
    }

    private static ProcessingRequest RequestHeaders(string method, string path, bool endOfStream, params (string, string)[] extra)
    {
        var map = new HeaderMap();
        map.Headers.Add(Raw(":method", method));
        map.Headers.Add(Raw(":scheme", "http"));
        map.Headers.Add(Raw(":authority", "orders.shop.svc.cluster.local:8080"));
        map.Headers.Add(Raw(":path", path));
        map.Headers.Add(Raw("user-agent", "load-driver/1.0"));
        map.Headers.Add(Raw("x-request-id", "0d6f2bb4-8c1e-4f3a-9a53-6d0c1f2e9b11"));
        map.Headers.Add(Raw("x-sp-session-id", "sess-bench-1"));
        foreach (var (name, value) in extra)
        {
            map.Headers.Add(Raw(name, value));
        }

        return new ProcessingRequest { RequestHeaders = new HttpHeaders { Headers = map, EndOfStream = endOfStream } };
    }

    private static ProcessingRequest ResponseHeaders(bool endOfStream, params (string, string)[] extra)
    {
        var map = new HeaderMap();
        map.Headers.Add(Raw(":status", "200"));
        map.Headers.Add(Raw("date", "Mon, 23 Nov 2026 11:00:00 GMT"));
        foreach (var (name, value) in extra)
        {
            map.Headers.Add(Raw(name, value));
        }

        return new ProcessingRequest { ResponseHeaders = new HttpHeaders { Headers = map, EndOfStream = endOfStream } };
    }

    private static HeaderValue Raw(string name, string value) => new() { Key = name, RawValue = ByteString.CopyFromUtf8(value) };

    private static string Json(int size)
    {
        var text = new System.Text.StringBuilder("{\"items\":[");
        var i = 0;
        while (text.Length < size - 40)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"{{\"sku\":\"A{i}\",\"qty\":{i % 7}}},");
            i++;
        }

        text.Append("{\"end\":true}]}");
        return text.ToString().PadRight(size);
    }
}
