using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Agent.Tests.Infrastructure;

namespace SpIstio.EndToEnd.Tests;

public class AgentProxyTests
{
    [Fact]
    public async Task AgentProxy_InFrontOfAnApp_ForwardsCapturesCountsAndDrainsOnSigterm()
    {
        await using var upstream = await StartUpstreamAsync();
        await using var sp = SpChild.Start(
            "agent", "proxy",
            "--listen", "127.0.0.1:0",
            "--upstream", upstream.Address.ToString(),
            "--admin", "127.0.0.1:0",
            "--config", SpProcess.TestData("proxy.yaml"),
            "--ignore-env");

        var admin = AddressFrom(await sp.WaitForLineAsync("admin listening on "));
        var proxy = AddressFrom(await sp.WaitForLineAsync("proxy listening on "));
        using var client = new HttpClient();
        using var response = await client.PostAsync(new Uri(proxy, "/orders?id=7"), new StringContent("{\"qty\":2}"));
        var body = await response.Content.ReadAsStringAsync();

        // The proxy completes the response before it finishes the capture, which counts it: the
        // series may appear just after the client has its answer.
        const string Captured = "sp_requests_total{direction=\"inbound\",outcome=\"captured\"} 1";
        var metrics = "";
        await OtlpReceiver.WaitUntilAsync(
            async () => (metrics = await client.GetStringAsync(new Uri(admin, "/metrics"))).Contains(Captured, StringComparison.Ordinal),
            TimeSpan.FromSeconds(60),
            () => "no captured exchange counted",
            TimeSpan.FromMilliseconds(50));
        var ready = await client.GetAsync(new Uri(admin, "/readyz"));
        var exitCode = await sp.TerminateAsync();

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("POST /orders ?id=7 {\"qty\":2}", body);
        Assert.Contains(Captured, metrics, StringComparison.Ordinal);
        Assert.Contains("sp_proxy_upstream_errors_total 0", metrics, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(0, exitCode);
        Assert.Contains("proxy stopped: 0 exchange(s) delivered to the backend", sp.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AgentProxy_WithoutUpstreamOrForward_ExitsTwoListingEveryProblem()
    {
        var run = await SpProcess.RunAsync("agent", "proxy", "--listen", "nowhere", "--ignore-env", "--set", "sampling.ratio=3");

        Assert.Equal(2, run.ExitCode);
        var errors = run.StdErr.Split('\n').Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("error: sampling.ratio:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("error: --listen:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("--upstream", StringComparison.Ordinal));
    }

    private static Uri AddressFrom(string line) => new(line.Split(' ')[3]);

    private static async Task<WebApplication> StartUpstreamAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.Run(async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var text = await reader.ReadToEndAsync();
            context.Response.StatusCode = StatusCodes.Status201Created;
            await context.Response.WriteAsync($"{context.Request.Method} {context.Request.Path} {context.Request.QueryString} {text}");
        });
        await app.StartAsync();
        return app;
    }
}

internal static class WebApplicationAddress
{
    extension(WebApplication app)
    {
        public Uri Address => new(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }
}
