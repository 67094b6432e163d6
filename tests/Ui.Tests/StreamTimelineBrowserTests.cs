using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using OpenQA.Selenium;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Storage;
using SpIstio.Core.Model;
using SpIstio.Core.Streams;
using SpIstio.Ui.Tests.Infrastructure;

namespace SpIstio.Ui.Tests;

/// <summary>
/// The exchange page's stream timeline in real Chromium: an SSE exchange and a WebSocket exchange,
/// their attributes written by the agent's own readers, ingested through the real OTLP endpoint of
/// a real backend (SQLite), shown under the strict CSP with no violation.
/// </summary>
public sealed class StreamTimelineBrowserTests : IAsyncLifetime, IDisposable
{
    private readonly Browser browser = new();
    private readonly ActivityTraceId trace = ActivityTraceId.CreateRandom();
    private readonly ActivitySpanId sseSpan = ActivitySpanId.CreateRandom();
    private readonly ActivitySpanId wsSpan = ActivitySpanId.CreateRandom();
    private string directory = "";
    private BackendServer server = null!;
    private string readKey = "";

    public async Task InitializeAsync()
    {
        directory = Path.Combine(Path.GetTempPath(), "sp-ui-streams-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        server = await BackendServer.StartAsync(new BackendOptions { Listen = "127.0.0.1:0", Store = "sqlite:" + Path.Combine(directory, "sp.db") }, NullLoggerFactory.Instance);
        readKey = (await KeyAdministration.CreateKeyAsync(server.Store, "acme", KeyScope.Read, "ui", TimeProvider.System, CancellationToken.None)).Key;
        var ingestKey = (await KeyAdministration.CreateKeyAsync(server.Store, "acme", KeyScope.Ingest, "agent", TimeProvider.System, CancellationToken.None)).Key;

        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        var sse = Exchange("/prices", sseSpan, start, 200);
        sse.ResponseHeaders.Add("content-type", "text/event-stream");
        using (var reader = new SseEventReader(StreamCaptureLimits.Default))
        {
            reader.Append("id: 41\nevent: price\ndata: {\"sku\":\"BOOK-1\",\"cents\":1299}\n\n"u8, TimeSpan.FromMilliseconds(12));
            reader.Append("data: market closed\n\n"u8, TimeSpan.FromMilliseconds(2500));
            reader.Complete();
            sse.Attributes[StreamSpanAttributes.SseEvents] = StreamSpanAttributes.EncodeSse(reader, StreamEnd.Deadline, null, out _);
        }

        var ws = Exchange("/chat", wsSpan, start, 101);
        ws.ResponseHeaders.Add("upgrade", "websocket");
        using (var reader = new WebSocketFrameReader(StreamCaptureLimits.Default))
        {
            // The client's frames are masked (RFC 6455 §5.3); the server's are not.
            reader.Append(WebSocketDirection.Send, Masked(0x81, "hello chat"u8), TimeSpan.FromMilliseconds(5));
            reader.Append(WebSocketDirection.Receive, [0x82, 0x03, 1, 2, 3], TimeSpan.FromMilliseconds(7.5));
            reader.Append(WebSocketDirection.Send, Masked(0x88, [0x03, 0xE8, .. "bye"u8]), TimeSpan.FromMilliseconds(30));
            reader.Append(WebSocketDirection.Receive, [0x88, 0x02, 0x03, 0xE8], TimeSpan.FromMilliseconds(31));
            reader.Complete();
            ws.Attributes[StreamSpanAttributes.WebSocketMessages] = StreamSpanAttributes.EncodeWebSocket(reader, StreamEnd.Closed, null, out _);
        }

        await OtlpIngest.SendAsync(server, ingestKey, [sse, ws]);
    }

    public async Task DisposeAsync()
    {
        await server.StopAsync();
        Directory.Delete(directory, recursive: true);
    }

    public void Dispose() => browser.Dispose();

    [Fact]
    public void ExchangePage_ShowsSseEventsAndWebSocketMessagesAsATimeline_UnderTheStrictCsp()
    {
        CspViolations.Record(browser);
        browser.SignIn(server.Address, readKey);

        browser.Go(server.Address, "/traces/" + trace + "/spans/" + sseSpan);
        Assert.Equal("Server-sent events", browser.Text(By.Id("stream-h")));
        Assert.Contains("2 events captured", browser.Text(By.Id("stream-summary")), StringComparison.Ordinal);
        Assert.Contains("deadline", browser.Text(By.Id("stream-summary")), StringComparison.Ordinal);
        var sseRows = Rows();
        Assert.Equal(2, sseRows.Count);
        Assert.Contains("+12", sseRows[0][1], StringComparison.Ordinal);
        Assert.Equal("price id 41", sseRows[0][3]);
        Assert.Equal("{\"sku\":\"BOOK-1\",\"cents\":1299}", sseRows[0][4]);
        Assert.Equal(("message", "market closed"), (sseRows[1][3], sseRows[1][4]));
        AssertNoViolations();
        browser.Screenshot("stream-timeline-sse");

        browser.Go(server.Address, "/traces/" + trace + "/spans/" + wsSpan);
        Assert.Equal("WebSocket messages", browser.Text(By.Id("stream-h")));
        Assert.Contains("closing handshake", browser.Text(By.Id("stream-summary")), StringComparison.Ordinal);
        var wsRows = Rows();
        Assert.Equal(
            ["↑ send|text|hello chat", "↓ receive|binary|3 B", "↑ send|close 1000|bye", "↓ receive|close 1000|2 B"],
            wsRows.Select(r => r[2] + "|" + r[3] + "|" + r[4]));
        Assert.Contains("send", browser.FindAll(By.CssSelector("#stream-events tbody tr")).First().GetAttribute("class"), StringComparison.Ordinal);
        AssertNoViolations();
        browser.Screenshot("stream-timeline-ws");
    }

    private List<string[]> Rows() =>
        browser.FindAll(By.CssSelector("#stream-events tbody tr"))
            .Select(r => r.FindElements(By.TagName("td")).Select(c => c.Text.Trim()).ToArray())
            .ToList();

    private void AssertNoViolations() => CspViolations.AssertNone(browser);

    private Exchange Exchange(string path, ActivitySpanId span, DateTimeOffset start, int status) => new()
    {
        ServiceName = "frontend",
        Direction = TrafficDirection.Inbound,
        Method = "GET",
        Authority = "shop.example",
        Path = path,
        StatusCode = status,
        TraceId = trace,
        SpanId = span,
        StartTime = start,
        EndTime = start.AddSeconds(3),
        SessionId = "streams-1",
    };

    private static byte[] Masked(byte first, ReadOnlySpan<byte> payload)
    {
        byte[] mask = [0x0A, 0x0B, 0x0C, 0x0D];
        var frame = new byte[6 + payload.Length];
        frame[0] = first;
        frame[1] = (byte)(0x80 | payload.Length);
        mask.CopyTo(frame, 2);
        for (var i = 0; i < payload.Length; i++)
        {
            frame[6 + i] = (byte)(payload[i] ^ mask[i % 4]);
        }

        return frame;
    }
}
