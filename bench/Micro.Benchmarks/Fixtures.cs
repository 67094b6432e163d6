using System.Diagnostics;
using System.Globalization;
using System.Text;
using SpIstio.Core.Model;

namespace SpIstio.Micro.Benchmarks;

/// <summary>Realistic exchanges: travel-booking JSON bodies with varying ids, prices and codes, one secret field.</summary>
internal static class Fixtures
{
    private static readonly string[] _cities = ["lisbon", "paris", "berlin", "madrid", "rome", "vienna", "prague", "oslo", "dublin", "athens"];

    /// <summary>A JSON body of exactly <paramref name="size"/> bytes; <paramref name="secret"/> adds a password field first.</summary>
    public static byte[] JsonBody(int size, int seed, bool secret)
    {
        var random = new Random(seed);
        var sb = new StringBuilder(size + 256);
        sb.Append(secret ? "{\"user\":\"ana@example.com\",\"password\":\"hunter2-secret\",\"items\":[" : "{\"items\":[");
        while (sb.Length < size - 96)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{{\"id\":{random.Next(1_000_000)},\"city\":\"{_cities[random.Next(_cities.Length)]}\",\"price\":{random.Next(20, 900)}.{random.Next(100):D2},\"seats\":{random.Next(300)},\"code\":\"{(char)('A' + random.Next(26))}{(char)('A' + random.Next(26))}{random.Next(1000)}\",\"ref\":\"R {random.Next(10_000)}-{random.Next(10_000)}\"}},");
        }

        sb.Append("{}]}");
        while (sb.Length < size)
        {
            sb.Append(' ');
        }

        return Encoding.UTF8.GetBytes(sb.ToString(0, size));
    }

    /// <summary>An inbound exchange as the agent completes it (before redaction).</summary>
    public static Exchange Exchange(int bodyBytes, int seed)
    {
        var exchange = new Exchange
        {
            Direction = TrafficDirection.Inbound,
            ServiceName = "booking",
            Method = "POST",
            Scheme = "http",
            Authority = "booking.travel.svc.cluster.local:8080",
            Path = "/api/bookings/" + seed.ToString(CultureInfo.InvariantCulture),
            Query = "lang=en&token=abc123&page=2",
            StatusCode = 200,
            StartTime = new DateTimeOffset(2025, 11, 23, 10, 0, 0, TimeSpan.Zero).AddMilliseconds(seed),
            TraceId = ActivityTraceId.CreateRandom(),
            SpanId = ActivitySpanId.CreateRandom(),
            ParentSpanId = ActivitySpanId.CreateRandom(),
            SessionId = "sess-" + (seed / 10).ToString("D8", CultureInfo.InvariantCulture),
        };
        exchange.EndTime = exchange.StartTime.AddMilliseconds(12);
        var rh = exchange.RequestHeaders;
        rh.Add(":authority", exchange.Authority);
        rh.Add(":method", "POST");
        rh.Add(":path", exchange.Target);
        rh.Add("content-type", "application/json");
        rh.Add("accept", "application/json");
        rh.Add("user-agent", "travel-web/1.4");
        rh.Add("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc");
        rh.Add("x-request-id", "7f1c1f4e-5d8b-4a4f-9a53-" + seed.ToString("D12", CultureInfo.InvariantCulture));
        rh.Add("traceparent", "00-" + exchange.TraceId.ToHexString() + "-" + exchange.ParentSpanId.ToHexString() + "-01");
        var sh = exchange.ResponseHeaders;
        sh.Add(":status", "200");
        sh.Add("content-type", "application/json");
        sh.Add("server", "envoy");
        sh.Add("x-envoy-upstream-service-time", "12");
        sh.Add("set-cookie", "sid=abcdef; Path=/; HttpOnly");
        exchange.RequestBody = new CapturedBody(JsonBody(bodyBytes, seed, secret: true), bodyBytes, false, BodyKind.Text, "application/json");
        exchange.ResponseBody = new CapturedBody(JsonBody(bodyBytes, seed + 1, secret: false), bodyBytes, false, BodyKind.Text, "application/json");
        return exchange;
    }
}
