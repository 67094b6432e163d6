using Microsoft.Extensions.Time.Testing;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Streams;
using BodySendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.BodySendMode;

namespace SpIstio.Agent.Tests.ExtProc;

/// <summary>Server-sent events and WebSocket upgrades through ext_proc, in the message sequences Envoy sends for them.</summary>
public sealed class ExtProcStreamTests
{
    [Fact]
    public async Task Sse_WithBufferedResponses_SwitchesToStreamedBodies_AndEachChunkFeedsTheEvents()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        await stream.SendAsync(Envoy.RequestHeaders("GET", "/events", true).WithBodyModes(BodySendMode.Buffered, BodySendMode.Buffered));
        var headersAnswer = await stream.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "text/event-stream")));
        await stream.SendAsync(Envoy.ResponseBody("id: 1\ndata: {\"card\":\"4111 1111 1111 1111\",", false));
        await stream.SendAsync(Envoy.ResponseBody("\"n\":1}\n\ndata: two\r\n\r\n", false));
        await stream.SendAsync(Envoy.ResponseBody("", true));
        var exchange = await host.Exporter.NextAsync();

        Assert.NotNull(headersAnswer.ModeOverride);
        Assert.Equal(BodySendMode.Streamed, headersAnswer.ModeOverride.ResponseBodyMode);
        var events = StreamSpanAttributes.DecodeSse(exchange.Attributes[StreamSpanAttributes.SseEvents]);
        Assert.NotNull(events);
        Assert.Equal((2, StreamEnd.Complete), (events.Count, events.End));
        Assert.Equal("1", events.Events[0].Id);
        Assert.DoesNotContain("4111", events.Events[0].Data);
        Assert.Equal("two", events.Events[1].Data);
    }

    [Fact]
    public async Task Sse_WithStreamedResponses_NeedsNoOverride()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        await stream.SendAsync(Envoy.RequestHeaders("GET", "/events", true).WithBodyModes(BodySendMode.None, BodySendMode.Streamed));
        var headersAnswer = await stream.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "text/event-stream")));
        var jsonStream = host.Open();
        await jsonStream.SendAsync(Envoy.RequestHeaders("GET", "/json", true).WithBodyModes(BodySendMode.Buffered, BodySendMode.Buffered));
        var jsonAnswer = await jsonStream.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "application/json")));
        jsonStream.Dispose();

        Assert.Null(headersAnswer.ModeOverride);
        Assert.Null(jsonAnswer.ModeOverride);
    }

    [Fact]
    public async Task Sse_PastTheCaptureDeadline_IsExportedAtItsNextChunk()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var options = new AgentOptions { Capture = new CaptureOptions { Streams = new StreamCaptureOptions { MaxDurationMs = 1_000 } } };
        await using var host = await ExtProcTestHost.StartAsync(options, time: time);
        using var stream = host.Open();

        await stream.SendAsync(Envoy.RequestHeaders("GET", "/events", true).WithBodyModes(BodySendMode.None, BodySendMode.Streamed));
        await stream.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "text/event-stream")));
        await stream.SendAsync(Envoy.ResponseBody("data: early\n\n", false));
        time.Advance(TimeSpan.FromSeconds(2));
        await stream.SendAsync(Envoy.ResponseBody("data: late\n\n", false));
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(ExchangeOutcome.TimedOut, exchange.Outcome);
        var events = StreamSpanAttributes.DecodeSse(exchange.Attributes[StreamSpanAttributes.SseEvents]);
        Assert.NotNull(events);
        Assert.Equal((StreamEnd.Deadline, "early", "late"), (events.End, events.Events[0].Data, events.Events[1].Data));
    }

    [Fact]
    public async Task WebSocketUpgrade_SkipsBodies_AndTheHandshakeIsTheExchange()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        var requestAnswer = await stream.SendAsync(Envoy.RequestHeaders("GET", "/ws", false, ("upgrade", "websocket"), ("connection", "upgrade"))
            .WithBodyModes(BodySendMode.Buffered, BodySendMode.Buffered));
        await stream.SendAsync(Envoy.ResponseHeaders(101, false, ("upgrade", "websocket"), ("connection", "upgrade")));
        var exchange = await host.Exporter.NextAsync();

        Assert.NotNull(requestAnswer.ModeOverride);
        Assert.Equal((BodySendMode.None, BodySendMode.None), (requestAnswer.ModeOverride.RequestBodyMode, requestAnswer.ModeOverride.ResponseBodyMode));
        Assert.Equal((101, ExchangeOutcome.Completed), (exchange.StatusCode, exchange.Outcome));
        Assert.False(exchange.Attributes.ContainsKey(StreamSpanAttributes.WebSocketMessages));
    }
}
