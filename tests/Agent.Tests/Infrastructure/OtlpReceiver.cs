using System.Globalization;
using System.IO.Compression;
using System.Net;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using OtlpSpan = SpIstio.Core.Otlp.Proto.Trace.Span;

namespace SpIstio.Agent.Tests.Infrastructure;

/// <summary>
/// A real OTLP/HTTP trace receiver for tests: Kestrel, HTTP/1.1, 127.0.0.1 on a free port.
/// Accepts <c>POST /v1/traces</c> (protobuf or OTLP/JSON, optionally gzip or zstd), records every request
/// with its headers and decoded payload, and answers what the test scripted.
/// <code>
/// await using var receiver = await OtlpReceiver.StartAsync();
/// options.SpBackendUrl = receiver.BaseAddress;
/// receiver.Enqueue(ReceiverResponse.TooManyRequests("5"), ReceiverResponse.Ok());   // first answers, in order
/// receiver.Default = ReceiverResponse.Status(503);                                   // afterwards
/// await receiver.WaitForSpansAsync(3);
/// </code>
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly List<ReceivedExport> _requests = [];
    private readonly Queue<ReceiverResponse> _script = new();
    private readonly WebApplication _app;

    private OtlpReceiver(WebApplication app)
    {
        _app = app;
    }

    /// <summary><c>http://127.0.0.1:port</c> — use as <c>sp_backend_url</c>.</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>The answer once the scripted ones are used up (200, empty body, by default).</summary>
    public ReceiverResponse Default { get; set; } = ReceiverResponse.Ok();

    /// <summary>Every request received so far, in arrival order (a snapshot).</summary>
    public IReadOnlyList<ReceivedExport> Requests
    {
        get
        {
            lock (_lock)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>Every span of every request received so far, in arrival order.</summary>
    public IReadOnlyList<OtlpSpan> Spans => [.. Requests.SelectMany(r => r.Spans)];

    /// <summary>Starts a receiver on 127.0.0.1 and a free port.</summary>
    public static async Task<OtlpReceiver> StartAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http1));
        var app = builder.Build();
        var receiver = new OtlpReceiver(app);
        app.Run(receiver.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.BaseAddress = new Uri(address);
        return receiver;
    }

    /// <summary>Scripts the next answers, used one per request in order before <see cref="Default"/>.</summary>
    public void Enqueue(params ReceiverResponse[] responses)
    {
        lock (_lock)
        {
            foreach (var response in responses)
            {
                _script.Enqueue(response);
            }
        }
    }

    /// <summary>Waits until at least <paramref name="count"/> requests arrived; fails the test after <paramref name="timeout"/> (30 s by default).</summary>
    public Task WaitForRequestsAsync(int count, TimeSpan? timeout = null) =>
        WaitUntilAsync(() => Requests.Count >= count, timeout, () => $"expected {count} requests, got {Requests.Count}");

    /// <summary>Waits until at least <paramref name="count"/> spans arrived; fails the test after <paramref name="timeout"/> (30 s by default).</summary>
    public Task WaitForSpansAsync(int count, TimeSpan? timeout = null) =>
        WaitUntilAsync(() => Spans.Count >= count, timeout, () => $"expected {count} spans, got {Spans.Count}");

    /// <summary>Polls <paramref name="condition"/> until it holds; fails the test with <paramref name="describe"/> after the timeout.</summary>
    public static Task WaitUntilAsync(Func<bool> condition, TimeSpan? timeout = null, Func<string>? describe = null) =>
        WaitUntilAsync(() => Task.FromResult(condition()), timeout, describe, TimeSpan.FromMilliseconds(10));

    /// <summary>
    /// Polls an asynchronous <paramref name="condition"/> (a metric read over HTTP, a store query)
    /// every <paramref name="interval"/> until it holds; fails the test with <paramref name="describe"/> after the timeout.
    /// </summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan? timeout, Func<string>? describe, TimeSpan interval)
    {
        // The deadline only turns a hang into a failure; a loaded CI machine may need most of it.
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail("Timed out: " + (describe?.Invoke() ?? "condition not met"));
            }

            await Task.Delay(interval);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var header in request.Headers)
        {
            headers[header.Key] = header.Value.ToString();
        }

        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body, context.RequestAborted);
        var raw = body.ToArray();
        ExportTraceServiceRequest? decoded = null;
        string? decodeError = null;
        try
        {
            decoded = Decode(raw, headers);
        }
        catch (Exception ex) when (ex is InvalidDataException or InvalidProtocolBufferException or FormatException)
        {
            decodeError = ex.Message;
        }

        ReceiverResponse answer;
        lock (_lock)
        {
            _requests.Add(new ReceivedExport(request.Method, request.Path.Value ?? "", headers, raw, decoded, decodeError));
            answer = _script.Count > 0 ? _script.Dequeue() : Default;
        }

        if (answer.Delay > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(answer.Delay, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        context.Response.StatusCode = answer.StatusCode;
        if (answer.RetryAfter is not null)
        {
            context.Response.Headers.RetryAfter = answer.RetryAfter;
        }

        if (answer.RejectedSpans > 0)
        {
            var partial = new ExportTraceServiceResponse
            {
                PartialSuccess = new ExportTracePartialSuccess { RejectedSpans = answer.RejectedSpans, ErrorMessage = answer.Body ?? "" },
            };
            context.Response.ContentType = "application/x-protobuf";
            await context.Response.Body.WriteAsync(partial.ToByteArray(), context.RequestAborted);
        }
        else if (answer.Body is not null)
        {
            context.Response.ContentType = "text/plain";
            await context.Response.WriteAsync(answer.Body, context.RequestAborted);
        }
    }

    private static ExportTraceServiceRequest Decode(byte[] raw, Dictionary<string, string> headers)
    {
        var bytes = raw;
        if (headers.TryGetValue("content-encoding", out var encoding) && encoding.Contains("gzip", StringComparison.OrdinalIgnoreCase))
        {
            using var gzip = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
            using var inflated = new MemoryStream();
            gzip.CopyTo(inflated);
            bytes = inflated.ToArray();
        }
        else if (encoding is not null && encoding.Contains("zstd", StringComparison.OrdinalIgnoreCase))
        {
            using var zstd = new ZstdSharp.DecompressionStream(new MemoryStream(raw));
            using var inflated = new MemoryStream();
            zstd.CopyTo(inflated);
            bytes = inflated.ToArray();
        }

        return headers.TryGetValue("content-type", out var type) && type.Contains("json", StringComparison.OrdinalIgnoreCase)
            ? OtlpJson.Parse<ExportTraceServiceRequest>(bytes)
            : ExportTraceServiceRequest.Parser.ParseFrom(bytes);
    }
}

