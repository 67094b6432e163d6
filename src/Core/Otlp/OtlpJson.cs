using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;

namespace SpIstio.Core.Otlp;

/// <summary>
/// OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): the protobuf
/// JSON mapping with two differences this class applies on top of Google.Protobuf's formatter and
/// parser — trace and span ids are hex strings rather than base64, and enums are integers.
/// </summary>
public static class OtlpJson
{
    private static readonly JsonFormatter _formatter = new(JsonFormatter.Settings.Default.WithFormatEnumsAsIntegers(true));

    // The spec requires receivers to ignore unknown fields, so newer senders still parse.
    private static readonly JsonParser _parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(true));

    private static readonly SearchValues<char> _hexDigits = SearchValues.Create("0123456789abcdefABCDEF");

    /// <summary>Formats an OTLP message (an export request or response, <c>TracesData</c>, …) as OTLP/JSON.</summary>
    public static string Format(IMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var node = JsonNode.Parse(_formatter.Format(message))!;
        RewriteIds(node, toHex: true);
        return node.ToJsonString();
    }

    /// <summary>Parses an OTLP/JSON document.</summary>
    /// <exception cref="FormatException">The document is not valid OTLP/JSON for <typeparamref name="T"/>.</exception>
    public static T Parse<T>(string json)
        where T : IMessage, new()
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new FormatException("The document is not JSON: " + ex.Message, ex);
        }

        return ParseNode<T>(node);
    }

    /// <summary>Parses an OTLP/JSON document given as UTF-8 bytes (an HTTP request body).</summary>
    /// <exception cref="FormatException">The document is not valid OTLP/JSON for <typeparamref name="T"/>.</exception>
    public static T Parse<T>(ReadOnlySpan<byte> utf8Json)
        where T : IMessage, new()
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(utf8Json);
        }
        catch (JsonException ex)
        {
            throw new FormatException("The document is not JSON: " + ex.Message, ex);
        }

        return ParseNode<T>(node);
    }

    private static T ParseNode<T>(JsonNode? node)
        where T : IMessage, new()
    {
        if (node is not JsonObject)
        {
            throw new FormatException("An OTLP/JSON document is a JSON object.");
        }

        RewriteIds(node, toHex: false);
        try
        {
            return _parser.Parse<T>(node.ToJsonString());
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new FormatException("The document is not valid OTLP/JSON: " + ex.Message, ex);
        }
        catch (InvalidJsonException ex)
        {
            throw new FormatException("The document is not valid OTLP/JSON: " + ex.Message, ex);
        }
    }

    /// <summary>
    /// Converts every <c>traceId</c>, <c>spanId</c> and <c>parentSpanId</c> property between
    /// base64 (protobuf JSON) and hex (OTLP/JSON). Only spans, links and log records have
    /// properties of these names (attribute maps are lists of key/value objects), so a walk over
    /// the whole tree touches nothing else.
    /// </summary>
    private static void RewriteIds(JsonNode node, bool toHex)
    {
        switch (node)
        {
            case JsonObject obj:
                List<KeyValuePair<string, string>>? updates = null;
                foreach (var (name, child) in obj)
                {
                    if (child is null)
                    {
                        continue;
                    }

                    if (child is JsonValue value && IsIdProperty(name) && value.TryGetValue<string>(out var text))
                    {
                        var converted = toHex ? Convert.ToHexStringLower(Convert.FromBase64String(text)) : HexToBase64(text);
                        (updates ??= []).Add(new(name, converted));
                    }
                    else
                    {
                        RewriteIds(child, toHex);
                    }
                }

                if (updates is not null)
                {
                    foreach (var (name, converted) in updates)
                    {
                        obj[name] = converted;
                    }
                }

                break;
            case JsonArray array:
                foreach (var item in array)
                {
                    if (item is not null)
                    {
                        RewriteIds(item, toHex);
                    }
                }

                break;
            default:
                break;
        }
    }

    private static bool IsIdProperty(string name) =>
        name is "traceId" or "spanId" or "parentSpanId";

    private static string HexToBase64(string text)
    {
        if (text.Length % 2 == 0 && !text.AsSpan().ContainsAnyExcept(_hexDigits))
        {
            return Convert.ToBase64String(Convert.FromHexString(text));
        }

        // Some exporters send protobuf-JSON base64 ids despite the spec; the parser takes those as they are
        // (and rejects anything that is neither).
        return text;
    }
}
