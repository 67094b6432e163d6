using Microsoft.AspNetCore.Http;
using SpIstio.Agent.Tests.ExtProc;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Agent.Tests.Proxy;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Tracing;

namespace SpIstio.Agent.Tests.Pipeline;

/// <summary>
/// <c>sampling.by: session</c> across hops: real capture proxies chained in front of a real
/// upstream, and the real ext_proc server, each with the same ratio, keep or drop the same
/// sessions entirely, every request being a new trace.
/// </summary>
public class SessionSamplingTests
{
    private const int Sessions = 24;
    private const int RequestsPerSession = 3;
    private const int Anonymous = 12;

    private static AgentOptions Options()
    {
        var options = new AgentOptions();
        options.Sampling.Ratio = 0.5;
        return options;
    }

    private static string SessionOf(int i) => "booking-" + i;

    [Fact]
    public async Task TwoProxyHopsAndExtProc_KeepTheSameSessionsWhole()
    {
        await using var upstream = await TestUpstream.StartAsync(context => context.Response.WriteAsync("ok"));
        await using var second = await ProxyHarness.StartAsync(upstream.Address, options: Options());
        await using var first = await ProxyHarness.StartAsync(second.Server.Address, direction: TrafficDirection.Outbound, options: Options());
        await using var extProc = await ExtProcTestHost.StartAsync(Options());
        var expectedKept = Enumerable.Range(0, Sessions).Select(SessionOf).Where(s => SessionSampler.ShouldSample(s, 0.5)).ToHashSet();
        Assert.InRange(expectedKept.Count, 1, Sessions - 1); // the ids make the test mean something

        for (var round = 0; round < RequestsPerSession; round++)
        {
            for (var i = 0; i < Sessions; i++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "/api/step/" + round);
                request.Headers.Add("x-session-id", SessionOf(i));
                using var response = await first.Client.SendAsync(request);
                response.EnsureSuccessStatusCode();

                using var stream = extProc.Open();
                await stream.SendAsync(Envoy.RequestHeaders("GET", "/api/step/" + round, true, ("x-session-id", SessionOf(i))));
                await stream.SendAsync(Envoy.ResponseHeaders(200, true));
                await stream.CompleteAsync();
            }
        }

        // Sessions the first hop generates are relayed in tracestate: the second hop decides alike.
        for (var i = 0; i < Anonymous; i++)
        {
            using var response = await first.Client.GetAsync("/anonymous/" + i);
            response.EnsureSuccessStatusCode();
        }

        // Every exchange was either exported or counted as sampled out, on every hop.
        const int ProxyTotal = (Sessions * RequestsPerSession) + Anonymous;
        var hops = new[]
        {
            (Metrics: first.Metrics, Direction: TrafficDirection.Outbound, Total: ProxyTotal),
            (Metrics: second.Metrics, Direction: TrafficDirection.Inbound, Total: ProxyTotal),
            (Metrics: extProc.Metrics, Direction: TrafficDirection.Inbound, Total: Sessions * RequestsPerSession),
        };
        foreach (var hop in hops)
        {
            await OtlpReceiver.WaitUntilAsync(
                () => hop.Metrics.Requests(hop.Direction, Core.Rules.CaptureDecision.Capture).Value + hop.Metrics.RequestsSampledOut(hop.Direction).Value == hop.Total,
                describe: () => $"{hop.Direction}: {hop.Metrics.Requests(hop.Direction, Core.Rules.CaptureDecision.Capture).Value} captured, {hop.Metrics.RequestsSampledOut(hop.Direction).Value} sampled out of {hop.Total}");
        }

        var firstHop = Drain(first.Exporter);
        var secondHop = Drain(second.Exporter);
        foreach (var exported in new[] { firstHop, secondHop, [.. extProc.Exporter.Exchanges] })
        {
            var named = exported.Where(e => e.SessionId!.StartsWith("booking-", StringComparison.Ordinal)).ToList();
            Assert.Equal(expectedKept.Order(), named.Select(e => e.SessionId!).Distinct().Order());
            Assert.All(named.GroupBy(e => e.SessionId), kept => Assert.Equal(RequestsPerSession, kept.Count()));
        }

        // Generated sessions: the second hop kept exactly the exchanges the first kept, under the same id.
        var firstAnonymous = firstHop.Where(e => e.Path.StartsWith("/anonymous/", StringComparison.Ordinal)).ToDictionary(e => e.TraceId, e => e.SessionId);
        var secondAnonymous = secondHop.Where(e => e.Path.StartsWith("/anonymous/", StringComparison.Ordinal)).ToDictionary(e => e.TraceId, e => e.SessionId);
        Assert.Equal(firstAnonymous.OrderBy(p => p.Key.ToHexString()), secondAnonymous.OrderBy(p => p.Key.ToHexString()));
    }

    [Fact]
    public async Task ByTrace_KeepsTheOldTraceIdDecision()
    {
        var options = Options();
        options.Sampling.By = SamplingBy.Trace;
        await using var host = await ExtProcTestHost.StartAsync(options);
        const int Requests = 40;
        var traces = Enumerable.Range(0, Requests).Select(_ => ActivityTraceIdFactory()).ToList();
        foreach (var trace in traces)
        {
            using var stream = host.Open();
            await stream.SendAsync(Envoy.RequestHeaders("GET", "/", true, ("traceparent", $"00-{trace}-00f067aa0ba902b7-01"), ("x-session-id", "one-session")));
            await stream.SendAsync(Envoy.ResponseHeaders(200, true));
            await stream.CompleteAsync();
        }

        await OtlpReceiver.WaitUntilAsync(() => host.Metrics.Requests(TrafficDirection.Inbound, Core.Rules.CaptureDecision.Capture).Value + host.Metrics.RequestsSampledOut(TrafficDirection.Inbound).Value == Requests);

        var expected = traces.Where(t => TraceSampler.ShouldSample(System.Diagnostics.ActivityTraceId.CreateFromString(t), 0.5)).Order().ToList();
        Assert.Equal(expected, host.Exporter.Exchanges.Select(e => e.TraceId.ToHexString()).Order().ToList());
        Assert.InRange(expected.Count, 1, Requests - 1);
    }

    private static string ActivityTraceIdFactory() => System.Diagnostics.ActivityTraceId.CreateRandom().ToHexString();

    private static List<Exchange> Drain(Proxy.CollectingExporter exporter)
    {
        var all = new List<Exchange>();
        while (exporter.TryTake(out var exchange))
        {
            all.Add(exchange!);
        }

        return all;
    }
}
