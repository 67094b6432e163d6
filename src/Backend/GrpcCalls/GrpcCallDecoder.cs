using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SpIstio.Core.GrpcMessages;

namespace SpIstio.Backend.GrpcCalls;

/// <summary>
/// What decoding one call's messages may cost. Captured bytes are untrusted: a few bytes can encode
/// thousands of tiny fields or deeply nested messages, so each view (one call, both directions)
/// gets a field budget and a depth, and a message larger than <see cref="MaxMessageBytes"/> is
/// shown as bytes.
/// </summary>
/// <param name="MaxDepth">Nested messages decoded this deep (protobuf's own parsers stop at 100; real messages rarely pass 10).</param>
/// <param name="MaxFields">Fields (and packed elements) decoded per call view, over all its messages: about 30 MB of JSON nodes at worst.</param>
/// <param name="MaxMessageBytes">Bytes of one message decoded; the agent keeps 64 KiB per message by default.</param>
public sealed record GrpcDecodeLimits(int MaxDepth, long MaxFields, int MaxMessageBytes)
{
    /// <summary>Depth 32, 100,000 fields, 1 MiB per message (the backend's default attribute cap).</summary>
    public static GrpcDecodeLimits Default { get; } = new(32, 100_000, 1024 * 1024);
}

/// <summary>
/// Turns a stored gRPC span's attributes (<see cref="GrpcSpanAttributes"/>) into a <see cref="GrpcCallDto"/>:
/// status, decoded status details and both message streams, decoded with the configured descriptor
/// sets (field names) or schema-less. Used by the API, the Trace View and HAR; decoding happens here,
/// where captures are viewed, never on the data path.
/// </summary>
public sealed class GrpcCallDecoder
{
    /// <summary>Creates a decoder.</summary>
    public GrpcCallDecoder(GrpcDescriptorSet descriptors, GrpcDecodeLimits? limits = null)
    {
        Descriptors = descriptors ?? throw new ArgumentNullException(nameof(descriptors));
        Limits = limits ?? GrpcDecodeLimits.Default;
    }

    /// <summary>A decoder without descriptor sets: every message schema-less.</summary>
    public static GrpcCallDecoder Schemaless { get; } = new(GrpcDescriptorSet.Empty);

    /// <summary>The configured descriptor sets.</summary>
    public GrpcDescriptorSet Descriptors { get; }

    /// <summary>The decode budget of one call view.</summary>
    public GrpcDecodeLimits Limits { get; }

