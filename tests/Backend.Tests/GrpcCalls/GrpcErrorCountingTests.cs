using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Google.Protobuf;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Otlp;
using SpIstio.Core.Tests.GrpcMessages.Generated;

namespace SpIstio.Backend.Tests.GrpcCalls;

/// <summary>
/// A gRPC call answers HTTP 200 whatever happened; its status decides whether it counts as an error
/// (INTERNAL), a client error (NOT_FOUND) or neither (OK), in the trace filters and the endpoints,
/// as google/rpc/code.proto's HTTP mapping has it.
/// </summary>
public sealed class GrpcErrorCountingTests : IAsyncLifetime
{
    private readonly ActivityTraceId _internal = ActivityTraceId.CreateRandom();
    private readonly ActivityTraceId _notFound = ActivityTraceId.CreateRandom();
    private readonly ActivityTraceId _ok = ActivityTraceId.CreateRandom();
    private BackendFixture _backend = null!;

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync();
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-3);
        var session = "s-grpc-errors-" + Guid.NewGuid().ToString("N")[..8];
        string request = GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderRequest { OrderId = "ord-1" }), 0.4));
        var calls = new[]
        {
            GrpcTestCalls.Call(_internal, session, t0, 13, "database gone", request, GrpcTestCalls.Messages()),
            GrpcTestCalls.Call(_notFound, session, t0.AddMilliseconds(20), 5, "no such order", request, GrpcTestCalls.Messages()),
            GrpcTestCalls.Call(_ok, session, t0.AddMilliseconds(40), 0, null, request,
                GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderReply { OrderId = "ord-1", TotalCents = 990 }), 3))),
        };
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, ExchangeSpanMapper.ToExportRequest(calls, null, "1").ToByteArray(), "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Theory]
    [InlineData("error", "internal")]
    [InlineData("client_error", "notFound")]
    [InlineData("ok", "ok")]
    public async Task TraceStatusFilter_JudgesAGrpcCallByItsStatus(string status, string expected)
    {
        string from = DateTimeOffset.UtcNow.AddHours(-1).ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var page = await GetJsonAsync("/api/traces?service=orders&status=" + status + "&from=" + from);

        var found = page.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("traceId").GetString()).ToHashSet();
        var byName = new Dictionary<string, string> { ["internal"] = _internal.ToHexString(), ["notFound"] = _notFound.ToHexString(), ["ok"] = _ok.ToHexString() };
        Assert.Equal([byName[expected]], found.Intersect(byName.Values));
    }

    [Fact]
    public async Task Endpoints_CountAnInternalStatusAsAnError_AndNotFoundAsAClientError()
    {
        string from = DateTimeOffset.UtcNow.AddHours(-1).ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var page = await GetJsonAsync("/api/endpoints?service=orders&from=" + from);

        var endpoint = Assert.Single(page.RootElement.GetProperty("items").EnumerateArray());
        Assert.Equal(3, endpoint.GetProperty("count").GetInt64());
        Assert.Equal(1, endpoint.GetProperty("errors").GetInt64());
        Assert.Equal(1, endpoint.GetProperty("clientErrors").GetInt64());
    }

    [Fact]
    public async Task HarImport_OfAnExportedGrpcCall_IsRefused_NamingTheEntry_AndStoresNoMock()
    {
        using var export = await _backend.GetAsync("/api/traces/" + _ok.ToHexString() + "/har", _backend.AcmeKey);
        Assert.Equal(HttpStatusCode.OK, export.StatusCode);
        var har = await export.Content.ReadAsByteArrayAsync();
        var admin = (await SpIstio.Backend.Auth.KeyAdministration.CreateKeyAsync(
            _backend.Store, "acme", SpIstio.Backend.Storage.KeyScope.Admin | SpIstio.Backend.Storage.KeyScope.Read, null, TimeProvider.System, CancellationToken.None)).Key;

        using var import = await _backend.PostAsync("/api/mocks/har", admin, har, "application/json");

        // Its bodies are the decoded messages (JSON), not the frames and trailers a gRPC client reads.
        var problem = await import.Content.ReadAsStringAsync();
        Assert.True(import.StatusCode == HttpStatusCode.BadRequest, problem);
        var detail = JsonDocument.Parse(problem).RootElement.GetProperty("detail").GetString();
        Assert.Contains("entry 0 (POST /sp.test.grpc.Orders/Get) is a gRPC call", detail, StringComparison.Ordinal);
        Assert.Contains("/api/mocks/from-span/", detail, StringComparison.Ordinal);
        using var mocks = await _backend.GetAsync("/api/mocks", admin);
        Assert.Equal(HttpStatusCode.OK, mocks.StatusCode);
        Assert.Equal(0, JsonDocument.Parse(await mocks.Content.ReadAsStringAsync()).RootElement.GetProperty("items").GetArrayLength());
    }

    private async Task<JsonDocument> GetJsonAsync(string path)
    {
        using var response = await _backend.GetAsync(path, _backend.AcmeKey);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, path + " answered " + response.StatusCode + ": " + text);
        return JsonDocument.Parse(text);
    }
}