/// <summary>One request the receiver got.</summary>
/// <param name="Method">HTTP method.</param>
/// <param name="Path">Request path, e.g. <c>/v1/traces</c>.</param>
/// <param name="Headers">Request headers (case-insensitive names).</param>
/// <param name="Body">The body as sent (still gzip-compressed when it was).</param>
/// <param name="Export">The decoded payload, or null when it did not decode (see <paramref name="DecodeError"/>).</param>
/// <param name="DecodeError">Why the payload did not decode.</param>
public sealed record ReceivedExport(
    string Method,
    string Path,
    IReadOnlyDictionary<string, string> Headers,
    byte[] Body,
    ExportTraceServiceRequest? Export,
    string? DecodeError)
{
    /// <summary>The spans of this request (none when it did not decode).</summary>
    public IReadOnlyList<OtlpSpan> Spans =>
        Export is null ? [] : [.. Export.ResourceSpans.SelectMany(r => r.ScopeSpans).SelectMany(s => s.Spans)];

    /// <summary>A header value, or null.</summary>
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;
}

/// <summary>How the receiver answers one request.</summary>
/// <param name="StatusCode">HTTP status.</param>
/// <param name="RetryAfter">Retry-After header value (seconds or an HTTP date), or null.</param>
/// <param name="Delay">How long to wait before answering (a slow backend).</param>
/// <param name="RejectedSpans">When above 0, a protobuf partial-success body rejecting that many spans.</param>
/// <param name="Body">Text body, or the partial-success error message.</param>
public sealed record ReceiverResponse(int StatusCode, string? RetryAfter = null, TimeSpan Delay = default, long RejectedSpans = 0, string? Body = null)
{
    /// <summary>200 with an empty body.</summary>
    public static ReceiverResponse Ok() => new(200);

    /// <summary>Any status with an empty body.</summary>
    public static ReceiverResponse Status(int statusCode, string? body = null) => new(statusCode, Body: body);

    /// <summary>429 with a Retry-After value.</summary>
    public static ReceiverResponse TooManyRequests(string retryAfter) => new(429, retryAfter);

    /// <summary>503, optionally with a Retry-After value.</summary>
    public static ReceiverResponse Unavailable(string? retryAfter = null) => new(503, retryAfter);

    /// <summary>200 after <paramref name="delay"/>.</summary>
    public static ReceiverResponse Slow(TimeSpan delay) => new(200, Delay: delay);

    /// <summary>200 with an OTLP partial success rejecting <paramref name="rejectedSpans"/> spans.</summary>
    public static ReceiverResponse PartialSuccess(long rejectedSpans, string message = "rejected by test") =>
        new(200, RejectedSpans: rejectedSpans, Body: message);

    /// <summary>Retry-After as whole seconds.</summary>
    public static string Seconds(int seconds) => seconds.ToString(CultureInfo.InvariantCulture);
}
