using System.Text.Json.Nodes;

namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// What a viewer (the Trace View, the API, replay's comparison) shows for one captured gRPC
/// message: its proto3 JSON when a descriptor set knows the method, else the schema-less field
/// list, else the bytes.
/// </summary>
public static class GrpcMessageView
{
    /// <summary>Builds the view of one message of a call.</summary>
    /// <param name="descriptors">The configured descriptor sets (<see cref="GrpcDescriptorSet.Empty"/> when none).</param>
    /// <param name="path">The call's request path, <c>/package.Service/Method</c>.</param>
    /// <param name="request">True for a request message, false for a response message.</param>
    /// <param name="message">The captured message.</param>
    /// <param name="budget">What decoding may cost, shared by every message of one view; null for no bound (trusted input only).</param>
    /// <returns>
    /// <c>{"index","offset_ms","size","compressed","truncated", and one of "json" (with "type"), "fields" or "base64"}</c>,
    /// with <c>"budget_exceeded": true</c> when the bytes are shown because decoding them would have passed <paramref name="budget"/>.
    /// A truncated or still-compressed message is never decoded: half a message would mislead.
    /// </returns>
    public static JsonObject Render(GrpcDescriptorSet descriptors, string? path, bool request, GrpcMessage message, ProtobufDecodeBudget? budget = null)
    {
        ArgumentNullException.ThrowIfNull(descriptors);
        ArgumentNullException.ThrowIfNull(message);
        var view = new JsonObject
        {
            ["index"] = message.Index,
            ["offset_ms"] = Math.Round(message.Offset.TotalMilliseconds, 3),
            ["size"] = message.WireLength,
            ["compressed"] = message.Compressed,
            ["truncated"] = message.Truncated,
        };

        var payload = message.Payload.Span;
        var readable = !message.Truncated && (!message.Compressed || message.Decoded);
        var method = path is null ? null : descriptors.FindMethod(path);
        var type = method is null ? null : request ? method.InputType : method.OutputType;
        if (readable && type is not null && DescribedProtobuf.TryDecode(payload, type, descriptors.FindMessage, budget) is { } json)
        {
            view["type"] = type.FullName;
            view["json"] = json;
        }
        else if (readable && budget?.Exhausted != true && SchemalessProtobuf.TryDecode(payload, budget) is { } fields)
        {
            view["fields"] = fields;
        }
        else
        {
            view["base64"] = Convert.ToBase64String(payload);
            if (readable && budget?.Exhausted == true)
            {
                view["budget_exceeded"] = true;
            }
        }

        return view;
    }
}
