using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json.Nodes;
using SpIstio.Core.GrpcMessages;

namespace SpIstio.Backend.Replay;

/// <summary>
/// Replaying a unary gRPC call (issue 18 §5): it is re-sent over HTTP/2 as recorded (the body is
/// the length-prefixed messages), and its messages are compared field by field. Without the
/// schema, a message is decoded as <c>protoc --decode_raw</c> would (<see cref="SchemalessProtobuf"/>)
/// into an object keyed by field number, so the JSON diff names <c>$.messages[0][2]</c> as it names
/// a JSON field; the status is compared on its own.
/// </summary>
public static class GrpcReplay
{
    /// <summary>True when the recorded request is a gRPC call.</summary>
    public static bool IsGrpc(RecordedExchange recorded)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        foreach (var (name, value) in recorded.RequestHeaders)
        {
            if (string.Equals(name, "content-type", StringComparison.OrdinalIgnoreCase))
            {
                return GrpcSpanAttributes.IsGrpc(value);
            }
        }

        return false;
    }

    /// <summary>
    /// The messages of a gRPC body as comparable JSON: <c>{"messages":[{"1":"SP102","2":42}]}</c>.
    /// A compressed message, or one that is not a well-formed protobuf message, is kept as base64;
    /// a cut-off frame as what arrived.
    /// </summary>
    public static JsonObject Messages(ReadOnlySpan<byte> body)
    {
        var messages = new JsonArray();
        while (body.Length >= 5)
        {
            var compressed = body[0] != 0;
            var length = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(body[1..]), (uint)(body.Length - 5));
            var message = body.Slice(5, length);
            messages.Add(compressed || SchemalessProtobuf.TryDecode(message) is not { } fields
                ? new JsonObject { ["bytes"] = Convert.ToBase64String(message) }
                : ByField(fields));
            body = body[(5 + length)..];
        }

        return new JsonObject { ["messages"] = messages };
    }

    /// <summary>The status name and code of a status field's text (<c>5 (NOT_FOUND)</c>), or <c>(none)</c>.</summary>
    public static string Describe(string? status) =>
        int.TryParse(status, NumberStyles.None, CultureInfo.InvariantCulture, out var code)
            ? code.ToString(CultureInfo.InvariantCulture) + " (" + GrpcCallStatus.NameOf(code) + ")"
            : status ?? "(none)";

    /// <summary>Decode_raw entries as an object keyed by field number; a repeated field becomes an array.</summary>
    private static JsonObject ByField(JsonArray fields)
    {
        var result = new JsonObject();
        foreach (var entry in fields.OfType<JsonObject>())
        {
            var key = entry["field"]!.ToJsonString();
            JsonNode? value = entry["message"] is JsonArray nested ? ByField(nested)
                : (entry["string"] ?? entry["bytes"] ?? entry["value"])?.DeepClone();
            if (!result.TryGetPropertyValue(key, out var existing))
            {
                result[key] = value;
            }
            else if (existing is JsonArray repeated)
            {
                repeated.Add(value);
            }
            else
            {
                result[key] = new JsonArray(existing!.DeepClone(), value);
            }
        }

        return result;
    }
}
