using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Agent.Proxy;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Tests.Proxy;

/// <summary>A real Kestrel server on 127.0.0.1:0 playing the proxied application.</summary>
internal sealed class TestUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestUpstream(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public static async Task<TestUpstream> StartAsync(RequestDelegate handler, Action<WebApplication>? configure = null)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddLogging();
        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.Limits.MaxRequestBodySize = null;
        });
        var app = builder.Build();
        configure?.Invoke(app);
        app.Run(handler);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestUpstream(app, new Uri(address));
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

/// <summary>The exporter double: collects what the pipeline queued, lets a test wait for it.</summary>
internal sealed class CollectingExporter : IExchangeExporter
{
    private readonly Channel<Exchange> _exchanges = Channel.CreateUnbounded<Exchange>();
    private readonly ManualResetEventSlim _open = new(initialState: true);

    /// <summary>Makes every <see cref="TryEnqueue"/> block until <see cref="Release"/>: capture work that cannot end.</summary>
    public void Hold() => _open.Reset();

    /// <summary>Lets held and later <see cref="TryEnqueue"/> calls through.</summary>
    public void Release() => _open.Set();

    public bool TryEnqueue(Exchange exchange)
    {
        _open.Wait();
        return _exchanges.Writer.TryWrite(exchange);
    }

    public async Task<Exchange> NextAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        return await _exchanges.Reader.ReadAsync(cts.Token);
    }

    public bool TryTake(out Exchange? exchange) => _exchanges.Reader.TryRead(out exchange);
}

/// <summary>A capture proxy in front of an upstream (or in forward mode) with a collecting exporter.</summary>
internal sealed class ProxyHarness : IAsyncDisposable
{
    private ProxyHarness(CaptureProxyServer server, CollectingExporter exporter, AgentMetrics metrics)
    {
        Server = server;
        Exporter = exporter;
        Metrics = metrics;
        Client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AutomaticDecompression = DecompressionMethods.None })
        {
            BaseAddress = server.Address,
            Timeout = TimeSpan.FromSeconds(60),
        };
    }

    public CaptureProxyServer Server { get; }

    public CollectingExporter Exporter { get; }

    public AgentMetrics Metrics { get; }

    /// <summary>A client addressing the proxy directly (reverse mode).</summary>
    public HttpClient Client { get; }

    public static async Task<ProxyHarness> StartAsync(
        Uri? upstream,
        bool forward = false,
        TrafficDirection direction = TrafficDirection.Inbound,
        AgentOptions? options = null,
        IResponseShortCircuit? shortCircuit = null,
        bool capture = true,
        ILoggerFactory? loggerFactory = null)
    {
        var exporter = new CollectingExporter();
        var metrics = new AgentMetrics();
        var pipeline = new CapturePipeline(options ?? new AgentOptions(), exporter, metrics, NullLogger<CapturePipeline>.Instance, shortCircuit);
        var server = await CaptureProxyServer.StartAsync(
            new ListenAddress("127.0.0.1", 0),
            new CaptureProxyOptions { Upstream = upstream, Forward = forward, Direction = direction, Capture = capture },
            pipeline,
            loggerFactory ?? NullLoggerFactory.Instance);
        return new ProxyHarness(server, exporter, metrics);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}
