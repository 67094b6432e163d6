using System.Diagnostics;
using System.Net;
using System.Text.Json;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;

namespace SpIstio.Backend.Tests.Ingest;

/// <summary>The agent writes <c>rpc.grpc.status_code</c> as an int attribute (OTel RPC conventions); the backend reads it back.</summary>
public sealed class GrpcStatusAttributeTests : IAsyncLifetime
{
    private BackendFixture _backend = null!;

    public async Task InitializeAsync() => _backend = await BackendFixture.StartAsync();

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Fact]
    public async Task IntStatusCode_FromTheAgentsEncoder_IsStoredAndShownAsANumber()
    {
        var trace = ActivityTraceId.CreateRandom();
        var spanId = ActivitySpanId.CreateRandom();
        var exchange = new Exchange
        {
            Direction = TrafficDirection.Inbound,
            ServiceName = "notes",
            Method = "POST",
            Authority = "notes:50051",
            Path = "/sp.test.Notes/Get",
            StatusCode = 200,
            TraceId = trace,
            SpanId = spanId,
            StartTime = DateTimeOffset.UtcNow.AddSeconds(-3),
            EndTime = DateTimeOffset.UtcNow.AddSeconds(-2),
        };
        exchange.Attributes[GrpcSpanAttributes.RpcSystem] = "grpc";
        exchange.Attributes[GrpcSpanAttributes.RpcStatusCode] = "5";
        exchange.Attributes[GrpcSpanAttributes.StatusName] = "NOT_FOUND";

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, OtlpSpanWriter.ToByteArray([exchange], null, "1.0"), "application/x-protobuf");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var detailResponse = await _backend.GetAsync($"/api/spans/{trace.ToHexString()}/{spanId.ToHexString()}", _backend.AcmeKey);
        Assert.Equal(HttpStatusCode.OK, detailResponse.StatusCode);
        using var detail = JsonDocument.Parse(await detailResponse.Content.ReadAsStreamAsync());
        var attributes = detail.RootElement.GetProperty("attributes");
        // Kept typed: the API answers the number the span carried.
        Assert.Equal(5, attributes.GetProperty(GrpcSpanAttributes.RpcStatusCode).GetInt32());
        Assert.Equal("NOT_FOUND", attributes.GetProperty(GrpcSpanAttributes.StatusName).GetString());
    }
}