    /// <summary>True when the attributes are those of a gRPC call (<c>rpc.system = grpc</c>).</summary>
    public static bool IsGrpc(JsonObject attributes)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        return attributes[GrpcSpanAttributes.RpcSystem] is JsonValue system
            && system.TryGetValue<string>(out var value) && string.Equals(value, "grpc", StringComparison.Ordinal);
    }

    /// <summary>
    /// The status code of <c>rpc.grpc.status_code</c>, an int attribute or (from older agents) its
    /// decimal string; null when absent or not a number.
    /// </summary>
    public static int? StatusCodeOf(JsonObject attributes)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        if (attributes[GrpcSpanAttributes.RpcStatusCode] is not JsonValue value)
        {
            return null;
        }

        return value.GetValueKind() switch
        {
            // An attribute parsed from storage or built in code: the number's text reads either way.
            JsonValueKind.Number when int.TryParse(value.ToJsonString(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) => n,
            JsonValueKind.String when int.TryParse(value.GetValue<string>(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) => n,
            _ => null,
        };
    }

    /// <summary>The call, or null when the attributes are not a gRPC call's.</summary>
    /// <param name="attributes">The span's attributes (<c>AttributesJson</c> parsed).</param>
    /// <param name="path">The span's request path, <c>/package.Service/Method</c>.</param>
    /// <param name="budget">A budget shared with other calls (a HAR of many calls); null: this call's own, from <see cref="Limits"/>.</param>
    public GrpcCallDto? Decode(JsonObject attributes, string? path, ProtobufDecodeBudget? budget = null)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        if (!IsGrpc(attributes))
        {
            return null;
        }

        var parsed = GrpcSpanAttributes.ParsePath(path);
        var service = Text(attributes, GrpcSpanAttributes.RpcService) ?? parsed?.Service ?? string.Empty;
        var method = Text(attributes, GrpcSpanAttributes.RpcMethod) ?? parsed?.Method ?? string.Empty;
        var callPath = "/" + service + "/" + method;
        var code = StatusCodeOf(attributes);
        var name = code is null ? null : Text(attributes, GrpcSpanAttributes.StatusName) ?? GrpcCallStatus.NameOf(code.Value);
        budget ??= NewBudget();
        var cut = Text(attributes, "sp.attributes.truncated")?.Split(',') ?? [];
        var request = Messages(attributes, GrpcSpanAttributes.RequestMessages, callPath, request: true, budget, cut);
        var response = Messages(attributes, GrpcSpanAttributes.ResponseMessages, callPath, request: false, budget, cut);
        var details = Details(Text(attributes, GrpcSpanAttributes.StatusDetails), budget);
        var notDecoded = Count(request, m => m.BudgetExceeded) + Count(response, m => m.BudgetExceeded);
        string? note = null;
        if (notDecoded > 0)
        {
            note = string.Create(CultureInfo.InvariantCulture,
                $"{notDecoded} message(s) shown as bytes: one view decodes at most {Limits.MaxFields:N0} fields, {Limits.MaxDepth} levels deep, and messages up to {Limits.MaxMessageBytes / 1024:N0} KiB.");
        }

        return new GrpcCallDto(service, method, code, name, Text(attributes, GrpcSpanAttributes.StatusMessage), details, request, response)
        {
            Described = Descriptors.FindMethod(callPath) is not null,
            Note = note,
        };
    }

    /// <summary>A fresh budget of <see cref="Limits"/>: one view's worth of decoding.</summary>
    public ProtobufDecodeBudget NewBudget() => new(Limits.MaxDepth, Limits.MaxFields);

    private GrpcMessagesDto? Messages(JsonObject attributes, string key, string path, bool request, ProtobufDecodeBudget budget, string[] cut)
    {
        var json = Text(attributes, key);
        if (json is null)
        {
            return null;
        }

        var list = GrpcSpanAttributes.DecodeMessages(json);
        if (list is null)
        {
            return new GrpcMessagesDto(0, true, [], cut.Contains(key, StringComparer.Ordinal)
                ? "The message list was longer than the backend's --max-attribute-bytes and was cut at ingest; raise it to see these messages."
                : "The message list is not in the form the agent writes.");
        }

        var messages = new List<GrpcMessageDto>(list.Messages.Count);
        foreach (var message in list.Messages)
        {
            var tooLarge = message.Payload.Length > Limits.MaxMessageBytes;
            var view = tooLarge
                ? new JsonObject { ["base64"] = Convert.ToBase64String(message.Payload.Span) }
                : GrpcMessageView.Render(Descriptors, path, request, message, budget);
            messages.Add(new GrpcMessageDto(message.Index, Math.Round(message.Offset.TotalMilliseconds, 3), message.WireLength, message.Compressed, message.Truncated)
            {
                Type = view["type"]?.GetValue<string>(),
                Json = Detach(view, "json"),
                Fields = Detach(view, "fields"),
                Base64 = view["base64"]?.GetValue<string>(),
                BudgetExceeded = tooLarge || view["budget_exceeded"] is not null,
            });
        }

        return new GrpcMessagesDto(list.Count, list.Truncated, messages);
    }

    private List<GrpcStatusDetailDto> Details(string? json, ProtobufDecodeBudget budget)
    {
        var result = new List<GrpcStatusDetailDto>();
        if (json is null)
        {
            return result;
        }

        try
        {
            using var document = JsonDocument.Parse(json);
            if (!document.RootElement.TryGetProperty("details", out var details) || details.ValueKind != JsonValueKind.Array)
            {
                return result;
            }

            foreach (var detail in details.EnumerateArray())
            {
                var typeUrl = detail.TryGetProperty("type_url", out var t) ? t.GetString() ?? string.Empty : string.Empty;
                var bytes = detail.TryGetProperty("value", out var v) && v.ValueKind == JsonValueKind.String ? v.GetBytesFromBase64() : [];
                var type = Descriptors.FindMessage(typeUrl[(typeUrl.LastIndexOf('/') + 1)..]);
                if (bytes.Length <= Limits.MaxMessageBytes && type is not null
                    && DescribedProtobuf.TryDecode(bytes, type, Descriptors.FindMessage, budget) is { } described)
                {
                    result.Add(new GrpcStatusDetailDto(typeUrl) { Json = described });
                }
                else if (bytes.Length <= Limits.MaxMessageBytes && !budget.Exhausted && SchemalessProtobuf.TryDecode(bytes, budget) is { } fields)
                {
                    result.Add(new GrpcStatusDetailDto(typeUrl) { Fields = fields });
                }
                else
                {
                    result.Add(new GrpcStatusDetailDto(typeUrl) { Base64 = Convert.ToBase64String(bytes) });
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException)
        {
            // Details the agent did not write in its own form: the raw attribute stays among the attributes.
        }

        return result;
    }

    private static JsonNode? Detach(JsonObject view, string key) => view.Remove(key, out var node) ? node : null;

    private static int Count(GrpcMessagesDto? messages, Func<GrpcMessageDto, bool> predicate) =>
        messages is null ? 0 : messages.Messages.Count(predicate);

    // A message list is stored as its JSON text; a backend from before the agents sent it structured
    // (GrpcSpanAttributes.ToAnyValue) stored what it was sent as an object with the same fields.
    private static string? Text(JsonObject attributes, string key) => attributes[key] switch
    {
        JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
        JsonObject list when GrpcSpanAttributes.IsMessageList(key) => list.ToJsonString(),
        _ => null,
    };
}
