using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Tests.Infrastructure;

/// <summary>Exchanges and options for exporter and pipeline tests.</summary>
public static class TestExchanges
{
    /// <summary>A finished inbound GET with a JSON response.</summary>
    public static Exchange Get(string path = "/api/orders/1", string service = "orders", string? responseBody = "{\"id\":1}")
    {
        var start = new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);
        var exchange = new Exchange
        {
            Direction = TrafficDirection.Inbound,
            ServiceName = service,
            Method = "GET",
            Authority = "orders.shop.svc:8080",
            Path = path,
            StatusCode = 200,
            StartTime = start,
            EndTime = start.AddMilliseconds(12),
            TraceId = ActivityTraceId.CreateRandom(),
            SpanId = ActivitySpanId.CreateRandom(),
        };
        exchange.RequestHeaders.Add("accept", "application/json");
        exchange.ResponseHeaders.Add("content-type", "application/json");
        if (responseBody is not null)
        {
            var bytes = Encoding.UTF8.GetBytes(responseBody);
            exchange.ResponseBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json");
        }

        return exchange;
    }

    /// <summary>Options pointing at <paramref name="backend"/>, with a public key and fast batching.</summary>
    public static AgentOptions Options(Uri backend, string publicKey = "test-key")
    {
        var options = new AgentOptions { SpBackendUrl = backend, PublicKey = publicKey };
        options.Export.BatchDelayMs = 20;
        return options;
    }

    /// <summary>A loopback URL nothing listens on (connections are refused).</summary>
    public static Uri RefusingBackend()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return new Uri($"http://127.0.0.1:{port}");
    }
}
