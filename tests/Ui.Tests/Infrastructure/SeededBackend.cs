using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Storage;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;
using SpIstio.Core.Redaction;

namespace SpIstio.Ui.Tests.Infrastructure;

/// <summary>
/// A real backend (SQLite in a temporary folder, port 0) seeded through the real ingest API with
/// exchanges built by Core's mapper: tenant acme has a checkout session (redacted header and JSON
/// body, a 500 from payments, a binary image), a browse session and a 10,000-span trace; tenant
/// globex has a session acme must never see.
/// </summary>
public sealed class SeededBackend : IAsyncLifetime
{
    public const string CheckoutSession = "checkout-7781";
    public const string BrowseSession = "browse-1203";
    public const string BulkSession = "bulk-load";
    public const string GlobexSession = "globex-private-session";
    public const string GlobexPath = "/api/globex-only-ledger";
    public const string Password = "hunter2-plain";
    public const string BearerToken = "Bearer tok-9f8e7d6c5b4a";
    public const int BulkSpans = 10_000;

    private string _directory = "";

    public BackendServer Server { get; private set; } = null!;

    public string AcmeReadKey { get; private set; } = "";

    public string AcmeIngestKey { get; private set; } = "";

    public string AcmeAdminKey { get; private set; } = "";

    public string GlobexKey { get; private set; } = "";

    public ActivityTraceId CheckoutTrace { get; } = ActivityTraceId.CreateRandom();

    public ActivitySpanId CheckoutRoot { get; } = ActivitySpanId.CreateRandom();

    public ActivitySpanId PaymentCall { get; } = ActivitySpanId.CreateRandom();

    public ActivitySpanId PaymentServer { get; } = ActivitySpanId.CreateRandom();

    public ActivitySpanId LogoCall { get; } = ActivitySpanId.CreateRandom();

    public ActivityTraceId BrowseTrace { get; } = ActivityTraceId.CreateRandom();

    public ActivityTraceId BulkTrace { get; } = ActivityTraceId.CreateRandom();

    public ActivityTraceId GlobexTrace { get; } = ActivityTraceId.CreateRandom();

    public ActivitySpanId GlobexSpan { get; } = ActivitySpanId.CreateRandom();

