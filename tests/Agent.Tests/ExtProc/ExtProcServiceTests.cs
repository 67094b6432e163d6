using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using SpIstio.Agent.ExtProc;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.ExtProc.Proto.Core;
using Metadata = Grpc.Core.Metadata;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Tracing;
using AppendAction = SpIstio.Agent.ExtProc.Proto.Core.HeaderValueOption.Types.HeaderAppendAction;
using BodySendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.BodySendMode;
using HeaderSendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.HeaderSendMode;

namespace SpIstio.Agent.Tests.ExtProc;

public sealed class ExtProcServiceTests
{
    [Fact]
    public async Task HeaderOnlyGet_SyncMode_InjectsTraceContextInRawValuesAndCapturesTheExchange()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        var first = await stream.SendAsync(Envoy.RequestHeaders("GET", "/api/orders?page=2", true, ("accept", "application/json")));
        var second = await stream.SendAsync(Envoy.ResponseHeaders(200, true, ("content-type", "application/json")));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, first.ResponseCase);
        Assert.Null(first.ModeOverride);
        var set = first.RequestHeaders.Response.HeaderMutation.SetHeaders;
        Assert.Equal(["traceparent", "tracestate", "x-sp-num"], set.Select(h => h.Header.Key));
        Assert.All(set, h =>
        {
            Assert.Equal("", h.Header.Value);
            Assert.False(h.Header.RawValue.IsEmpty);
            Assert.Equal(AppendAction.OverwriteIfExistsOrAdd, h.AppendAction);
        });
        Assert.Equal(ProcessingResponse.ResponseOneofCase.ResponseHeaders, second.ResponseCase);
        Assert.Null(await stream.NextAsync());

        Assert.True(TraceParent.TryParse(set[0].Header.RawValue.ToStringUtf8(), out var forwarded));
        Assert.Equal(forwarded.TraceId, exchange.TraceId);
        Assert.Equal(forwarded.SpanId, exchange.SpanId);
        Assert.Equal("1", set[2].Header.RawValue.ToStringUtf8());
        Assert.Equal("GET", exchange.Method);
        Assert.Equal("http", exchange.Scheme);
        Assert.Equal("shop.example", exchange.Authority);
        Assert.Equal("/api/orders", exchange.Path);
        Assert.Equal("page=2", exchange.Query);
        Assert.Equal(200, exchange.StatusCode);
        Assert.Equal(ExchangeOutcome.Completed, exchange.Outcome);
        Assert.Equal("application/json", exchange.RequestHeaders.Get("accept"));
        Assert.Equal("application/json", exchange.ResponseHeaders.Get("content-type"));
        Assert.DoesNotContain(exchange.RequestHeaders, h => h.Key.StartsWith(':'));
        Assert.DoesNotContain(exchange.ResponseHeaders, h => h.Key.StartsWith(':'));
        Assert.True(exchange.RequestBody.IsEmpty);
        Assert.Equal(1, host.Metrics.Messages(0).Value);
        Assert.Equal(1, host.Metrics.Processing(0).Count);
        Assert.Equal(0, host.Metrics.ExtProcStreamsActive.Value);
        Assert.Empty(host.Logs.AtLeast(LogLevel.Warning));
    }

    [Fact]
    public async Task PostWithBufferedBodies_CapturesBothBodies()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/api/orders", false, ("content-type", "application/json"))
            .WithBodyModes(BodySendMode.Buffered, BodySendMode.Buffered));
        var bodyAnswer = await stream.SendAsync(Envoy.RequestBody("""{"item":"book","qty":2}""", true));
        await stream.SendAsync(Envoy.ResponseHeaders(201, false, ("content-type", "application/json")));
        var responseBodyAnswer = await stream.SendAsync(Envoy.ResponseBody("""{"id":17}""", true));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, bodyAnswer.ResponseCase);
        Assert.Equal(ProcessingResponse.ResponseOneofCase.ResponseBody, responseBodyAnswer.ResponseCase);
        Assert.Equal("""{"item":"book","qty":2}""", Encoding.UTF8.GetString(exchange.RequestBody.Content.Span));
        Assert.Equal("""{"id":17}""", Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
        Assert.False(exchange.RequestBody.Truncated);
        Assert.Equal(BodyKind.Text, exchange.ResponseBody.Kind);
        Assert.Equal(201, exchange.StatusCode);
    }

    [Fact]
    public async Task LastMessage_IsAnsweredBeforeTheCaptureWorkEnds()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();
        await stream.SendAsync(Envoy.RequestHeaders("POST", "/api/orders", false, ("content-type", "application/json"))
            .WithBodyModes(BodySendMode.Buffered, BodySendMode.Buffered));
        await stream.SendAsync(Envoy.RequestBody("""{"item":"book"}""", true));
        await stream.SendAsync(Envoy.ResponseHeaders(201, false, ("content-type", "application/json")));

        // The exporter never returns until released: an answer that waited for the exchange's
        // finish (bodies, redaction, queueing) could not arrive.
        host.Exporter.Hold();
        ProcessingResponse answer;
        try
        {
            answer = await stream.SendAsync(Envoy.ResponseBody("""{"id":17}""", true)).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Empty(host.Exporter.Exchanges);
        }
        finally
        {
            host.Exporter.Release();
        }

        var exchange = await host.Exporter.NextAsync();
        Assert.Equal(ProcessingResponse.ResponseOneofCase.ResponseBody, answer.ResponseCase);
        Assert.Equal("""{"item":"book"}""", Encoding.UTF8.GetString(exchange.RequestBody.Content.Span));
        Assert.Equal("""{"id":17}""", Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
        Assert.Equal(ExchangeOutcome.Completed, exchange.Outcome);
    }

    [Fact]
    public async Task StreamedChunks_AreEachAnsweredInOrderAndJoined()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        var answers = new List<ProcessingResponse.ResponseOneofCase>
        {
            (await stream.SendAsync(Envoy.RequestHeaders("PUT", "/files/a.txt", false, ("content-type", "text/plain")))).ResponseCase,
        };
        foreach (var (chunk, last) in new[] { ("alpha ", false), ("beta ", false), ("gamma", true) })
        {
            answers.Add((await stream.SendAsync(Envoy.RequestBody(chunk, last))).ResponseCase);
        }

        answers.Add((await stream.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "text/plain")))).ResponseCase);
        answers.Add((await stream.SendAsync(Envoy.ResponseBody("one,", false))).ResponseCase);
        answers.Add((await stream.SendAsync(Envoy.ResponseBody("two", false))).ResponseCase);
        answers.Add((await stream.SendAsync(Envoy.ResponseBody("", true))).ResponseCase);
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(
            [
                ProcessingResponse.ResponseOneofCase.RequestHeaders,
                ProcessingResponse.ResponseOneofCase.RequestBody,
                ProcessingResponse.ResponseOneofCase.RequestBody,
                ProcessingResponse.ResponseOneofCase.RequestBody,
                ProcessingResponse.ResponseOneofCase.ResponseHeaders,
                ProcessingResponse.ResponseOneofCase.ResponseBody,
                ProcessingResponse.ResponseOneofCase.ResponseBody,
                ProcessingResponse.ResponseOneofCase.ResponseBody,
            ],
            answers);
        Assert.Equal("alpha beta gamma", Encoding.UTF8.GetString(exchange.RequestBody.Content.Span));
        Assert.Equal("one,two", Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
        Assert.Equal(3, host.Metrics.Messages(2).Value);
        Assert.Equal(3, host.Metrics.Messages(3).Value);
    }

    [Fact]
    public async Task BufferedPartial_KeepsThePrefixAndMarksTheBodyTruncated()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();
        var prefix = Encoding.ASCII.GetBytes(new string('x', 1000));

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/upload", false, ("content-type", "text/plain"), ("content-length", "100000"))
            .WithBodyModes(BodySendMode.BufferedPartial, BodySendMode.None));
        await stream.SendAsync(Envoy.RequestBody(prefix, false));
        await stream.SendAsync(Envoy.ResponseHeaders(204, true));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(1000, exchange.RequestBody.Content.Length);
        Assert.True(exchange.RequestBody.Truncated);
        Assert.Equal(100000, exchange.RequestBody.OriginalSize);
        Assert.Equal(1, host.Metrics.BodyTruncated.Value);
    }

    [Fact]
    public async Task Trailers_JoinTheHeaderListsAndAreNamedInAttributes()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/grpc.Svc/Call", false, ("content-type", "application/grpc")));
        await stream.SendAsync(Envoy.RequestBody([0, 0, 0, 0, 0], false));
        var requestTrailersAnswer = await stream.SendAsync(Envoy.RequestTrailers(("x-checksum", "abc")));
        await stream.SendAsync(Envoy.ResponseHeaders(200, false, ("content-type", "application/grpc")));
        await stream.SendAsync(Envoy.ResponseBody([0, 0, 0, 0, 0], false));
        var responseTrailersAnswer = await stream.SendAsync(Envoy.ResponseTrailers(("grpc-status", "0"), ("grpc-message", "")));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestTrailers, requestTrailersAnswer.ResponseCase);
        Assert.Equal(ProcessingResponse.ResponseOneofCase.ResponseTrailers, responseTrailersAnswer.ResponseCase);
        Assert.Equal("abc", exchange.RequestHeaders.Get("x-checksum"));
        Assert.Equal("0", exchange.ResponseHeaders.Get("grpc-status"));
        Assert.Equal("x-checksum", exchange.Attributes[ExtProcStream.RequestTrailersAttribute]);
        Assert.Equal("grpc-status,grpc-message", exchange.Attributes[ExtProcStream.ResponseTrailersAttribute]);
        Assert.Equal(5, exchange.RequestBody.OriginalSize);
        Assert.False(exchange.RequestBody.Truncated);
    }

    [Fact]
    public async Task ObservabilityMode_ServerNeverAnswersAndTheExchangeIsCaptured()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        await stream.SendOnlyAsync(Envoy.RequestHeaders("POST", "/api/pay", false, ("content-type", "application/json")).Observed()
            .WithBodyModes(BodySendMode.Streamed, BodySendMode.Streamed));
        await stream.SendOnlyAsync(Envoy.RequestBody("""{"amount":5}""", true).Observed());
        await stream.SendOnlyAsync(Envoy.ResponseHeaders(200, false, ("content-type", "application/json")).Observed());
        await stream.SendOnlyAsync(Envoy.ResponseBody("""{"ok":true}""", true).Observed());
        await stream.CompleteAsync();

        Assert.Null(await stream.NextAsync());
        Assert.Equal(StatusCode.OK, stream.Call.GetStatus().StatusCode);
        var exchange = await host.Exporter.NextAsync();
        Assert.Equal("/api/pay", exchange.Path);
        Assert.Equal("""{"amount":5}""", Encoding.UTF8.GetString(exchange.RequestBody.Content.Span));
        Assert.Equal("""{"ok":true}""", Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
        Assert.Equal(200, exchange.StatusCode);
        Assert.NotEqual(default, exchange.TraceId);
    }

    [Fact]
    public async Task HeaderValues_ComeFromRawValueIncludingNonUtf8Bytes_WithValueAsFallback()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();
        var request = Envoy.RequestHeaders("GET", "/", true);
        var headers = request.RequestHeaders.Headers.Headers;
        // "fété" in Latin-1: not valid UTF-8.
        headers.Add(new HeaderValue { Key = "x-latin", RawValue = ByteString.CopyFrom(0x66, 0xE9, 0x74, 0xE9) });
        headers.Add(new HeaderValue { Key = "x-utf8", RawValue = ByteString.CopyFromUtf8("grüße") });
        headers.Add(new HeaderValue { Key = "x-old-envoy", Value = "from-value" });

        await stream.SendAsync(request);
        await stream.SendAsync(Envoy.ResponseHeaders(200, true));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal("fété", exchange.RequestHeaders.Get("x-latin"));
        Assert.Equal(new byte[] { 0x66, 0xE9, 0x74, 0xE9 }, Encoding.Latin1.GetBytes(exchange.RequestHeaders.Get("x-latin")!));
        Assert.Equal("grüße", exchange.RequestHeaders.Get("x-utf8"));
        Assert.Equal("from-value", exchange.RequestHeaders.Get("x-old-envoy"));
    }

    [Fact]
    public async Task ExcludedExchange_IsAnsweredWithModeOverrideAndNotExported()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open();

        // The default exemption rules cover the OTLP ingest paths.
        var answer = await stream.SendAsync(Envoy.RequestHeaders("POST", "/v1/traces", false, ("content-type", "application/x-protobuf")));
        await stream.CompleteAsync();
        Assert.Null(await stream.NextAsync());

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, answer.ResponseCase);
        Assert.Null(answer.RequestHeaders.Response?.HeaderMutation);
        Assert.NotNull(answer.ModeOverride);
        Assert.Equal(BodySendMode.None, answer.ModeOverride.RequestBodyMode);
        Assert.Equal(HeaderSendMode.Skip, answer.ModeOverride.ResponseHeaderMode);
        Assert.Equal(BodySendMode.None, answer.ModeOverride.ResponseBodyMode);
        Assert.Equal(HeaderSendMode.Skip, answer.ModeOverride.ResponseTrailerMode);
        Assert.Empty(host.Exporter.Exchanges);
        Assert.Contains("sp_requests_total{direction=\"inbound\",outcome=\"exempt", host.Metrics.Registry.Render());
    }

    [Fact]
    public async Task CancelledMidStream_FinalisesTheExchangeWithoutLoggingAnError()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var cancel = new CancellationTokenSource();
        using var stream = host.Open(cancellationToken: cancel.Token);

        await stream.SendAsync(Envoy.RequestHeaders("POST", "/slow", false, ("content-type", "text/plain")));
        await stream.SendAsync(Envoy.RequestBody("partial ", false));
        cancel.Cancel();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(ExchangeOutcome.Cancelled, exchange.Outcome);
        Assert.Equal("partial ", Encoding.UTF8.GetString(exchange.RequestBody.Content.Span));
        Assert.True(exchange.RequestBody.Truncated);
        Assert.Null(exchange.StatusCode);
        await WaitUntil(() => host.Metrics.ExtProcStreamsActive.Value == 0);
        Assert.Empty(host.Logs.AtLeast(LogLevel.Warning));
        Assert.Equal(0, host.Metrics.Faults(ExtProcService.FaultStream).Value);
        Assert.Equal(0, host.Metrics.Faults(ExtProcService.FaultProtocol).Value);
    }

    [Fact]
    public async Task ThousandConcurrentStreams_OnOneConnection_AreAllServed()
    {
        const int Streams = 1000;

        // extproc.max_streams raised to the thousand: its default (256) would answer the rest UNAVAILABLE.
        await using var host = await ExtProcTestHost.StartAsync(configure: o => o.MaxStreams = Streams);
        var allOpen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var open = 0;

        async Task PlayAsync(int i)
        {
            using var stream = host.Open();
            await stream.SendAsync(Envoy.RequestHeaders("GET", $"/items/{i}", false));
            if (Interlocked.Increment(ref open) == Streams)
            {
                allOpen.SetResult();
            }

            // Every stream stays open until all of them are: Kestrel's default of 100 would stall here.
            await allOpen.Task.WaitAsync(TimeSpan.FromSeconds(60));
            await stream.SendAsync(Envoy.ResponseHeaders(200, true));
            await stream.CompleteAsync();
            Assert.Null(await stream.NextAsync());
        }

        var tasks = new Task[Streams];
        for (var i = 0; i < Streams; i++)
        {
            tasks[i] = PlayAsync(i);
        }

        await Task.WhenAll(tasks);
        await host.Exporter.WaitForAsync(Streams);

        Assert.Equal(Streams, host.Exporter.Exchanges.Select(e => e.Path).Distinct().Count());
        Assert.Empty(host.Logs.AtLeast(LogLevel.Warning));
    }

    [Fact]
    public async Task ShortCircuitAnswer_IsSentAsImmediateResponseAndRecordedAsCacheHit()
    {
        var headers = new HeaderList();
        headers.Add("content-type", "application/json");
        headers.Add("set-cookie", "a=1");
        headers.Add("set-cookie", "b=2");
        var shortCircuit = new FixedShortCircuit(new ShortCircuitResponse(200, headers, Encoding.UTF8.GetBytes("""{"cached":true}""")));
        await using var host = await ExtProcTestHost.StartAsync(shortCircuit: shortCircuit);
        using var stream = host.Open();

        var answer = await stream.SendAsync(Envoy.RequestHeaders("GET", "/api/rates", true));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(ProcessingResponse.ResponseOneofCase.ImmediateResponse, answer.ResponseCase);
        var immediate = answer.ImmediateResponse;
        Assert.Equal(200, (int)immediate.Status.Code);
        Assert.Equal("""{"cached":true}""", immediate.Body.ToStringUtf8());
        var set = immediate.Headers.SetHeaders;
        Assert.All(set, h => Assert.Equal("", h.Header.Value));
        Assert.Equal(
            [("content-type", AppendAction.OverwriteIfExistsOrAdd), ("set-cookie", AppendAction.OverwriteIfExistsOrAdd), ("set-cookie", AppendAction.AppendIfExistsOrAdd), ("x-sp-cache", AppendAction.OverwriteIfExistsOrAdd)],
            set.Select(h => (h.Header.Key, h.AppendAction)));
        Assert.Equal("hit", set[^1].Header.RawValue.ToStringUtf8());
        Assert.Equal("/api/rates", shortCircuit.SeenPath);

        Assert.Equal(CacheOutcome.Hit, exchange.Cache);
        Assert.Equal(200, exchange.StatusCode);
        Assert.Equal("hit", exchange.ResponseHeaders.Get("x-sp-cache"));
        Assert.Equal("""{"cached":true}""", Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
    }

    [Fact]
    public async Task ShortCircuitPastItsDeadline_IsAMissAndTheRequestContinues()
    {
        var shortCircuit = new SlowShortCircuit();
        await using var host = await ExtProcTestHost.StartAsync(shortCircuit: shortCircuit, configure: o => o.ShortCircuitTimeout = TimeSpan.FromMilliseconds(50));
        using var stream = host.Open();

        var answer = await stream.SendAsync(Envoy.RequestHeaders("POST", "/api/quote", false, ("content-type", "text/plain")));
        var bodyAnswer = await stream.SendAsync(Envoy.RequestBody("q", true));
        await stream.SendAsync(Envoy.ResponseHeaders(200, true));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, answer.ResponseCase);
        Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestBody, bodyAnswer.ResponseCase);
        Assert.True(shortCircuit.SawCancellation);
        Assert.Equal("q", shortCircuit.SeenBody);
        Assert.Equal(CacheOutcome.Miss, exchange.Cache);
        Assert.Equal(200, exchange.StatusCode);
    }

    [Fact]
    public async Task ThrowingShortCircuit_IsAMiss_TheRequestContinuesAndIsCaptured_FaultCountedAndLoggedOnce()
    {
        await using var host = await ExtProcTestHost.StartAsync(shortCircuit: new ThrowingShortCircuit());

        for (var i = 0; i < 3; i++)
        {
            using var stream = host.Open();
            var answer = await stream.SendAsync(Envoy.RequestHeaders("GET", "/api/rates", true));
            await stream.SendAsync(Envoy.ResponseHeaders(200, true));
            await stream.CompleteAsync();
            var exchange = await host.Exporter.NextAsync();

            // The same policy as the capture proxy (ShortCircuitPolicy): the request goes on, the capture is kept.
            Assert.Equal(ProcessingResponse.ResponseOneofCase.RequestHeaders, answer.ResponseCase);
            Assert.Equal(CacheOutcome.Miss, exchange.Cache);
            Assert.Equal(200, exchange.StatusCode);
        }

        Assert.Equal(3, host.Metrics.Faults(ExtProcService.FaultShortCircuit).Value);
        Assert.Equal(3, host.Metrics.Faults(SpIstio.Agent.Pipeline.ShortCircuitPolicy.FaultKind).Value);
        Assert.Single(host.Logs.AtLeast(LogLevel.Warning));
        Assert.Empty(host.Logs.AtLeast(LogLevel.Error));
    }

    [Fact]
    public async Task IdleStream_IsFinalisedAsTimedOutAndClosedOk()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var host = await ExtProcTestHost.StartAsync(configure: o => o.StreamIdleTimeout = TimeSpan.FromMinutes(1), time: time);
        using var stream = host.Open();

        await stream.SendAsync(Envoy.RequestHeaders("GET", "/long-poll", true));
        time.Advance(TimeSpan.FromMinutes(2));
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(ExchangeOutcome.TimedOut, exchange.Outcome);
        Assert.Equal(TimeSpan.FromMinutes(2), exchange.Duration);
        Assert.Null(await stream.NextAsync());
        Assert.Equal(StatusCode.OK, stream.Call.GetStatus().StatusCode);
    }

    [Theory]
    [InlineData("outbound|9080||reviews.default.svc.cluster.local", null, TrafficDirection.Outbound, "default-service")]
    [InlineData("inbound|9080|http|ratings.default.svc.cluster.local", null, TrafficDirection.Inbound, "ratings")]
    [InlineData(null, "client", TrafficDirection.Outbound, "default-service")]
    [InlineData("PassthroughCluster", "outbound", TrafficDirection.Outbound, "default-service")]
    public async Task Direction_ComesFromClusterNameElseFromStreamMetadata(string? cluster, string? metadataDirection, TrafficDirection expected, string service)
    {
        await using var host = await ExtProcTestHost.StartAsync();
        var metadata = new Metadata();
        if (metadataDirection is not null)
        {
            metadata.Add(ExtProcStream.DirectionMetadata, metadataDirection);
        }

        using var stream = host.Open(metadata);
        var request = Envoy.RequestHeaders("GET", "/", true);
        if (cluster is not null)
        {
            request.WithAttribute(ExtProcStream.ClusterNameAttribute, cluster);
        }

        await stream.SendAsync(request);
        await stream.SendAsync(Envoy.ResponseHeaders(200, true));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(expected, exchange.Direction);
        Assert.Equal(service, exchange.ServiceName);
        if (cluster is not null)
        {
            Assert.Equal(cluster, exchange.Attributes["envoy.xds.cluster_name"]);
        }
    }

    [Fact]
    public async Task ConfiguredDirectionAndServiceName_WinOverWhatEnvoySays()
    {
        var options = new AgentOptions { TrafficDirection = DirectionSetting.Outbound, ServiceName = "checkout" };
        await using var host = await ExtProcTestHost.StartAsync(options);
        var metadata = new Metadata { { ExtProcStream.ServiceNameMetadata, "from-envoy" } };
        using var stream = host.Open(metadata);

        await stream.SendAsync(Envoy.RequestHeaders("GET", "/", true).WithAttribute(ExtProcStream.ClusterNameAttribute, "inbound|80||web.default.svc.cluster.local"));
        await stream.SendAsync(Envoy.ResponseHeaders(200, true));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal(TrafficDirection.Outbound, exchange.Direction);
        Assert.Equal("checkout", exchange.ServiceName);
    }

    [Fact]
    public async Task ServiceNameMetadata_NamesTheServiceWhenNotConfigured()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        using var stream = host.Open(new Metadata { { ExtProcStream.ServiceNameMetadata, "payments" } });

        await stream.SendAsync(Envoy.RequestHeaders("GET", "/", true));
        await stream.SendAsync(Envoy.ResponseHeaders(200, true));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal("payments", exchange.ServiceName);
    }

    [Fact]
    public async Task UnsampledTrace_StillGetsTraceContextButEnvoyIsToldToSkipTheRest()
    {
        var options = new AgentOptions();
        options.Sampling.Ratio = 0;
        await using var host = await ExtProcTestHost.StartAsync(options);
        using var stream = host.Open();

        var answer = await stream.SendAsync(Envoy.RequestHeaders("GET", "/", true));
        await stream.CompleteAsync();
        Assert.Null(await stream.NextAsync());

        Assert.Equal(3, answer.RequestHeaders.Response.HeaderMutation.SetHeaders.Count);
        Assert.Equal(HeaderSendMode.Skip, answer.ModeOverride.ResponseHeaderMode);
        await WaitUntil(() => host.Metrics.ExtProcStreamsActive.Value == 0);
        Assert.Empty(host.Exporter.Exchanges);
        Assert.Equal(1, host.Metrics.RequestsSampledOut(TrafficDirection.Inbound).Value);
    }

    [Fact]
    public async Task MalformedMessage_EndsTheStreamWithInvalidArgumentNamingTheField_AndExportsNothing()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        var rawProcess = new Method<byte[], byte[]>(
            MethodType.DuplexStreaming, "envoy.service.ext_proc.v3.ExternalProcessor", "Process", Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        using var call = host.Channel.CreateCallInvoker().AsyncDuplexStreamingCall(rawProcess, null, default);
        var body = Envoy.RequestBody("{\"order\":1}", true).ToByteArray();

        await call.RequestStream.WriteAsync(Envoy.RequestHeaders("POST", "/orders", false).ToByteArray());
        Assert.True(await call.ResponseStream.MoveNext());
        await call.RequestStream.WriteAsync(body[..^4]);
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("request_body", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("truncated", error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(1, host.Metrics.Faults(ExtProcService.FaultProtocol).Value);
        Assert.Contains(host.Logs.AtLeast(LogLevel.Warning), entry => entry.Contains("INVALID_ARGUMENT", StringComparison.Ordinal));
        await WaitUntil(() => host.Metrics.ExtProcStreamsActive.Value == 0);
        Assert.Empty(host.Exporter.Exchanges);
    }

    [Fact]
    public async Task GrpcHealthService_ReportsServing()
    {
        await using var host = await ExtProcTestHost.StartAsync();
        var health = new Grpc.Health.V1.Health.HealthClient(host.Channel);

        var reply = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest());

        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
    }

    [Fact]
    public async Task UnixSocket_ServesTheSameProtocol()
    {
        var path = Path.Combine(Path.GetTempPath(), $"sp-extproc-{Guid.NewGuid():N}.sock");
        await using var host = await ExtProcTestHost.StartAsync(configure: o => o.UnixSocketPath = path);
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress("http://localhost", new Grpc.Net.Client.GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectCallback = async (_, ct) =>
                {
                    var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
                    await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(path), ct);
                    return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
                },
            },
        });
        using var stream = new EnvoyStream(new ExternalProcessor.ExternalProcessorClient(channel).Process());

        await stream.SendAsync(Envoy.RequestHeaders("GET", "/via-uds", true));
        await stream.SendAsync(Envoy.ResponseHeaders(200, true));
        await stream.CompleteAsync();
        var exchange = await host.Exporter.NextAsync();

        Assert.Equal("/via-uds", exchange.Path);
        Assert.True(File.Exists(path));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in 10 s");
            await Task.Delay(10);
        }
    }

    private sealed class FixedShortCircuit(ShortCircuitResponse response) : IResponseShortCircuit
    {
        public string? SeenPath { get; private set; }

        public ValueTask<ShortCircuitResponse?> TryAnswerAsync(Exchange request, CancellationToken cancellationToken)
        {
            SeenPath = request.Path;
            return ValueTask.FromResult<ShortCircuitResponse?>(response);
        }
    }

    private sealed class SlowShortCircuit : IResponseShortCircuit
    {
        public bool SawCancellation { get; private set; }

        public string? SeenBody { get; private set; }

        public async ValueTask<ShortCircuitResponse?> TryAnswerAsync(Exchange request, CancellationToken cancellationToken)
        {
            SeenBody = Encoding.UTF8.GetString(request.RequestBody.Content.Span);
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(30), cancellationToken);
            }
            catch (OperationCanceledException)
            {
                SawCancellation = true;
                throw;
            }

            return null;
        }
    }

    private sealed class ThrowingShortCircuit : IResponseShortCircuit
    {
        public ValueTask<ShortCircuitResponse?> TryAnswerAsync(Exchange request, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("cache store unreachable");
    }
}
