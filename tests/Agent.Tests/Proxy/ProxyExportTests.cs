using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Proxy;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Configuration;
using SpIstio.Core.Otlp;
using Microsoft.AspNetCore.Http;
using SpIstio.Core.Otlp.Proto.Trace;

namespace SpIstio.Agent.Tests.Proxy;

/// <summary>The whole path: client → proxy → upstream, and the captured exchange → exporter → a real OTLP receiver.</summary>
public sealed class ProxyExportTests
{
    [Fact]
    public async Task Captured_exchanges_arrive_at_the_OTLP_receiver_with_the_span_attributes_and_redaction()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var upstream = await TestUpstream.StartAsync(async context =>
        {
            context.Response.ContentType = "application/json";
            context.Response.Headers["x-upstream"] = "yes";
            await context.Response.WriteAsync("{\"booking\":\"B-17\",\"password\":\"hunter2\"}");
        });
        var options = new AgentOptions
        {
            SpBackendUrl = receiver.BaseAddress,
            PublicKey = "pk-test",
            ServiceName = "checkout",
            Export = new ExportOptions { BatchDelayMs = 20 },
        };
        await using var runtime = AgentRuntime.Create(options, NullLoggerFactory.Instance);
        await using var proxy = await CaptureProxyServer.StartAsync(
            new ListenAddress("127.0.0.1", 0),
            new CaptureProxyOptions { Upstream = upstream.Address },
            runtime.Pipeline,
            NullLoggerFactory.Instance);
        using var client = new HttpClient { BaseAddress = proxy.Address };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/bookings?id=17")
        {
            Content = new StringContent("{\"seat\":\"12A\"}", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "secret-token");
        request.Headers.Add("x-session-id", "s-1");

        using var response = await client.SendAsync(request);
        await receiver.WaitForSpansAsync(1);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var span = Assert.Single(receiver.Spans);
        var attributes = span.Attributes.ToDictionary(a => a.Key, a => ExchangeSpanMapper.AsString(a.Value));
        Assert.Equal(Span.Types.SpanKind.Server, span.Kind);
        Assert.Equal("checkout", attributes[OtlpAttributes.ServiceName]);
        Assert.Equal("inbound", attributes[OtlpAttributes.TrafficDirection]);
        Assert.Equal("s-1", attributes[OtlpAttributes.SessionId]);
        Assert.Equal("pk-test", attributes[OtlpAttributes.PublicKey]);
        Assert.Equal("/bookings", attributes[OtlpAttributes.UrlPath]);
        Assert.Equal("POST", attributes[OtlpAttributes.HttpRequestMethod]);
        Assert.Equal("200", attributes["http.response.status_code"]);
        Assert.Equal("{\"seat\":\"12A\"}", attributes["http.request.body"]);
        Assert.Equal("yes", attributes["http.response.header.x-upstream"]);
        Assert.Equal("[REDACTED]", attributes["http.request.header.authorization"]);
        Assert.DoesNotContain("hunter2", attributes["http.response.body"]);
        Assert.Contains("B-17", attributes["http.response.body"]);
        Assert.Equal(1, runtime.Metrics.Requests(Core.Model.TrafficDirection.Inbound, Core.Rules.CaptureDecision.Capture).Value);
    }

    [Fact]
    public async Task A_backend_that_is_down_never_affects_proxied_traffic()
    {
        var options = new AgentOptions
        {
            // Nothing listens here; the exporter fails and drops in the background.
            SpBackendUrl = new Uri("http://127.0.0.1:1"),
            Export = new ExportOptions { BatchDelayMs = 1, MaxRetries = 0 },
        };
        await using var upstream = await TestUpstream.StartAsync(context => context.Response.WriteAsync("fine"));
        await using var runtime = AgentRuntime.Create(options, NullLoggerFactory.Instance);
        await using var proxy = await CaptureProxyServer.StartAsync(
            new ListenAddress("127.0.0.1", 0),
            new CaptureProxyOptions { Upstream = upstream.Address },
            runtime.Pipeline,
            NullLoggerFactory.Instance);
        using var client = new HttpClient { BaseAddress = proxy.Address };

        for (var i = 0; i < 50; i++)
        {
            Assert.Equal("fine", await client.GetStringAsync("/ok/" + i));
        }

        await OtlpReceiver.WaitUntilAsync(
            () => runtime.Metrics.ExportSpansFailed.Value + runtime.Metrics.ExportDropped.Value > 0,
            describe: () => "the exporter never reported the failed backend");
    }
}