    /// <summary>The image bytes the CDN answered (a PNG signature, then bytes 0–255).</summary>
    public byte[] LogoBytes { get; } = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0d, 0x0a, 0x1a, 0x0a, .. Enumerable.Range(0, 256).Select(i => (byte)i)];

    public Uri Address => Server.Address;

    public async Task InitializeAsync()
    {
        _directory = Path.Combine(Path.GetTempPath(), "sp-ui-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        Server = await BackendServer.StartAsync(new BackendOptions
        {
            Listen = "127.0.0.1:0",
            Store = "sqlite:" + Path.Combine(_directory, "sp.db"),
        }, NullLoggerFactory.Instance);
        var time = TimeProvider.System;
        var store = Server.Store;
        AcmeReadKey = (await KeyAdministration.CreateKeyAsync(store, "acme", KeyScope.Read, "ui", time, CancellationToken.None)).Key;
        AcmeIngestKey = (await KeyAdministration.CreateKeyAsync(store, "acme", KeyScope.Ingest, "agent", time, CancellationToken.None)).Key;
        AcmeAdminKey = (await KeyAdministration.CreateKeyAsync(store, "acme", KeyScope.Admin, "mocks", time, CancellationToken.None)).Key;
        GlobexKey = (await KeyAdministration.CreateKeyAsync(store, "globex", KeyScope.Ingest | KeyScope.Read, null, time, CancellationToken.None)).Key;

        await IngestAsync(AcmeIngestKey, AcmeExchanges());
        await IngestAsync(AcmeIngestKey, BulkExchanges());
        await IngestAsync(GlobexKey, [Make("ledger", TrafficDirection.Inbound, "GET", "ledger:80", GlobexPath, 200, GlobexTrace, GlobexSpan, default, 0, 5, GlobexSession)]);
        // Text search (q) is indexed after the commit: the pages' searches see everything seeded.
        await ((ISearchIndexProgress)Server.Store).WaitForSearchAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await Server.StopAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private List<Exchange> AcmeExchanges()
    {
        var redactor = Redactor.Create(new RedactionOptions());
        var checkout = Make("frontend", TrafficDirection.Inbound, "POST", "shop.example:443", "/api/checkout", 201, CheckoutTrace, CheckoutRoot, default, 0, 180, CheckoutSession);
        checkout.Scheme = "https";
        checkout.Query = "promo=spring&lang=en";
        checkout.RequestHeaders.Add("authorization", BearerToken);
        checkout.RequestHeaders.Add("x-request-id", "req-42");
        Json(checkout, request: true, "{\"customer\":\"Ada Lovelace\",\"password\":\"" + Password + "\",\"items\":[{\"sku\":\"BOOK-1\",\"qty\":2},{\"sku\":\"PEN-9\",\"qty\":1}],\"gift\":false}");
        Json(checkout, request: false, "{\"orderId\":\"ord-5521\",\"status\":\"pending-payment\"}");
        redactor.Redact(checkout);

        var pay = Make("frontend", TrafficDirection.Outbound, "GET", "payments:8080", "/api/payments/ord-5521", 500, CheckoutTrace, PaymentCall, CheckoutRoot, 20, 90, CheckoutSession);
        var payServer = Make("payments", TrafficDirection.Inbound, "GET", "payments:8080", "/api/payments/ord-5521", 500, CheckoutTrace, PaymentServer, PaymentCall, 22, 85, CheckoutSession);
        var error = Encoding.UTF8.GetBytes("payment gateway timed out after 80 ms");
        payServer.ResponseHeaders.Add("content-type", "text/plain");
        payServer.ResponseBody = new CapturedBody(error, error.Length, false, BodyKind.Text, "text/plain");
        pay.ResponseBody = payServer.ResponseBody;

        var logo = Make("frontend", TrafficDirection.Outbound, "GET", "cdn.example", "/img/logo.png", 200, CheckoutTrace, LogoCall, CheckoutRoot, 120, 40, CheckoutSession);
        logo.ResponseHeaders.Add("content-type", "image/png");
        logo.ResponseBody = new CapturedBody(LogoBytes, 4096, true, BodyKind.Binary, "image/png");

        var browse = Make("frontend", TrafficDirection.Inbound, "GET", "shop.example", "/api/flights", 200, BrowseTrace, ActivitySpanId.CreateRandom(), default, 400, 30, BrowseSession);
        browse.Query = "from=AMS";
        Json(browse, request: false, "[{\"flight\":\"KL1001\",\"seats\":12}]");
        return [checkout, pay, payServer, logo, browse];
    }

    private List<Exchange> BulkExchanges()
    {
        // 1 root, 99 children, 100 grandchildren each: 10,000 spans, three levels.
        var list = new List<Exchange>(BulkSpans);
        var root = ActivitySpanId.CreateRandom();
        list.Add(Make("batch", TrafficDirection.Inbound, "POST", "batch:80", "/jobs/run", 200, BulkTrace, root, default, -60_000, 9_000, BulkSession));
        for (var c = 0; c < 99; c++)
        {
            var child = ActivitySpanId.CreateRandom();
            list.Add(Make("batch", TrafficDirection.Outbound, "GET", "items:80", "/items/page/" + c, 200, BulkTrace, child, root, -60_000 + c * 90, 80, BulkSession));
            for (var g = 0; g < 100 && list.Count < BulkSpans; g++)
            {
                var status = c == 42 && g == 7 ? 503 : 200;
                list.Add(Make("items", TrafficDirection.Inbound, "GET", "items:80", "/items/" + c + "/" + g, status, BulkTrace, ActivitySpanId.CreateRandom(), child, -60_000 + c * 90 + 1, 1, BulkSession));
            }
        }

        return list;
    }

    private async Task IngestAsync(string key, List<Exchange> exchanges)
    {
        using var http = new HttpClient { BaseAddress = Address };
        using var content = new ByteArrayContent(ExchangeSpanMapper.ToExportRequest(exchanges, null, "test").ToByteArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = content };
        request.Headers.Add("x-public-key", key);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static readonly DateTimeOffset _t0 = DateTimeOffset.UtcNow.AddMinutes(-3);

    private static void Json(Exchange exchange, bool request, string json)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        var body = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json");
        if (request)
        {
            exchange.RequestHeaders.Add("content-type", "application/json");
            exchange.RequestBody = body;
        }
        else
        {
            exchange.ResponseHeaders.Add("content-type", "application/json");
            exchange.ResponseBody = body;
        }
    }

    private static Exchange Make(
        string service, TrafficDirection direction, string method, string authority, string path, int status,
        ActivityTraceId trace, ActivitySpanId span, ActivitySpanId parent, int startMs, int durationMs, string session) => new()
    {
        ServiceName = service,
        Direction = direction,
        Method = method,
        Authority = authority,
        Path = path,
        StatusCode = status,
        TraceId = trace,
        SpanId = span,
        ParentSpanId = parent,
        StartTime = _t0.AddMilliseconds(startMs),
        EndTime = _t0.AddMilliseconds(startMs + durationMs),
        SessionId = session,
    };
}
