using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Tracing;

namespace SpIstio.Agent.Tests.Proxy;

public sealed class CaptureProxyTests
{
    private static async Task EchoAsync(HttpContext context)
    {
        context.Response.ContentType = context.Request.ContentType ?? "application/octet-stream";
        await context.Request.Body.CopyToAsync(context.Response.Body, context.RequestAborted);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(1_000)]
    [InlineData(65_536)]
    [InlineData(65_537)]
    [InlineData(1_048_576 + 3)]
    [InlineData(8 * 1_048_576)]
    public async Task Bodies_of_any_size_arrive_byte_identical_both_ways(int size)
    {
        var received = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            using var copy = new MemoryStream();
            await context.Request.Body.CopyToAsync(copy);
            received.SetResult(copy.ToArray());
            context.Response.ContentType = "application/octet-stream";
            var reply = copy.ToArray();
            Array.Reverse(reply);
            await context.Response.Body.WriteAsync(reply);
        });
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);
        var body = new byte[size];
        new Random(size).NextBytes(body);

        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await proxy.Client.PostAsync("/upload", content);
        var replied = await response.Content.ReadAsByteArrayAsync();

        var expectedReply = (byte[])body.Clone();
        Array.Reverse(expectedReply);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstreamGot = await received.Task;
        Assert.True(body.AsSpan().SequenceEqual(upstreamGot), "upstream received different request bytes");
        Assert.True(expectedReply.AsSpan().SequenceEqual(replied), "client received different response bytes");

        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(ExchangeOutcome.Completed, exchange.Outcome);
        Assert.Equal(size, exchange.RequestBody.OriginalSize);
        Assert.Equal(size, exchange.ResponseBody.OriginalSize);
        var limit = CaptureOptions.DefaultBodyLimit;
        Assert.Equal(Math.Min(size, limit), exchange.RequestBody.Content.Length);
        Assert.Equal(size > limit, exchange.RequestBody.Truncated);
        Assert.Equal(size > limit, exchange.ResponseBody.Truncated);
        Assert.True(body.AsSpan(0, Math.Min(size, limit)).SequenceEqual(exchange.RequestBody.Content.Span));
        Assert.True(expectedReply.AsSpan(0, Math.Min(size, limit)).SequenceEqual(exchange.ResponseBody.Content.Span));
    }

    [Fact]
    public async Task Http11_chunked_response_reaches_the_client_before_the_capture_is_redacted_and_queued()
    {
        // A chunked response ends with its last chunk, which Kestrel writes when the response
        // completes (a Content-Length response's bytes are on the wire as soon as YARP copied them).
        var body = new string('r', 1024);
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(body, context.RequestAborted);
        });
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);

        // The exporter holds the capture until released: a response that waited for the exchange's
        // finish (redaction, span encode, queueing) could not be read to its end.
        proxy.Exporter.Hold();
        string replied;
        try
        {
            using var response = await proxy.Client.GetAsync("/orders/7", HttpCompletionOption.ResponseHeadersRead);
            replied = await response.Content.ReadAsStringAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(response.Headers.TransferEncodingChunked);
            Assert.False(proxy.Exporter.TryTake(out _), "the capture was queued before the client had its response");
        }
        finally
        {
            proxy.Exporter.Release();
        }

        Assert.Equal(body, replied);
        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(ExchangeOutcome.Completed, exchange.Outcome);
        Assert.Equal("/orders/7", exchange.Path);
        Assert.Equal(body, Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
    }

    [Fact]
    public async Task Capture_is_cut_at_the_configured_limit_while_the_client_gets_every_byte()
    {
        await using var upstream = await TestUpstream.StartAsync(EchoAsync);
        var options = new AgentOptions { Capture = new CaptureOptions { MaxRequestBodyBytes = 100, MaxResponseBodyBytes = 10 } };
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address, options: options);
        var text = new string('x', 5000);

        using var response = await proxy.Client.PostAsync("/echo", new StringContent(text, Encoding.UTF8, "text/plain"));

        Assert.Equal(text, await response.Content.ReadAsStringAsync());
        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(100, exchange.RequestBody.Content.Length);
        Assert.Equal(10, exchange.ResponseBody.Content.Length);
        Assert.True(exchange.RequestBody.Truncated);
        Assert.True(exchange.ResponseBody.Truncated);
        Assert.Equal(5000, exchange.ResponseBody.OriginalSize);
        Assert.Equal(2, proxy.Metrics.BodyTruncated.Value);
    }

    [Fact]
    public async Task Status_codes_and_headers_are_preserved_and_recorded()
    {
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            context.Response.StatusCode = 418;
            context.Response.Headers["x-custom"] = "teapot";
            context.Response.Headers.Append("set-cookie", "a=1");
            context.Response.Headers.Append("set-cookie", "b=2");
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("{\"tea\":true}");
        });
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/brew?kind=green");
        request.Headers.Add("x-request-tag", "t1");

        using var response = await proxy.Client.SendAsync(request);

        Assert.Equal((HttpStatusCode)418, response.StatusCode);
        Assert.Equal("teapot", response.Headers.GetValues("x-custom").Single());
        Assert.Equal(["a=1", "b=2"], response.Headers.GetValues("set-cookie"));
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(418, exchange.StatusCode);
        Assert.Equal("GET", exchange.Method);
        Assert.Equal("/brew", exchange.Path);
        Assert.Equal("kind=green", exchange.Query);
        Assert.Equal("t1", exchange.RequestHeaders.Get("x-request-tag"));
        Assert.Equal("teapot", exchange.ResponseHeaders.Get("x-custom"));
        Assert.Equal("{\"tea\":true}", Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
        Assert.Equal(TrafficDirection.Inbound, exchange.Direction);
    }

    [Fact]
    public async Task Chunked_responses_stay_chunked_and_complete()
    {
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            context.Response.ContentType = "text/plain";
            for (var i = 0; i < 10; i++)
            {
                await context.Response.WriteAsync("chunk" + i + ";");
                await context.Response.Body.FlushAsync();
            }
        });
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);

        using var response = await proxy.Client.GetAsync("/chunks");

        Assert.True(response.Headers.TransferEncodingChunked);
        var expected = string.Concat(Enumerable.Range(0, 10).Select(i => "chunk" + i + ";"));
        Assert.Equal(expected, await response.Content.ReadAsStringAsync());
        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(expected, Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
    }

    [Fact]
    public async Task Http11_chunked_response_trailers_are_recorded_with_the_response_headers()
    {
        // Kestrel sends no HTTP/1.1 trailers: a raw upstream writes a chunked response that ends with one.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var served = ServeChunkedWithTrailerAsync(listener);
        var upstream = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");
        await using var proxy = await ProxyHarness.StartAsync(upstream);

        using var response = await proxy.Client.GetAsync("/report");

        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal("hello", Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
        Assert.Equal("text/plain", exchange.ResponseHeaders.Get("content-type"));
        Assert.Equal("abc123", exchange.ResponseHeaders.Get("x-checksum"));
        await served;
    }

    private static async Task ServeChunkedWithTrailerAsync(TcpListener listener)
    {
        using var client = await listener.AcceptTcpClientAsync();
        var stream = client.GetStream();
        var head = new StringBuilder();
        var buffer = new byte[1024];
        while (!head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer);
            if (read == 0)
            {
                return;
            }

            head.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\nConnection: close\r\n\r\n"
            + "5\r\nhello\r\n0\r\nx-checksum: abc123\r\n\r\n"));
    }

    [Fact]
    public async Task A_slow_upstream_is_waited_for_and_captured_whole()
    {
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            await Task.Delay(300);
            await context.Response.WriteAsync("first;");
            await context.Response.Body.FlushAsync();
            await Task.Delay(300);
            await context.Response.WriteAsync("second");
        });
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);

        using var response = await proxy.Client.GetAsync("/slow");

        Assert.Equal("first;second", await response.Content.ReadAsStringAsync());
        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(ExchangeOutcome.Completed, exchange.Outcome);
        Assert.Equal("first;second", Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
        Assert.True(exchange.EndTime > exchange.StartTime);
    }

    [Fact]
    public async Task An_upstream_reset_mid_body_reaches_the_client_and_is_recorded_failed()
    {
        var clientHasHeaders = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            context.Response.ContentLength = 100_000;
            await context.Response.Body.WriteAsync(new byte[1000]);
            await context.Response.Body.FlushAsync();
            await clientHasHeaders.Task.WaitAsync(TimeSpan.FromSeconds(20));
            context.Abort();
        });
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);

        using var response = await proxy.Client.GetAsync("/reset", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        clientHasHeaders.SetResult();
        await Assert.ThrowsAnyAsync<Exception>(() => response.Content.ReadAsByteArrayAsync());

        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(ExchangeOutcome.Failed, exchange.Outcome);
        Assert.NotNull(exchange.Error);
        Assert.Contains("ResponseBodyDestination", exchange.Error);
        Assert.Equal(1, proxy.Metrics.ProxyUpstreamErrors.Value);
    }

    [Fact]
    public async Task A_client_abort_is_recorded_cancelled()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            await context.Response.WriteAsync("partial");
            await context.Response.Body.FlushAsync();
            try
            {
                await release.Task.WaitAsync(context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
            }
        });
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);

        using (var cts = new CancellationTokenSource())
        {
            var response = await proxy.Client.GetAsync("/hang", HttpCompletionOption.ResponseHeadersRead, cts.Token);
            var stream = await response.Content.ReadAsStreamAsync(cts.Token);
            var buffer = new byte[7];
            await stream.ReadExactlyAsync(buffer, cts.Token);
            Assert.Equal("partial", Encoding.ASCII.GetString(buffer));
            response.Dispose();
        }

        var exchange = await proxy.Exporter.NextAsync();
        release.TrySetResult();
        Assert.Equal(ExchangeOutcome.Cancelled, exchange.Outcome);
        Assert.Equal(0, proxy.Metrics.ProxyUpstreamErrors.Value);
    }

    [Fact]
    public async Task Server_sent_events_reach_the_client_before_the_upstream_finishes()
    {
        var secondEvent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("data: one\n\n");
            await context.Response.Body.FlushAsync();
            await secondEvent.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await context.Response.WriteAsync("data: two\n\n");
        });
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);

        using var response = await proxy.Client.GetAsync("/events", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var first = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20));

        // The upstream is still blocked on the signal: the event came through live.
        Assert.False(secondEvent.Task.IsCompleted);
        Assert.Equal("data: one", first);
        secondEvent.SetResult();
        var rest = await reader.ReadToEndAsync();
        Assert.Equal("\ndata: two\n\n", rest);

        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal("data: one\n\ndata: two\n\n", Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
        Assert.Equal(ExchangeOutcome.Completed, exchange.Outcome);
    }

    [Fact]
    public async Task Forward_mode_sends_absolute_form_targets_to_their_origin_and_captures_them()
    {
        string? hostSeen = null;
        await using var origin = await TestUpstream.StartAsync(async context =>
        {
            hostSeen = context.Request.Host.Value;
            await context.Response.WriteAsync("from origin " + context.Request.Path);
        });
        await using var proxy = await ProxyHarness.StartAsync(upstream: null, forward: true, direction: TrafficDirection.Outbound);
        using var client = new HttpClient(new HttpClientHandler { Proxy = new WebProxy(proxy.Server.Address), UseProxy = true });

        var body = await client.GetStringAsync(new Uri(origin.Address, "/api/items?x=1"));

        Assert.Equal("from origin /api/items", body);
        Assert.Equal(origin.Address.Authority, hostSeen);
        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(TrafficDirection.Outbound, exchange.Direction);
        Assert.Equal(origin.Address.Authority, exchange.Authority);
        Assert.Equal("/api/items", exchange.Path);
        Assert.Equal("x=1", exchange.Query);
        Assert.Equal(200, exchange.StatusCode);
    }

    [Fact]
    public async Task Forward_mode_passes_CONNECT_tunnels_through_uncaptured_and_counts_them()
    {
        await using var origin = await TestUpstream.StartAsync(context => context.Response.WriteAsync("through the tunnel"));
        await using var proxy = await ProxyHarness.StartAsync(upstream: null, forward: true, direction: TrafficDirection.Outbound);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, proxy.Server.Address.Port);
        var stream = tcp.GetStream();
        var authority = origin.Address.Authority;

        await stream.WriteAsync(Encoding.ASCII.GetBytes($"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"));
        var connectReply = await ReadHeadAsync(stream);
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET /inside HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"));
        using var reader = new StreamReader(stream);
        var tunnelled = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(20));

        Assert.StartsWith("HTTP/1.1 200", connectReply);
        Assert.StartsWith("HTTP/1.1 200", tunnelled);
        Assert.Contains("through the tunnel", tunnelled);
        Assert.Equal(1, proxy.Metrics.ProxyConnectTunnels.Value);
        Assert.False(proxy.Exporter.TryTake(out _));
    }

    [Fact]
    public async Task An_unreachable_upstream_gets_a_502_naming_it()
    {
        // A port this test holds bound but never listens on: connections are refused, and no other
        // test's server can take the port meanwhile (a port freed and reused answered 400 once).
        using var closed = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        closed.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var closedPort = ((IPEndPoint)closed.LocalEndPoint!).Port;
        var upstream = new Uri($"http://127.0.0.1:{closedPort}");
        await using var proxy = await ProxyHarness.StartAsync(upstream);

        using var response = await proxy.Client.GetAsync("/anything");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains($"127.0.0.1:{closedPort}", text);
        Assert.Equal(1, proxy.Metrics.ProxyUpstreamErrors.Value);
        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(ExchangeOutcome.Failed, exchange.Outcome);
        Assert.Null(exchange.StatusCode);
    }

    [Fact]
    public async Task Trace_context_is_injected_into_the_forwarded_request()
    {
        var seen = new TaskCompletionSource<Dictionary<string, string>>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await TestUpstream.StartAsync(context =>
        {
            seen.SetResult(CopyHeaders(context.Request.Headers));
            return Task.CompletedTask;
        });
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/traced");
        request.Headers.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        request.Headers.Add("x-session-id", "sess-42");

        using var response = await proxy.Client.SendAsync(request);

        var headers = await seen.Task;
        var exchange = await proxy.Exporter.NextAsync();
        Assert.True(TraceParent.TryParse(headers["traceparent"], out var forwarded), "traceparent: " + headers["traceparent"]);
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", forwarded.TraceId.ToHexString());
        Assert.Equal(exchange.SpanId, forwarded.SpanId);
        Assert.Equal("b7ad6b7169203331", exchange.ParentSpanId.ToHexString());
        Assert.Equal("sess-42", exchange.SessionId);
        Assert.Contains("x-sp-traceparent=", headers["tracestate"]);
        Assert.Equal("1", headers["x-sp-num"]);
        Assert.Equal("127.0.0.1", headers["x-forwarded-for"]);
        Assert.Equal("http", headers["x-forwarded-proto"]);
        Assert.Equal(proxy.Server.Address.Authority, headers["x-forwarded-host"]);
    }

    [Fact]
    public async Task Incoming_trace_headers_in_any_case_are_replaced_not_repeated()
    {
        var (upstream, seen) = await HeadRecordingUpstreamAsync();
        await using var _ = upstream;
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/retraced");
        request.Headers.TryAddWithoutValidation("TraceParent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        request.Headers.TryAddWithoutValidation("TraceState", "congo=t61rcWkgMzE");
        request.Headers.TryAddWithoutValidation("X-SP-NUM", "5");

        using var response = await proxy.Client.SendAsync(request);

        var headers = await seen;
        var exchange = await proxy.Exporter.NextAsync();
        var traceParent = Assert.Single(headers["traceparent"]);
        Assert.True(TraceParent.TryParse(traceParent, out var forwarded), "traceparent: " + traceParent);
        Assert.Equal(exchange.SpanId, forwarded.SpanId);
        var traceState = Assert.Single(headers["tracestate"]);
        Assert.StartsWith("x-sp-traceparent=", traceState, StringComparison.Ordinal);
        Assert.EndsWith(",congo=t61rcWkgMzE", traceState, StringComparison.Ordinal);
        Assert.Equal("6", Assert.Single(headers["x-sp-num"]));
    }

    [Fact]
    public async Task Forwarded_headers_sent_by_the_client_are_replaced_not_repeated()
    {
        var (upstream, seen) = await HeadRecordingUpstreamAsync();
        await using var _ = upstream;
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/spoofed");
        request.Headers.TryAddWithoutValidation("X-FORWARDED-FOR", "203.0.113.7");
        request.Headers.TryAddWithoutValidation("x-forwarded-proto", "https");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Host", "evil.example");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Prefix", "/admin");

        using var response = await proxy.Client.SendAsync(request);

        var headers = await seen;
        Assert.Equal("127.0.0.1", Assert.Single(headers["x-forwarded-for"]));
        Assert.Equal("http", Assert.Single(headers["x-forwarded-proto"]));
        Assert.Equal(proxy.Server.Address.Authority, Assert.Single(headers["x-forwarded-host"]));
        // The proxy has no path base: a prefix the client claimed is not passed on.
        Assert.False(headers.ContainsKey("x-forwarded-prefix"));
    }

    [Fact]
    public async Task Exempt_requests_are_forwarded_untouched_and_not_captured()
    {
        var seen = new TaskCompletionSource<Dictionary<string, string>>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await TestUpstream.StartAsync(context =>
        {
            seen.SetResult(CopyHeaders(context.Request.Headers));
            return context.Response.WriteAsync("ok");
        });
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);

        using var response = await proxy.Client.PostAsync("/v1/traces", new StringContent("{}"));

        Assert.Equal("ok", await response.Content.ReadAsStringAsync());
        Assert.False((await seen.Task).ContainsKey("traceparent"));
        Assert.False(proxy.Exporter.TryTake(out _));
    }

    [Fact]
    public async Task A_short_circuit_answer_is_served_without_the_upstream_and_marked_hit()
    {
        var upstreamCalls = 0;
        await using var upstream = await TestUpstream.StartAsync(context =>
        {
            Interlocked.Increment(ref upstreamCalls);
            return context.Response.WriteAsync("live");
        });
        var headers = new HeaderList();
        headers.Add("content-type", "text/plain");
        var answer = new ShortCircuitResponse(203, headers, Encoding.UTF8.GetBytes("recorded"));
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address, shortCircuit: new FixedAnswer(answer));

        using var response = await proxy.Client.GetAsync("/cached");

        Assert.Equal((HttpStatusCode)203, response.StatusCode);
        Assert.Equal("recorded", await response.Content.ReadAsStringAsync());
        Assert.Equal("hit", response.Headers.GetValues("x-sp-cache").Single());
        Assert.Equal(0, upstreamCalls);
        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(CacheOutcome.Hit, exchange.Cache);
        Assert.Equal(203, exchange.StatusCode);

        // Recorded as the client saw it, as ext_proc records it.
        Assert.Equal("hit", exchange.ResponseHeaders.Get(SpIstio.Agent.Pipeline.ShortCircuitPolicy.CacheHeader));
        Assert.Equal("recorded", Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
    }

    [Fact]
    public async Task A_failing_short_circuit_is_a_miss_and_the_upstream_answers()
    {
        await using var upstream = await TestUpstream.StartAsync(context => context.Response.WriteAsync("live"));
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address, shortCircuit: new FixedAnswer(null, fail: true));

        using var response = await proxy.Client.GetAsync("/cached");

        Assert.Equal("live", await response.Content.ReadAsStringAsync());
        Assert.False(response.Headers.Contains("x-sp-cache"));
        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(CacheOutcome.Miss, exchange.Cache);
        Assert.Equal(1, proxy.Metrics.Faults("short_circuit").Value);
    }

    [Fact]
    public async Task WebSockets_pass_through_live_and_their_messages_are_captured()
    {
        await using var upstream = await TestUpstream.StartAsync(
            async context =>
            {
                using var socket = await context.WebSockets.AcceptWebSocketAsync();
                var buffer = new byte[1024];
                while (true)
                {
                    var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                        return;
                    }

                    await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, CancellationToken.None);
                }
            },
            app => app.UseWebSockets());
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address);
        using var client = new ClientWebSocket();
        var wsUri = new UriBuilder(proxy.Server.Address) { Scheme = "ws", Path = "/ws" }.Uri;

        await client.ConnectAsync(wsUri, CancellationToken.None);
        await client.SendAsync(Encoding.UTF8.GetBytes("hello"), WebSocketMessageType.Text, true, CancellationToken.None);
        var buffer = new byte[64];
        var echoed = await client.ReceiveAsync(buffer, CancellationToken.None);
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);

        Assert.Equal("hello", Encoding.UTF8.GetString(buffer, 0, echoed.Count));
        var exchange = await proxy.Exporter.NextAsync();
        Assert.Equal(101, exchange.StatusCode);
        Assert.Equal("websocket", exchange.ResponseHeaders.Get("upgrade"), ignoreCase: true);
        Assert.Contains("\"text\":\"hello\"", exchange.Attributes[Core.Streams.StreamSpanAttributes.WebSocketMessages]);
    }

    [Fact]
    public async Task With_capture_off_the_proxy_only_forwards()
    {
        await using var upstream = await TestUpstream.StartAsync(EchoAsync);
        await using var proxy = await ProxyHarness.StartAsync(upstream.Address, capture: false);

        using var response = await proxy.Client.PostAsync("/echo", new StringContent("plain"));

        Assert.Equal("plain", await response.Content.ReadAsStringAsync());
        Assert.False(proxy.Exporter.TryTake(out _));
    }

    private static Dictionary<string, string> CopyHeaders(IHeaderDictionary headers) =>
        headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);

    private static async Task<string> ReadHeadAsync(NetworkStream stream)
    {
        var head = new StringBuilder();
        var one = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(one).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
            if (read == 0)
            {
                break;
            }

            head.Append((char)one[0]);
        }

        return head.ToString();
    }

    private sealed class FixedAnswer(ShortCircuitResponse? answer, bool fail = false) : IResponseShortCircuit
    {
        public ValueTask<ShortCircuitResponse?> TryAnswerAsync(Exchange request, CancellationToken cancellationToken) =>
            fail ? throw new InvalidOperationException("lookup broke") : ValueTask.FromResult(answer);
    }

    // An upstream that records the head of the first request it gets (names in any case).
    private static async Task<(TestUpstream Upstream, Task<Dictionary<string, string?[]>> Head)> HeadRecordingUpstreamAsync()
    {
        var seen = new TaskCompletionSource<Dictionary<string, string?[]>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var upstream = await TestUpstream.StartAsync(context =>
        {
            seen.TrySetResult(context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToArray(), StringComparer.OrdinalIgnoreCase));
            return Task.CompletedTask;
        });
        return (upstream, seen.Task);
    }
}
