using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using OpenQA.Selenium;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Storage;
using SpIstio.Backend.Tests.GrpcCalls;
using SpIstio.Core.Tests.GrpcMessages.Generated;
using SpIstio.Ui.Tests.Infrastructure;

namespace SpIstio.Ui.Tests;

/// <summary>
/// A gRPC call in the Trace View, in real Chromium: a backend started with the descriptor set protoc
/// made from the test proto, the call ingested through the real OTLP endpoint as the agent exports
/// it; the pages show service/method, the status by name and the messages with field names, under
/// the strict Content-Security-Policy.
/// </summary>
public sealed class GrpcCallBrowserTests : IAsyncLifetime, IDisposable
{
    private const string Session = "orders-grpc-42";

    private readonly Browser browser = new();
    private readonly ActivityTraceId _trace = ActivityTraceId.CreateRandom();
    private string _directory = "";
    private BackendServer _server = null!;
    private string _readKey = "";

    public async Task InitializeAsync()
    {
        _directory = Path.Combine(Path.GetTempPath(), "sp-ui-grpc-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        _server = await BackendServer.StartAsync(new BackendOptions
        {
            Listen = "127.0.0.1:0",
            Store = "sqlite:" + Path.Combine(_directory, "sp.db"),
            GrpcDescriptorSets = [GrpcTestCalls.DescriptorSetPath],
        }, NullLoggerFactory.Instance);
        _readKey = (await KeyAdministration.CreateKeyAsync(_server.Store, "acme", KeyScope.Read, "ui", TimeProvider.System, CancellationToken.None)).Key;
        var ingestKey = (await KeyAdministration.CreateKeyAsync(_server.Store, "acme", KeyScope.Ingest, "agent", TimeProvider.System, CancellationToken.None)).Key;

        var call = GrpcTestCalls.Call(_trace, Session, DateTimeOffset.UtcNow.AddMinutes(-2), 5, "order ord-77 is not in the warehouse",
            GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderRequest { OrderId = "ord-77" }), 0.3)),
            GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderReply { OrderId = "ord-77", TotalCents = 4200 }), 6.5)));
        await OtlpIngest.SendAsync(_server, ingestKey, [call]);
    }

    public async Task DisposeAsync()
    {
        await _server.StopAsync();
        Directory.Delete(_directory, recursive: true);
    }

    public void Dispose() => browser.Dispose();

    [Fact]
    public void AGrpcCall_ShowsServiceMethod_StatusName_AndDecodedFieldNames_InEveryView_WithoutAPolicyViolation()
    {
        CspViolations.Record(browser);
        browser.SignIn(_server.Address, _readKey);

        // The session's timeline lists the call by service/method and status name.
        browser.Go(_server.Address, "/sessions/" + Session);
        AssertNoViolations();
        var timeline = browser.Text(By.Id("timeline"));
        Assert.Contains("gRPC sp.test.grpc.Orders/Get", timeline, StringComparison.Ordinal);
        Assert.Contains("NOT_FOUND", timeline, StringComparison.Ordinal);

        // The trace tree too.
        browser.Go(_server.Address, "/traces/" + _trace.ToHexString());
        AssertNoViolations();
        var waterfall = browser.Text(By.Id("waterfall"));
        Assert.Contains("sp.test.grpc.Orders/Get", waterfall, StringComparison.Ordinal);
        Assert.Contains("NOT_FOUND", waterfall, StringComparison.Ordinal);

        // The exchange page: title, status with grpc-message, metadata and the messages with field names.
        browser.ClickToNavigate(By.CssSelector("a.span-link"));
        AssertNoViolations();
        Assert.Equal("sp.test.grpc.Orders/Get", browser.Text(By.Id("grpc-title")));
        Assert.Equal("NOT_FOUND", browser.Text(By.Id("grpc-status")));
        Assert.Contains("order ord-77 is not in the warehouse", browser.Text(By.Id("grpc-status-message")), StringComparison.Ordinal);
        Assert.Contains("x-tenant-hint", browser.Text(By.Id("grpc-request-metadata")), StringComparison.Ordinal);
        var rows = browser.FindAll(By.CssSelector("#grpc-messages tr.grpc-message-row"));
        Assert.Equal(2, rows.Count);
        var request = browser.Text(By.CssSelector("#grpc-messages tr.grpc-message-row.request"));
        Assert.Contains("sp.test.grpc.OrderRequest", request, StringComparison.Ordinal);
        Assert.Contains("orderId", request, StringComparison.Ordinal);
        Assert.Contains("ord-77", request, StringComparison.Ordinal);
        var response = browser.Text(By.CssSelector("#grpc-messages tr.grpc-message-row.response"));
        Assert.Contains("totalCents", response, StringComparison.Ordinal);
        Assert.Contains("with field names", browser.Text(By.Id("grpc-decoding")), StringComparison.Ordinal);
        browser.Screenshot("grpc-call");

        // The search results list the trace by its root call's service/method and status.
        browser.Go(_server.Address, "/traces?range=7d");
        AssertNoViolations();
        var results = browser.Text(By.Id("traces-body"));
        Assert.Contains("gRPC sp.test.grpc.Orders/Get", results, StringComparison.Ordinal);
        Assert.Contains("NOT_FOUND", results, StringComparison.Ordinal);
    }

    [Fact]
    public void AGrpcCallAnsweredHttp200WithNotFound_IsColouredByItsGrpcStatus_InTheSessionTimeline()
    {
        browser.SignIn(_server.Address, _readKey);
        browser.Go(_server.Address, "/sessions/" + Session);

        // NOT_FOUND is a client error (google/rpc/code.proto maps it to 404) although HTTP said 200:
        // the row, its bar and its arrow in the sequence diagram are classed so, as a 404 would be.
        const string Row = "//table[@id='timeline']//tr[contains(., 'sp.test.grpc.Orders/Get')]";
        var row = browser.Find(By.XPath(Row));
        Assert.Contains("failed", row.GetAttribute("class") ?? "", StringComparison.Ordinal);
        var bar = browser.Find(By.XPath(Row + "//span[contains(concat(' ', @class, ' '), ' bar ')]"));
        Assert.Contains("client-error", bar.GetAttribute("class") ?? "", StringComparison.Ordinal);
        Assert.DoesNotContain(" ok", " " + bar.GetAttribute("class"), StringComparison.Ordinal);
        Assert.Single(browser.FindAll(By.CssSelector("g.msg.client-error")));
        Assert.Empty(browser.FindAll(By.CssSelector("g.msg.ok")));
    }

    private void AssertNoViolations() => CspViolations.AssertNone(browser);
}
