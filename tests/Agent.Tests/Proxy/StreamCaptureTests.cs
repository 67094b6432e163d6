using System.Net;
using System.Net.ServerSentEvents;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Agent.Proxy;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Streams;

namespace SpIstio.Agent.Tests.Proxy;

/// <summary>Server-sent events and WebSockets through the capture proxy, with real Kestrel peers and BCL clients.</summary>
public sealed class StreamCaptureTests
{
    [Fact]
    public async Task Sse_events_reach_the_client_live_and_the_exported_span_holds_them_redacted()
    {
        var clientGotFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("id: 1\nevent: greeting\ndata: hello\n\n");
            await context.Response.Body.FlushAsync();

            // Event 2 is written only once the client holds event 1: a proxy that buffered would never get here.
            await clientGotFirst.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await context.Response.WriteAsync(": keep-alive\n\nid: 2\ndata: {\"user\":\"ann\",\n");
            await context.Response.Body.FlushAsync();
            await context.Response.WriteAsync("data: \"password\":\"hunter2\"}\n\ndata: bye\n\n");
        });
        var options = new AgentOptions
        {
            SpBackendUrl = receiver.BaseAddress,
            PublicKey = "pk-test",
            Export = new ExportOptions { BatchDelayMs = 20 },
        };
        await using var runtime = AgentRuntime.Create(options, NullLoggerFactory.Instance);
        await using var proxy = await CaptureProxyServer.StartAsync(
            new ListenAddress("127.0.0.1", 0),
            new CaptureProxyOptions { Upstream = upstream.Address },
            runtime.Pipeline,
            NullLoggerFactory.Instance);
        using var client = new HttpClient { BaseAddress = proxy.Address };

        using var response = await client.GetAsync("/events", HttpCompletionOption.ResponseHeadersRead);
        var received = new List<SseItem<string>>();
        await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
        {
            received.Add(item);
            clientGotFirst.TrySetResult();
        }

        Assert.Equal(["hello", "{\"user\":\"ann\",\n\"password\":\"hunter2\"}", "bye"], received.Select(e => e.Data));
        await receiver.WaitForSpansAsync(1);
        var span = Assert.Single(receiver.Spans);
        var attributes = span.Attributes.ToDictionary(a => a.Key, a => ExchangeSpanMapper.AsString(a.Value));
        var events = StreamSpanAttributes.DecodeSse(attributes[StreamSpanAttributes.SseEvents]);
        Assert.NotNull(events);
        Assert.Equal((3, false, StreamEnd.Complete), (events.Count, events.Truncated, events.End));
        Assert.Equal(("1", "greeting", "hello"), (events.Events[0].Id, events.Events[0].Event, events.Events[0].Data));
        Assert.Equal("2", events.Events[1].Id);
        Assert.Contains("\"user\":\"ann\"", events.Events[1].Data);
        Assert.DoesNotContain("hunter2", attributes[StreamSpanAttributes.SseEvents]);
        Assert.DoesNotContain("hunter2", attributes["http.response.body"]);
        Assert.StartsWith("id: 1\nevent: greeting\ndata: hello\n\n", attributes["http.response.body"]);
        Assert.True(events.Events[1].Offset >= events.Events[0].Offset);
    }

    [Fact]
    public async Task Sse_capture_stops_at_the_deadline_while_the_stream_goes_on()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var afterDeadline = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("data: early\n\n");
            await context.Response.Body.FlushAsync();
            await afterDeadline.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await context.Response.WriteAsync("data: late\n\n");
        });
        var options = new AgentOptions { Capture = new CaptureOptions { Streams = new StreamCaptureOptions { MaxDurationMs = 5_000 } } };
        var exporter = new CollectingExporter();
        var pipeline = new CapturePipeline(options, exporter, new AgentMetrics(), NullLogger<CapturePipeline>.Instance);
        await using var proxy = await CaptureProxyServer.StartAsync(
            new ListenAddress("127.0.0.1", 0), new CaptureProxyOptions { Upstream = upstream.Address }, pipeline, NullLoggerFactory.Instance, time);
        using var client = new HttpClient { BaseAddress = proxy.Address };

        using var response = await client.GetAsync("/events", HttpCompletionOption.ResponseHeadersRead);
        await using var events = SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync().GetAsyncEnumerator();
        Assert.True(await events.MoveNextAsync());
        Assert.Equal("early", events.Current.Data);

        time.Advance(TimeSpan.FromSeconds(6));
        var exchange = await exporter.NextAsync();
        afterDeadline.SetResult();
        Assert.True(await events.MoveNextAsync());

        Assert.Equal("late", events.Current.Data);
        Assert.Equal(ExchangeOutcome.TimedOut, exchange.Outcome);
        var captured = StreamSpanAttributes.DecodeSse(exchange.Attributes[StreamSpanAttributes.SseEvents]);
        Assert.NotNull(captured);
        Assert.Equal((1, StreamEnd.Deadline, "early"), (captured.Count, captured.End, captured.Events[0].Data));
        Assert.False(await events.MoveNextAsync());
    }

    [Fact]
    public async Task A_long_sse_stream_keeps_only_what_the_limits_allow_and_counts_the_rest()
    {
        const int Events = 5_000;
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            var payload = new string('x', 1000);
            for (var i = 0; i < Events; i++)
            {
                await context.Response.WriteAsync("id: " + i + "\ndata: " + payload + "\n\n");
            }
        });
        var options = new AgentOptions
        {
            Capture = new CaptureOptions { Streams = new StreamCaptureOptions { MaxEvents = 10, MaxEventBytes = 100, MaxStreamBytes = 500 } },
        };
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address, options: options);

        var text = await proxy.Client.GetStringAsync("/events");

        Assert.Equal(Events, text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Length);
        var exchange = await proxy.Exporter.NextAsync();
        var captured = StreamSpanAttributes.DecodeSse(exchange.Attributes[StreamSpanAttributes.SseEvents]);
        Assert.NotNull(captured);
        Assert.Equal((Events, true, 10), (captured.Count, captured.Truncated, captured.Events.Count));
        Assert.Equal([100, 100, 100, 100, 100, 0, 0, 0, 0, 0], captured.Events.Select(e => e.Data.Length));
        Assert.All(captured.Events, e => Assert.Equal(1000, e.Size));
        Assert.True(exchange.ResponseBody.Truncated);
        Assert.Equal(text.Length, exchange.ResponseBody.OriginalSize);

        // The metrics count the whole stream, not what the limits kept.
        Assert.Equal((Events, (long)text.Length), (proxy.Metrics.StreamMessages(StreamKinds.Sse).Value, proxy.Metrics.StreamBytes(StreamKinds.Sse).Value));
        Assert.Equal(0, proxy.Metrics.StreamMessages(StreamKinds.WebSocket).Value);
    }

    [Fact]
    public async Task WebSocket_messages_of_both_directions_are_captured_and_the_close_ends_the_exchange()
    {
        await using var upstream = await TestUpstream.StartAsync(EchoWebSocketAsync, app => app.UseWebSockets());
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);
        using var client = new ClientWebSocket();
        var wsUri = new UriBuilder(proxy.Server.Address) { Scheme = "ws", Path = "/ws" }.Uri;
        await client.ConnectAsync(wsUri, CancellationToken.None);

        Assert.Equal("hello", await RoundTripAsync(client, WebSocketMessageType.Text, Encoding.UTF8.GetBytes("hello")));
        Assert.Equal("AQID", await RoundTripAsync(client, WebSocketMessageType.Binary, [1, 2, 3]));
        await client.SendAsync(Encoding.UTF8.GetBytes("{\"token\":"), WebSocketMessageType.Text, false, CancellationToken.None);
        Assert.Equal("{\"token\":\"s3cr3t-value\"}", await RoundTripAsync(client, WebSocketMessageType.Text, Encoding.UTF8.GetBytes("\"s3cr3t-value\"}")));
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);

        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal((101, ExchangeOutcome.Completed), (exchange.StatusCode, exchange.Outcome));
        Assert.True(exchange.RequestBody.IsEmpty, "frames are messages, not a body");
        var captured = StreamSpanAttributes.DecodeWebSocket(exchange.Attributes[StreamSpanAttributes.WebSocketMessages]);
        Assert.NotNull(captured);
        Assert.Equal((StreamEnd.Closed, false), (captured.End, captured.Truncated));
        Assert.Equal(
            [
                "send text hello", "receive text hello", "send binary AQID", "receive binary AQID",
                "send text {\"token\":\"[REDACTED]\"}", "receive text {\"token\":\"[REDACTED]\"}",
                "send close done", "receive close done",
            ],
            captured.Messages.Select(m => $"{(m.Direction == WebSocketDirection.Send ? "send" : "receive")} {StreamSpanAttributes.OpcodeName(m.Opcode)} {m.Text ?? Convert.ToBase64String(m.Data!)}"));
        Assert.Equal(1000, captured.Messages[^1].CloseCode);
        Assert.Equal(24, captured.Messages[4].Size);
        Assert.DoesNotContain("s3cr3t", exchange.Attributes[StreamSpanAttributes.WebSocketMessages]);

        // Every message of both directions, and at least their payloads plus a 2-byte header per frame.
        Assert.Equal(8, proxy.Metrics.StreamMessages(StreamKinds.WebSocket).Value);
        Assert.InRange(proxy.Metrics.StreamBytes(StreamKinds.WebSocket).Value, captured.Messages.Sum(m => m.Size) + (8 * 2), long.MaxValue);
        Assert.Equal(0, proxy.Metrics.StreamMessages(StreamKinds.Sse).Value);
    }

    [Fact]
    public async Task WebSocket_ping_from_the_client_is_answered_by_the_server_through_the_proxy_and_both_are_captured()
    {
        await using var upstream = await TestUpstream.StartAsync(EchoWebSocketAsync, app => app.UseWebSockets());
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, proxy.Server.Address.Port);
        var stream = tcp.GetStream();
        var authority = proxy.Server.Address.Authority;

        // A hand-written client frame sequence (RFC 6455 §5.5.2): the ping, then a text message the
        // server echoes; Kestrel's WebSocket answers the ping with a pong before the echo.
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"GET /ws HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        var head = await ReadHeadAsync(stream);
        Assert.StartsWith("HTTP/1.1 101", head);
        await stream.WriteAsync(MaskedFrame(0x89, "are you there"));
        await stream.WriteAsync(MaskedFrame(0x81, "x"));
        var pong = await ReadFrameAsync(stream);
        var echo = await ReadFrameAsync(stream);
        await stream.WriteAsync(MaskedFrame(0x88, "\u0003\u00e8"));

        Assert.Equal((0x8A, "are you there"), pong);
        Assert.Equal((0x81, "x"), echo);
        var exchange = await proxy.Exporter.NextAsync();
        var captured = StreamSpanAttributes.DecodeWebSocket(exchange.Attributes[StreamSpanAttributes.WebSocketMessages]);
        Assert.NotNull(captured);
        Assert.Equal((StreamEnd.Closed, 6), (captured.End, captured.Count));
        Assert.Equal(
            ["ping", "text", "close"],
            captured.Messages.Where(m => m.Direction == WebSocketDirection.Send).Select(m => StreamSpanAttributes.OpcodeName(m.Opcode)));
        Assert.Equal(
            ["pong", "text", "close"],
            captured.Messages.Where(m => m.Direction == WebSocketDirection.Receive).Select(m => StreamSpanAttributes.OpcodeName(m.Opcode)));
        Assert.Equal("are you there", Encoding.UTF8.GetString(captured.Messages.Single(m => m.Opcode == WebSocketOpcode.Pong).Data!));
    }

    private static async Task EchoWebSocketAsync(HttpContext context)
    {
        using var socket = await context.WebSockets.AcceptWebSocketAsync();
        var buffer = new byte[1024];
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, result.CloseStatusDescription, CancellationToken.None);
                return;
            }

            await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, CancellationToken.None);
        }
    }

    private static async Task<string> RoundTripAsync(ClientWebSocket client, WebSocketMessageType type, byte[] payload)
    {
        await client.SendAsync(payload, type, true, CancellationToken.None);
        using var message = new MemoryStream();
        var buffer = new byte[256];
        WebSocketReceiveResult result;
        do
        {
            result = await client.ReceiveAsync(buffer, CancellationToken.None);
            message.Write(buffer, 0, result.Count);
        }
        while (!result.EndOfMessage);

        return result.MessageType == WebSocketMessageType.Text ? Encoding.UTF8.GetString(message.ToArray()) : Convert.ToBase64String(message.ToArray());
    }

    private static byte[] MaskedFrame(byte first, string payload)
    {
        var bytes = Encoding.Latin1.GetBytes(payload);
        byte[] mask = [0x11, 0x22, 0x33, 0x44];
        var frame = new byte[6 + bytes.Length];
        frame[0] = first;
        frame[1] = (byte)(0x80 | bytes.Length);
        mask.CopyTo(frame, 2);
        for (var i = 0; i < bytes.Length; i++)
        {
            frame[6 + i] = (byte)(bytes[i] ^ mask[i % 4]);
        }

        return frame;
    }

    private static async Task<(int First, string Payload)> ReadFrameAsync(NetworkStream stream)
    {
        var header = new byte[2];
        await stream.ReadExactlyAsync(header);
        var payload = new byte[header[1] & 0x7F];
        await stream.ReadExactlyAsync(payload);
        return (header[0], Encoding.UTF8.GetString(payload));
    }

    private static async Task<string> ReadHeadAsync(NetworkStream stream)
    {
        var head = new List<byte>();
        var one = new byte[1];
        while (head.Count < 4 || !(head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
        {
            await stream.ReadExactlyAsync(one);
            head.Add(one[0]);
        }

        return Encoding.ASCII.GetString([.. head]);
    }
}
