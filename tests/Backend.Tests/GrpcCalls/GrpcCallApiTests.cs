using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Google.Protobuf;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Otlp;
using SpIstio.Core.Otlp.Proto.Common;
using SpIstio.Core.Tests.GrpcMessages.Generated;

namespace SpIstio.Backend.Tests.GrpcCalls;

/// <summary>
/// gRPC calls through the real OTLP ingest into a backend started with the descriptor set protoc
/// made: the span API answers the decoded call, and lists carry the status (a stored column).
/// </summary>
public sealed class GrpcCallApiTests : IAsyncLifetime
{
    private readonly ActivityTraceId _trace = ActivityTraceId.CreateRandom();
    private readonly string _session = "s-grpc-" + Guid.NewGuid().ToString("N")[..8];
    private BackendFixture _backend = null!;
    private string _notFound = "";
    private string _intStatus = "";

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync(o => o with { GrpcDescriptorSets = [GrpcTestCalls.DescriptorSetPath] });
        var t0 = DateTimeOffset.UtcNow.AddMinutes(-3);
        var notFound = GrpcTestCalls.Call(_trace, _session, t0, 5, "order ord-1 not found",
            GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderRequest { OrderId = "ord-1" }), 0.4)), GrpcTestCalls.Messages());
        var ok = GrpcTestCalls.Call(_trace, _session, t0.AddMilliseconds(20), 0, null,
            GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderRequest { OrderId = "ord-2" }), 0.2)),
            GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderReply { OrderId = "ord-2", TotalCents = 990 }), 3)));
        _notFound = notFound.SpanId.ToHexString();
        _intStatus = ok.SpanId.ToHexString();
        var request = ExchangeSpanMapper.ToExportRequest([notFound, ok], null, "1");
        // The second call's code as an int attribute, as the agent writes it from this round on.
        var attribute = request.ResourceSpans.SelectMany(r => r.ScopeSpans).SelectMany(s => s.Spans)
            .Single(s => Convert.ToHexStringLower(s.SpanId.Span) == _intStatus)
            .Attributes.Single(a => a.Key == GrpcSpanAttributes.RpcStatusCode);
        attribute.Value = new AnyValue { IntValue = 0 };
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, request.ToByteArray(), "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Fact]
    public async Task SpanDetail_OfAGrpcCall_AnswersTheDecodedCall_WithFieldNames()
    {
        using var detail = await GetJsonAsync($"/api/spans/{_trace.ToHexString()}/{_notFound}");

        var grpc = detail.RootElement.GetProperty("grpc");
        Assert.Equal("sp.test.grpc.Orders", grpc.GetProperty("service").GetString());
        Assert.Equal("Get", grpc.GetProperty("method").GetString());
        Assert.Equal(5, grpc.GetProperty("statusCode").GetInt32());
        Assert.Equal("NOT_FOUND", grpc.GetProperty("statusName").GetString());
        Assert.Equal("order ord-1 not found", grpc.GetProperty("statusMessage").GetString());
        Assert.True(grpc.GetProperty("described").GetBoolean());
        var message = Assert.Single(grpc.GetProperty("request").GetProperty("messages").EnumerateArray());
        Assert.Equal("sp.test.grpc.OrderRequest", message.GetProperty("type").GetString());
        Assert.Equal("ord-1", message.GetProperty("json").GetProperty("orderId").GetString());
        Assert.Equal(0, grpc.GetProperty("response").GetProperty("count").GetInt32());
    }

    [Fact]
    public async Task SpanDetail_OfACallWhoseBodiesWentAsTheirListsFrames_AnswersTheBodiesAsCaptured()
    {
        // As the agent exports a call captured whole: the framed bodies are the lists' frames, so
        // the span carries each message once (body encoding grpc-frames) and ingest rebuilds the bodies.
        var requestFrame = GrpcTestCalls.Frame(new OrderRequest { OrderId = "ord-3" });
        var replyFrames = GrpcTestCalls.Frame(new OrderReply { OrderId = "ord-3", TotalCents = 5 }).Concat(GrpcTestCalls.Frame(new OrderReply { OrderId = "ord-4" })).ToArray();
        var call = GrpcTestCalls.Call(_trace, _session, DateTimeOffset.UtcNow.AddMinutes(-2), 0, null, "", null);
        call.Attributes.Remove(GrpcSpanAttributes.RequestMessages);
        call.RequestBody = new Core.Model.CapturedBody(requestFrame, requestFrame.Length, false, Core.Model.BodyKind.Binary, "application/grpc");
        call.ResponseBody = new Core.Model.CapturedBody(replyFrames, replyFrames.Length, false, Core.Model.BodyKind.Binary, "application/grpc");
        call.GrpcCall = new GrpcCallMessages(GrpcTestCalls.List(requestFrame), GrpcTestCalls.List(replyFrames));
        await PostSealedWithoutBodyBytesAsync(call);

        using var detail = await GetJsonAsync($"/api/spans/{_trace.ToHexString()}/{call.SpanId.ToHexString()}");
        var root = detail.RootElement;
        Assert.Equal(Convert.ToBase64String(requestFrame), root.GetProperty("requestBody").GetProperty("content").GetString());
        Assert.Equal(Convert.ToBase64String(replyFrames), root.GetProperty("responseBody").GetProperty("content").GetString());
        Assert.Equal("binary", root.GetProperty("responseBody").GetProperty("kind").GetString());
        Assert.Equal(replyFrames.Length, root.GetProperty("responseBody").GetProperty("originalSize").GetInt64());
        Assert.Equal(["ord-3", "ord-4"], root.GetProperty("grpc").GetProperty("response").GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("json").GetProperty("orderId").GetString()));
    }

    [Fact]
    public async Task SpanDetail_OfACallWhoseCutBodiesWentAsTheStartOfTheirListsFrames_AnswersTheBodiesAsCaptured()
    {
        // As the agent exports a call past its limits: each body is cut inside a message the list
        // holds more of, so the span carries the list and the body's length (grpc-frames-prefix).
        var requestFrame = GrpcTestCalls.Frame(new OrderRequest { OrderId = "ord-" + new string('r', 200) });
        var replyFrame = GrpcTestCalls.Frame(new OrderReply { OrderId = "ord-" + new string('p', 200), TotalCents = 7 });
        var limits = GrpcCaptureLimits.Default with { MaxMessageBytes = 64 };
        var call = GrpcTestCalls.Call(_trace, _session, DateTimeOffset.UtcNow.AddMinutes(-2), 0, null, "", null);
        call.Attributes.Remove(GrpcSpanAttributes.RequestMessages);
        call.RequestBody = new Core.Model.CapturedBody(requestFrame[..30], requestFrame.Length, true, Core.Model.BodyKind.Binary, "application/grpc");
        call.ResponseBody = new Core.Model.CapturedBody(replyFrame[..69], replyFrame.Length, true, Core.Model.BodyKind.Binary, "application/grpc");
        call.GrpcCall = new GrpcCallMessages(GrpcTestCalls.List(requestFrame, limits), GrpcTestCalls.List(replyFrame, limits));
        await PostSealedWithoutBodyBytesAsync(call);

        using var detail = await GetJsonAsync($"/api/spans/{_trace.ToHexString()}/{call.SpanId.ToHexString()}");
        var root = detail.RootElement;
        Assert.Equal(Convert.ToBase64String(requestFrame.AsSpan(0, 30)), root.GetProperty("requestBody").GetProperty("content").GetString());
        Assert.Equal(Convert.ToBase64String(replyFrame.AsSpan(0, 69)), root.GetProperty("responseBody").GetProperty("content").GetString());
        Assert.True(root.GetProperty("responseBody").GetProperty("truncated").GetBoolean());
        Assert.Equal(replyFrame.Length, root.GetProperty("responseBody").GetProperty("originalSize").GetInt64());
    }

    [Fact]
    public async Task SpanDetail_OfAnHttpExchange_HasNoGrpcCall()
    {
        var plain = new Core.Model.Exchange
        {
            ServiceName = "web", Method = "GET", Authority = "web", Path = "/health", StatusCode = 200, TraceId = _trace,
            SpanId = ActivitySpanId.CreateRandom(), StartTime = DateTimeOffset.UtcNow.AddMinutes(-1), EndTime = DateTimeOffset.UtcNow.AddMinutes(-1),
        };
        using (var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, ExchangeSpanMapper.ToExportRequest([plain], null, "1").ToByteArray(), "application/x-protobuf"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using var detail = await GetJsonAsync($"/api/spans/{_trace.ToHexString()}/{plain.SpanId.ToHexString()}");

        Assert.Equal(JsonValueKind.Null, detail.RootElement.GetProperty("grpc").ValueKind);
    }

    [Fact]
    public async Task TraceAndSessionLists_CarryTheGrpcStatus_IntOrStringAttribute()
    {
        using var trace = await GetJsonAsync("/api/traces/" + _trace.ToHexString());
        using var session = await GetJsonAsync("/api/sessions/" + _session);

        foreach (var spans in new[] { trace.RootElement.GetProperty("spans").EnumerateArray().Select(r => r.GetProperty("span")), session.RootElement.GetProperty("spans").EnumerateArray() })
        {
            var byId = spans.ToDictionary(s => s.GetProperty("spanId").GetString()!);
            Assert.Equal(5, byId[_notFound].GetProperty("grpcStatus").GetInt32());
            Assert.Equal("NOT_FOUND", byId[_notFound].GetProperty("grpcStatusName").GetString());
            Assert.Equal(0, byId[_intStatus].GetProperty("grpcStatus").GetInt32());
            Assert.Equal("OK", byId[_intStatus].GetProperty("grpcStatusName").GetString());
        }
    }

    [Fact]
    public async Task TraceSearch_RootOfAGrpcTrace_CarriesItsStatus()
    {
        using var page = await GetJsonAsync("/api/traces?service=orders&from=" + DateTimeOffset.UtcNow.AddHours(-1).ToUnixTimeMilliseconds());

        var item = page.RootElement.GetProperty("items").EnumerateArray().Single(i => i.GetProperty("traceId").GetString() == _trace.ToHexString());
        Assert.Equal(5, item.GetProperty("rootGrpcStatus").GetInt32());
        Assert.Equal("NOT_FOUND", item.GetProperty("rootGrpcStatusName").GetString());
    }

    [Fact]
    public async Task Har_OfAGrpcTrace_IsValidHar12_WithDecodedMessagesAndTheCallIn_grpc()
    {
        using var har = await GetJsonAsync("/api/traces/" + _trace.ToHexString() + "/har");

        var errors = SchemaValidation.Errors(SchemaValidation.Load("har-schema/har.json"), har.RootElement);
        Assert.True(errors.Count == 0, string.Join('\n', errors));
        var entries = har.RootElement.GetProperty("log").GetProperty("entries").EnumerateArray().ToList();
        var ok = entries.Single(e => e.GetProperty("_spanId").GetString() == _intStatus);
        Assert.Equal("application/grpc", ok.GetProperty("request").GetProperty("postData").GetProperty("mimeType").GetString());
        using (var sent = JsonDocument.Parse(ok.GetProperty("request").GetProperty("postData").GetProperty("text").GetString()!))
        {
            Assert.Equal("ord-2", Assert.Single(sent.RootElement.EnumerateArray()).GetProperty("orderId").GetString());
        }

        var content = ok.GetProperty("response").GetProperty("content");
        Assert.Equal("application/grpc", content.GetProperty("mimeType").GetString());
        using (var received = JsonDocument.Parse(content.GetProperty("text").GetString()!))
        {
            Assert.Equal("990", Assert.Single(received.RootElement.EnumerateArray()).GetProperty("totalCents").GetString());
        }

        var grpc = ok.GetProperty("_grpc");
        Assert.Equal("sp.test.grpc.Orders", grpc.GetProperty("service").GetString());
        Assert.Equal("Get", grpc.GetProperty("method").GetString());
        Assert.Equal("OK", grpc.GetProperty("statusName").GetString());
        Assert.Equal(3, Assert.Single(grpc.GetProperty("response").GetProperty("messages").EnumerateArray()).GetProperty("offsetMs").GetDouble());
        Assert.Contains("not the length-prefixed frames", ok.GetProperty("comment").GetString(), StringComparison.Ordinal);
        var notFound = entries.Single(e => e.GetProperty("_spanId").GetString() == _notFound);
        Assert.Equal("NOT_FOUND", notFound.GetProperty("_grpc").GetProperty("statusName").GetString());
        Assert.Equal("order ord-1 not found", notFound.GetProperty("_grpc").GetProperty("statusMessage").GetString());
    }

    // Seals the call's lists and posts its span as the agent writes it, after checking that neither
    // body went out as bytes of its own (each is a reference to its list's frames).
    private async Task PostSealedWithoutBodyBytesAsync(Core.Model.Exchange call)
    {
        GrpcCallMessages.Seal(call);
        var wire = OtlpSpanWriter.ToByteArray([call], null, "1");
        var sent = Core.Otlp.Proto.Collector.Trace.ExportTraceServiceRequest.Parser.ParseFrom(wire).ResourceSpans[0].ScopeSpans[0].Spans[0];
        Assert.DoesNotContain(sent.Attributes, a => a.Key is OtlpAttributes.RequestBody or OtlpAttributes.ResponseBody);
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, wire, "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private async Task<JsonDocument> GetJsonAsync(string path)
    {
        using var response = await _backend.GetAsync(path, _backend.AcmeKey);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, path + " answered " + response.StatusCode + ": " + text);
        return JsonDocument.Parse(text);
    }
}
