using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using SpIstio.Agent.Tests.Infrastructure;

namespace SpIstio.EndToEnd.Tests;

/// <summary>
/// <c>proxy.max_connections</c> against a real <c>sp agent proxy</c> with the smallest capture budget:
/// more clients than the bound connect at once; the ones over it get a clear refusal (503 with
/// Retry-After), the ones under it their responses, and the process stays up and keeps exporting.
/// Every wait is on a signal (requests arriving upstream, agent metrics, spans at the receiver).
/// </summary>
public sealed class AgentConnectionLimitTests
{
    private const int MaxConnections = 8;
    private const int Refused = 24;
    private const int BodyBytes = 64 * 1024;
    private const int After = 4;
    private const string Exported = "sp_export_spans_total{result=\"exported\"}";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task MoreConnectionsThanTheBound_OverTheBoundRefusedWith503_HeldOnesAnswered_ExportsContinue()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = 0;
        await using var upstream = await StartUpstreamAsync(release.Task, () => Interlocked.Increment(ref held));
        await using var sp = SpChild.Start(
            "agent", "proxy",
            "--listen", "127.0.0.1:0",
            "--upstream", upstream.Address.ToString(),
            "--admin", "127.0.0.1:0",
            "--ignore-env",
            "--set", "sp_backend_url=" + receiver.BaseAddress,
            "--set", "public_key=test",
            "--set", "export.max_inflight_bytes=1048576",
            "--set", "proxy.max_connections=" + MaxConnections.ToString(CultureInfo.InvariantCulture));
        var admin = AddressFrom(await sp.WaitForLineAsync("admin listening on "));
        var proxy = AddressFrom(await sp.WaitForLineAsync("proxy listening on "));

        // The bound's worth of connections, each with a 64 KiB upload the upstream holds unanswered.
        using var heldClient = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = MaxConnections });
        var heldResponses = Enumerable.Range(0, MaxConnections)
            .Select(i => heldClient.PostAsync(new Uri(proxy, "/held/" + i), new ByteArrayContent(new byte[BodyBytes])))
            .ToList();
        await OtlpReceiver.WaitUntilAsync(() => Volatile.Read(ref held) == MaxConnections, Deadline, () => $"{held} of {MaxConnections} requests reached the upstream");
        Assert.Equal(MaxConnections, await MetricAsync(admin, "sp_proxy_connections_open"));

        // Every connection over the bound, all at once: each is told to retry, none is served.
        var refusals = await Task.WhenAll(Enumerable.Range(0, Refused).Select(async i =>
        {
            using var client = new HttpClient();
            using var response = await client.PostAsync(new Uri(proxy, "/over/" + i), new ByteArrayContent(new byte[BodyBytes]));
            return (response.StatusCode, RetryAfter: response.Headers.RetryAfter?.Delta, Body: await response.Content.ReadAsStringAsync());
        }));
        Assert.All(refusals, r =>
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(1), r.RetryAfter);
            Assert.Contains("proxy.max_connections", r.Body, StringComparison.Ordinal);
        });
        Assert.Equal(Refused, await MetricAsync(admin, "sp_proxy_connections_refused_total"));
        Assert.Equal(MaxConnections, Volatile.Read(ref held));

        // The held ones finish with the upstream's answer, their connections close, and the
        // proxy serves and captures new ones: it is up, accepting and exporting.
        release.SetResult();
        foreach (var response in await Task.WhenAll(heldResponses))
        {
            using (response)
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal(BodyBytes, (await response.Content.ReadAsByteArrayAsync()).Length);
            }
        }

        heldClient.Dispose();
        await WaitForMetricAsync(admin, "sp_proxy_connections_open", v => v == 0);

        // Eight 128 KiB exchanges overfill the 1 MiB budget: what did not fit was cut short or
        // dropped, and counted. Once it has drained, each new exchange is exported.
        await WaitForMetricAsync(admin, "sp_export_inflight_bytes", v => v == 0);
        var exported = await MetricAsync(admin, Exported);
        using (var after = new HttpClient())
        {
            for (var i = 1; i <= After; i++)
            {
                using var response = await after.GetAsync(new Uri(proxy, "/after/" + i));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var want = exported + i;
                await WaitForMetricAsync(admin, Exported, v => v >= want);
            }
        }

        Assert.True(receiver.Spans.Count >= exported + After, $"{receiver.Spans.Count} spans at the receiver, {exported + After} exported");
        Assert.Equal(MaxConnections + After, await MetricAsync(admin, "sp_requests_total{direction=\"inbound\",outcome=\"captured\"}") + await MetricAsync(admin, "sp_requests_total{direction=\"inbound\",outcome=\"dropped\"}"));
        Assert.False(sp.HasExited);
        Assert.Equal(Refused, await MetricAsync(admin, "sp_proxy_connections_refused_total"));
        Assert.Equal(0, await MetricAsync(admin, "sp_export_loop_faults_total"));
        Assert.Contains("client connections are open (proxy.max_connections)", sp.StdErr, StringComparison.Ordinal);
        Assert.Equal(0, await sp.TerminateAsync());
    }

    [Fact]
    public async Task MaxConnectionsOutOfRange_StartUpFailsNamingTheKey()
    {
        var run = await SpProcess.RunAsync("agent", "proxy", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1", "--ignore-env", "--set", "proxy.max_connections=0", "--set", "export.max_inflight_bytes=1");

        Assert.Equal(2, run.ExitCode);
        var errors = run.StdErr.Split('\n').Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("error: proxy.max_connections:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("error: export.max_inflight_bytes:", StringComparison.Ordinal));
    }

    private static Uri AddressFrom(string line) => new(line.Split(' ')[3]);

    private static Task<double> MetricAsync(Uri admin, string series) => AdminMetrics.ValueAsync(admin, series);

    private static Task WaitForMetricAsync(Uri admin, string series, Func<double, bool> condition) =>
        AdminMetrics.WaitForAsync(admin, series, condition, Deadline);

    /// <summary>An upstream that reads each request's body, then holds <c>/held/*</c> until <paramref name="release"/>, and answers 64 KiB.</summary>
    private static async Task<WebApplication> StartUpstreamAsync(Task release, Action arrived)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var body = new byte[BodyBytes];
        Array.Fill(body, (byte)'x');
        app.Run(async context =>
        {
            await context.Request.Body.CopyToAsync(Stream.Null);
            if (context.Request.Path.StartsWithSegments("/held", StringComparison.Ordinal))
            {
                arrived();
                await release;
            }

            context.Response.ContentType = "text/plain";
            await context.Response.Body.WriteAsync(body);
        });
        await app.StartAsync();
        return app;
    }
}
