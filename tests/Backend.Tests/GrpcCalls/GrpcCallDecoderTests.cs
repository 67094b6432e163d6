using System.Text.Json.Nodes;
using Google.Protobuf;
using SpIstio.Backend.GrpcCalls;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Tests.GrpcMessages.Generated;

namespace SpIstio.Backend.Tests.GrpcCalls;

/// <summary>
/// The backend's decode of captured gRPC calls, with the descriptor set protoc made from the test
/// proto (field names) and without one (schema-less), bounded by the decode budget.
/// </summary>
public sealed class GrpcCallDecoderTests
{
    private static readonly GrpcDescriptorSet _descriptors = GrpcDescriptorFiles.Load([GrpcTestCalls.DescriptorSetPath]).Set!;

    [Fact]
    public void Decode_WithTheDescriptorSet_ShowsFieldNamesAndTypes_InBothDirections()
    {
        var attributes = Attributes(5, "order ord-1 not found",
            GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderRequest { OrderId = "ord-1" }), 0.5)),
            GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderReply { OrderId = "ord-1", TotalCents = 1234 }), 7.25)));

        var call = new GrpcCallDecoder(_descriptors).Decode(attributes, "/sp.test.grpc.Orders/Get")!;

        Assert.Equal(("sp.test.grpc.Orders", "Get"), (call.Service, call.Method));
        Assert.Equal(5, call.StatusCode);
        Assert.Equal("NOT_FOUND", call.StatusName);
        Assert.Equal("order ord-1 not found", call.StatusMessage);
        Assert.True(call.Described);
        var request = Assert.Single(call.Request!.Messages);
        Assert.Equal("sp.test.grpc.OrderRequest", request.Type);
        Assert.Equal("""{"orderId":"ord-1"}""", request.Json!.ToJsonString());
        Assert.Equal(0.5, request.OffsetMs);
        var response = Assert.Single(call.Response!.Messages);
        Assert.Equal("sp.test.grpc.OrderReply", response.Type);
        // proto3 JSON: int64 as a string, as Google.Protobuf's JsonFormatter writes it.
        Assert.Equal(JsonNode.Parse(JsonFormatter.Default.Format(new OrderReply { OrderId = "ord-1", TotalCents = 1234 }))!.ToJsonString(), response.Json!.ToJsonString());
        Assert.Equal(7.25, response.OffsetMs);
        Assert.Null(call.Note);
    }

    [Fact]
    public void Decode_WithoutDescriptors_ShowsTheSchemalessView()
    {
        var attributes = Attributes(0, null, GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderRequest { OrderId = "ord-1" }), 0)), null);

        var call = GrpcCallDecoder.Schemaless.Decode(attributes, "/sp.test.grpc.Orders/Get")!;

        Assert.False(call.Described);
        Assert.Equal("OK", call.StatusName);
        var message = Assert.Single(call.Request!.Messages);
        Assert.Null(message.Json);
        Assert.Equal("""[{"field":1,"wire":"len","string":"ord-1"}]""", message.Fields!.ToJsonString());
        Assert.Null(call.Response);
    }

    [Fact]
    public void Decode_AMessageListStoredAsAnObject_ShowsTheSameMessagesAsItsText()
    {
        // A backend from before agents sent the lists structured stored such a list as a JSON object
        // (the types the exporter gave); this one stores the text, and reads either.
        var text = Attributes(0, null,
            GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderRequest { OrderId = "ord-1" }), 0.5)),
            GrpcTestCalls.Messages((GrpcTestCalls.Frame(new OrderReply { OrderId = "ord-1", TotalCents = 1234 }), 7.25)));
        var structured = JsonNode.Parse(text.ToJsonString())!.AsObject();
        foreach (var key in (string[])[GrpcSpanAttributes.RequestMessages, GrpcSpanAttributes.ResponseMessages])
        {
            structured[key] = JsonNode.Parse(structured[key]!.GetValue<string>());
        }

        var fromText = new GrpcCallDecoder(_descriptors).Decode(text, "/sp.test.grpc.Orders/Get")!;
        var fromObject = new GrpcCallDecoder(_descriptors).Decode(structured, "/sp.test.grpc.Orders/Get")!;

        Assert.Equal("""{"orderId":"ord-1"}""", Assert.Single(fromObject.Request!.Messages).Json!.ToJsonString());
        Assert.Equal(7.25, Assert.Single(fromObject.Response!.Messages).OffsetMs);
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(fromText), System.Text.Json.JsonSerializer.Serialize(fromObject));
    }

    [Theory]
    [InlineData("14")]
    [InlineData("int")]
    public void Decode_StatusCode_AsStringOrIntAttribute_WithTheNameDerivedWhenAbsent(string form)
    {
        var attributes = new JsonObject
        {
            [GrpcSpanAttributes.RpcSystem] = "grpc",
            [GrpcSpanAttributes.RpcStatusCode] = form == "int" ? JsonValue.Create(14) : JsonValue.Create(form),
        };

        var call = GrpcCallDecoder.Schemaless.Decode(attributes, "/sp.test.grpc.Orders/Watch")!;

        Assert.Equal(14, call.StatusCode);
        Assert.Equal("UNAVAILABLE", call.StatusName);
        Assert.Equal(("sp.test.grpc.Orders", "Watch"), (call.Service, call.Method));
    }

    [Fact]
    public void Decode_NotAGrpcSpan_IsNull() =>
        Assert.Null(GrpcCallDecoder.Schemaless.Decode(new JsonObject { ["http.route"] = "/x" }, "/x"));

    [Fact]
    public void Decode_MoreFieldsThanTheBudget_ShowsTheRestAsBytes_AndSaysWhy()
    {
        // 10 repeated names: 11 fields per message; a budget of 15 decodes the first message only.
        var names = new Everything();
        for (var i = 0; i < 10; i++)
        {
            names.Names.Add("n" + i);
        }

        var attributes = Attributes(0, null, GrpcTestCalls.Messages((GrpcTestCalls.Frame(names), 0), (GrpcTestCalls.Frame(names), 1)), null);
        attributes[GrpcSpanAttributes.RpcMethod] = "Get";
        var decoder = new GrpcCallDecoder(GrpcDescriptorSet.Empty, new GrpcDecodeLimits(32, 15, 1024 * 1024));

        var call = decoder.Decode(attributes, "/sp.test.grpc.Orders/Get")!;

        Assert.Equal(2, call.Request!.Messages.Count);
        Assert.NotNull(call.Request.Messages[0].Fields);
        Assert.True(call.Request.Messages[1].BudgetExceeded);
        Assert.Equal(names.ToByteArray(), Convert.FromBase64String(call.Request.Messages[1].Base64!));
        Assert.Contains("1 message(s) shown as bytes", call.Note, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_AMessageLargerThanTheLimit_IsShownAsBytes_AndSaysWhy()
    {
        var small = new OrderRequest { OrderId = "a" };
        var large = new OrderRequest { OrderId = new string('b', 64) };
        var attributes = Attributes(0, null, GrpcTestCalls.Messages((GrpcTestCalls.Frame(small), 0), (GrpcTestCalls.Frame(large), 1)), null);
        var decoder = new GrpcCallDecoder(_descriptors, new GrpcDecodeLimits(32, 100_000, 32));

        var call = decoder.Decode(attributes, "/sp.test.grpc.Orders/Get")!;

        Assert.Equal("""{"orderId":"a"}""", call.Request!.Messages[0].Json!.ToJsonString());
        Assert.True(call.Request.Messages[1].BudgetExceeded);
        Assert.Equal(large.ToByteArray(), Convert.FromBase64String(call.Request.Messages[1].Base64!));
        Assert.Contains("1 message(s) shown as bytes", call.Note, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_NestedDeeperThanTheBudget_IsNotDecoded()
    {
        // Each level a message in field 1: 40 levels deep, past a depth of 8.
        var bytes = new byte[] { 0x08, 0x01 };
        for (var i = 0; i < 40; i++)
        {
            bytes = [0x0A, (byte)bytes.Length, .. bytes];
            if (bytes.Length > 120)
            {
                break;
            }
        }

        var frame = new byte[5 + bytes.Length];
        frame[4] = (byte)bytes.Length;
        bytes.CopyTo(frame, 5);
        var attributes = Attributes(0, null, GrpcTestCalls.Messages((frame, 0)), null);
        var decoder = new GrpcCallDecoder(GrpcDescriptorSet.Empty, new GrpcDecodeLimits(8, 100_000, 1024 * 1024));

        var message = Assert.Single(decoder.Decode(attributes, "/sp.test.grpc.Orders/Get")!.Request!.Messages);

        // The schema-less view stops guessing at the depth: the innermost levels stay bytes.
        var depth = 0;
        for (var node = message.Fields; node?[0]?["message"] is { } inner; node = inner)
        {
            depth++;
        }

        Assert.Equal(8, depth);
    }

    [Fact]
    public void Decode_ATruncatedMessage_IsShownAsBytes_Flagged()
    {
        var reply = new OrderReply { OrderId = new string('x', 100), TotalCents = 1 };
        var attributes = Attributes(0, null, GrpcTestCalls.Messages(new GrpcCaptureLimits(16, 10, 1024), (GrpcTestCalls.Frame(reply), 0)), null);

        var call = new GrpcCallDecoder(_descriptors).Decode(attributes, "/sp.test.grpc.Orders/Get")!;

        var message = Assert.Single(call.Request!.Messages);
        Assert.True(message.Truncated);
        Assert.True(call.Request.Truncated);
        Assert.Null(message.Json);
        Assert.Equal(16, Convert.FromBase64String(message.Base64!).Length);
        Assert.Equal(reply.CalculateSize(), message.Size);
    }

    [Fact]
    public void Decode_AMessageListCutAtIngest_SaysSo()
    {
        var attributes = Attributes(0, null, "{\"count\":1,\"truncated\":false,\"messages\":[{\"index\":0,\"off", null);
        attributes["sp.attributes.truncated"] = GrpcSpanAttributes.RequestMessages;

        var call = GrpcCallDecoder.Schemaless.Decode(attributes, "/sp.test.grpc.Orders/Get")!;

        Assert.Contains("--max-attribute-bytes", call.Request!.Unreadable, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_StatusDetails_AreDecoded_ByTypeWhenTheSetKnowsIt()
    {
        var reply = new OrderReply { OrderId = "ord-9", TotalCents = 5 };
        var details = new GrpcStatusDetails(9, "stale", [new GrpcStatusDetail("type.googleapis.com/sp.test.grpc.OrderReply", reply.ToByteArray()), new GrpcStatusDetail("type.googleapis.com/acme.Unknown", new OrderRequest { OrderId = "z" }.ToByteArray())]);
        var attributes = Attributes(9, "stale", GrpcTestCalls.Messages(), null);
        attributes[GrpcSpanAttributes.StatusDetails] = GrpcSpanAttributes.EncodeStatusDetails(details);

        var call = new GrpcCallDecoder(_descriptors).Decode(attributes, "/sp.test.grpc.Orders/Get")!;

        Assert.Equal("FAILED_PRECONDITION", call.StatusName);
        Assert.Equal(2, call.StatusDetails.Count);
        Assert.Equal("""{"orderId":"ord-9","totalCents":"5"}""", call.StatusDetails[0].Json!.ToJsonString());
        Assert.Equal("""[{"field":1,"wire":"len","string":"z"}]""", call.StatusDetails[1].Fields!.ToJsonString());
    }

    private static JsonObject Attributes(int status, string? message, string requestMessages, string? responseMessages)
    {
        var attributes = new JsonObject
        {
            [GrpcSpanAttributes.RpcSystem] = "grpc",
            [GrpcSpanAttributes.RpcService] = "sp.test.grpc.Orders",
            [GrpcSpanAttributes.RpcMethod] = "Get",
            [GrpcSpanAttributes.RpcStatusCode] = status,
            [GrpcSpanAttributes.StatusName] = GrpcCallStatus.NameOf(status),
            [GrpcSpanAttributes.RequestMessages] = requestMessages,
        };
        if (message is not null)
        {
            attributes[GrpcSpanAttributes.StatusMessage] = message;
        }

        if (responseMessages is not null)
        {
            attributes[GrpcSpanAttributes.ResponseMessages] = responseMessages;
        }

        return attributes;
    }
}
