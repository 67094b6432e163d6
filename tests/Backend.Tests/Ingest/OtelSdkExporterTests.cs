using System.Diagnostics;
using System.Net;
using System.Text.Json;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using SpIstio.Backend.Tests.Infrastructure;

namespace SpIstio.Backend.Tests.Ingest;

/// <summary>The OpenTelemetry .NET SDK's own OTLP exporters as clients, then the spans read back through the API.</summary>
public sealed class OtelSdkExporterTests : IAsyncLifetime
{
    private BackendFixture _backend = null!;

    public async Task InitializeAsync() => _backend = await BackendFixture.StartAsync();

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Fact]
    public async Task HttpProtobufExporter_SpansAreStoredAndQueryable()
    {
        var traceId = ExportWithSdk(OtlpExportProtocol.HttpProtobuf, new Uri(_backend.Server.Address, "/v1/traces"), "header=x-public-key");

        var trace = await ReadTraceAsync(traceId);

        AssertTwoSpans(trace);
        Assert.Equal(2, _backend.Server.Metrics.IngestRequests("http", 200).Value); // the simple processor exports each span on its own
    }

    [Fact]
    public async Task GrpcExporter_SpansAreStoredAndQueryable()
    {
        var traceId = ExportWithSdk(OtlpExportProtocol.Grpc, _backend.Server.GrpcAddress!, "header=authorization");

        var trace = await ReadTraceAsync(traceId);

        AssertTwoSpans(trace);
        Assert.Equal(2, _backend.Server.Metrics.IngestRequests("grpc", 0).Value);
    }

    [Fact]
    public async Task GrpcExporter_WithAnUnknownKey_StoresNothing()
    {
        var traceId = ExportWithSdk(OtlpExportProtocol.Grpc, _backend.Server.GrpcAddress!, "header=x-public-key", key: "sp_unknown000000_secretsecretsecret");

        using var response = await _backend.GetAsync("/api/traces/" + traceId, _backend.AcmeKey);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.True(_backend.Server.Metrics.IngestRequests("grpc", 16).Value >= 1);
    }

    private string ExportWithSdk(OtlpExportProtocol protocol, Uri endpoint, string how, string? key = null)
    {
        key ??= _backend.AcmeKey;
        using var source = new ActivitySource("sp.tests." + Guid.NewGuid().ToString("N"));
        using var provider = Sdk.CreateTracerProviderBuilder()
            .AddSource(source.Name)
            .SetSampler(new AlwaysOnSampler())
            .ConfigureResource(r => r.AddService("checkout"))
            .AddOtlpExporter(o =>
            {
                o.Protocol = protocol;
                o.Endpoint = endpoint;
                o.ExportProcessorType = ExportProcessorType.Simple;
                o.Headers = how == "header=authorization" ? "authorization=Bearer " + key : "x-public-key=" + key;
            })
            .Build();

        string traceId;
        using (var parent = source.StartActivity("GET /api/orders", ActivityKind.Server)!)
        {
            parent.SetTag("order.count", 3);
            traceId = parent.TraceId.ToHexString();
            using var child = source.StartActivity("SELECT orders", ActivityKind.Client)!;
            child.SetTag("db.system", "sqlite");
            child.SetStatus(ActivityStatusCode.Error, "disk full");
        }

        Assert.True(provider.ForceFlush(10_000));
        return traceId;
    }

    private async Task<JsonElement> ReadTraceAsync(string traceId)
    {
        using var response = await _backend.GetAsync("/api/traces/" + traceId, _backend.AcmeKey);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private static void AssertTwoSpans(JsonElement trace)
    {
        var spans = trace.GetProperty("spans").EnumerateArray().Select(r => r.GetProperty("span")).ToList();
        Assert.Equal(2, spans.Count);
        var parent = spans.Single(s => s.GetProperty("name").GetString() == "GET /api/orders");
        var child = spans.Single(s => s.GetProperty("name").GetString() == "SELECT orders");
        Assert.Equal("checkout", parent.GetProperty("serviceName").GetString());
        Assert.False(parent.GetProperty("isExchange").GetBoolean());
        Assert.Equal(2, parent.GetProperty("kind").GetInt32()); // SERVER
        Assert.Equal(parent.GetProperty("spanId").GetString(), child.GetProperty("parentSpanId").GetString());
        Assert.True(child.GetProperty("isError").GetBoolean());
        Assert.Equal([parent.GetProperty("spanId").GetString()!], trace.GetProperty("rootSpanIds").EnumerateArray().Select(e => e.GetString()!));
    }
}
