using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Unicode;
using Grpc.Core;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// Reads <c>envoy.service.ext_proc.v3.ProcessingRequest</c> from its protobuf bytes into an
/// <see cref="ExtProcRequest"/>: the gRPC request marshaller of <see cref="ExtProcMethod"/>.
/// </summary>
/// <remarks>
/// <para>The generated parser built a HeaderValue, two strings and a ByteString per header field, a
/// RepeatedField per map and a Struct per attribute map of every message (~10 % of the agent's CPU
/// per 2 KiB exchange, issue 13); this reader makes the strings the exchange keeps and nothing
/// else. It follows the protobuf wire rules the generated parser follows, and the generated parser
/// is its test oracle (ProcessingRequestReaderTests): a field is known by number and wire type, and
/// anything else is skipped (unknown fields, a known number with another wire type); the last
/// value of a scalar wins; a repeated message field merges; a different <c>request</c> field
/// replaces the previous one.</para>
/// <para>Malformed bytes (a truncated field, a bad varint or wire type, an unbalanced group) throw
/// an <see cref="RpcException"/> with INVALID_ARGUMENT naming the field, which ends the stream with
/// that status. What one message can make the agent hold is bounded: its size by the server's
/// receive limit, its header fields by <see cref="MaxHeaderFields"/>.</para>
/// </remarks>
internal static class ProcessingRequestReader
{
    /// <summary>
    /// Header fields one message may carry. Envoy's own limit (<c>max_headers_count</c>) defaults to
    /// 100; this is far above any configured one and stops a caller from making the agent hold
    /// millions of tiny fields (each costs ~40 bytes of strings and slots for 2 bytes of input).
    /// </summary>
    public const int MaxHeaderFields = 8192;

    // The generated parser's recursion limit (CodedInputStream.DefaultRecursionLimit), for nested
    // values and groups: what nests deeper is refused, and the walk's stack stays bounded.
    private const int MaxDepth = 100;

    private const int WireVarint = 0;
    private const int WireFixed64 = 1;
    private const int WireLengthDelimited = 2;
    private const int WireStartGroup = 3;
    private const int WireEndGroup = 4;
    private const int WireFixed32 = 5;

    /// <summary>Reads one message; throws INVALID_ARGUMENT on malformed bytes.</summary>
    public static ExtProcRequest Read(ReadOnlySequence<byte> payload) => Read(payload, new ExtProcRequest());

    /// <summary>
    /// Reads one message into <paramref name="request"/>, cleared first (<see cref="ExtProcRequest.Reset"/>):
    /// a stream handles one message at a time, so it reuses one request object and its header slots.
    /// Throws INVALID_ARGUMENT on malformed bytes.
    /// </summary>
    public static ExtProcRequest Read(ReadOnlySequence<byte> payload, ExtProcRequest request)
    {
        if (payload.IsSingleSegment)
        {
            return Read(payload.FirstSpan, request);
        }

        // A message split across pipe segments (bodies larger than a segment): one contiguous copy.
        var length = checked((int)payload.Length);
        var rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            payload.CopyTo(rented);
            return Read(rented.AsSpan(0, length), request);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Reads one message; throws INVALID_ARGUMENT on malformed bytes.</summary>
    public static ExtProcRequest Read(ReadOnlySpan<byte> bytes) => Read(bytes, new ExtProcRequest());

    /// <summary>Reads one message into <paramref name="request"/>, cleared first; throws INVALID_ARGUMENT on malformed bytes.</summary>
    public static ExtProcRequest Read(ReadOnlySpan<byte> bytes, ExtProcRequest request)
    {
        request.Reset();
        var reader = new Reader(bytes);
        while (reader.TryReadTag(out var tag))
        {
            switch (tag)
            {
                case 2 << 3 | WireLengthDelimited: // request_headers
                case 3 << 3 | WireLengthDelimited: // response_headers
                    request.Select((int)(tag >> 3) - 2);
                    ReadHttpHeaders(reader.ReadLengthDelimited("request_headers/response_headers"), request);
                    break;
                case 4 << 3 | WireLengthDelimited: // request_body
                case 5 << 3 | WireLengthDelimited: // response_body
                    request.Select((int)(tag >> 3) - 2);
                    ReadHttpBody(reader.ReadLengthDelimited("request_body/response_body"), request);
                    break;
                case 6 << 3 | WireLengthDelimited: // request_trailers
                case 7 << 3 | WireLengthDelimited: // response_trailers
                    request.Select((int)(tag >> 3) - 2);
                    ReadHttpTrailers(reader.ReadLengthDelimited("request_trailers/response_trailers"), request);
                    break;
                case 9 << 3 | WireLengthDelimited: // attributes
                    var attributes = request.Attributes;
                    ReadAttributesEntry(reader.ReadLengthDelimited("attributes"), ref attributes);
                    request.Attributes = attributes;
                    break;
                case 10 << 3 | WireVarint: // observability_mode
                    request.ObservabilityMode = reader.ReadVarint("observability_mode") != 0;
                    break;
                case 11 << 3 | WireLengthDelimited: // protocol_config
                    ReadProtocolConfig(reader.ReadLengthDelimited("protocol_config"), request);
                    break;
                case 8 << 3 | WireLengthDelimited: // metadata_context: not used, but checked as the generated parser would
                    Check(reader.ReadLengthDelimited("metadata_context"), Shape.Metadata, depth: 1);
                    break;
                default:
                    reader.Skip(tag, "a field of ProcessingRequest");
                    break;
            }
        }

        return request;
    }

    private static void ReadHttpHeaders(ReadOnlySpan<byte> bytes, ExtProcRequest request)
    {
        var reader = new Reader(bytes);
        while (reader.TryReadTag(out var tag))
        {
            switch (tag)
            {
                case 1 << 3 | WireLengthDelimited: // headers
                    ReadHeaderMap(reader.ReadLengthDelimited("HttpHeaders.headers"), request);
                    break;
                case 2 << 3 | WireLengthDelimited: // attributes (deprecated)
                    var attributes = request.HeaderAttributes;
                    ReadAttributesEntry(reader.ReadLengthDelimited("HttpHeaders.attributes"), ref attributes);
                    request.HeaderAttributes = attributes;
                    break;
                case 3 << 3 | WireVarint: // end_of_stream
                    request.EndOfStream = reader.ReadVarint("HttpHeaders.end_of_stream") != 0;
                    break;
                default:
                    reader.Skip(tag, "a field of HttpHeaders");
                    break;
            }
        }
    }

    private static void ReadHttpBody(ReadOnlySpan<byte> bytes, ExtProcRequest request)
    {
        var reader = new Reader(bytes);
        while (reader.TryReadTag(out var tag))
        {
            switch (tag)
            {
                case 1 << 3 | WireLengthDelimited: // body
                    // The payload's buffer is the transport's and is reused after this call: the body
                    // is copied into a rented array, which the capture may keep by reference.
                    request.SetBody(reader.ReadLengthDelimited("HttpBody.body"));
                    break;
                case 2 << 3 | WireVarint: // end_of_stream
                    request.EndOfStream = reader.ReadVarint("HttpBody.end_of_stream") != 0;
                    break;
                default:
                    reader.Skip(tag, "a field of HttpBody");
                    break;
            }
        }
    }

    private static void ReadHttpTrailers(ReadOnlySpan<byte> bytes, ExtProcRequest request)
    {
        var reader = new Reader(bytes);
        while (reader.TryReadTag(out var tag))
        {
            if (tag == (1 << 3 | WireLengthDelimited)) // trailers
            {
                ReadHeaderMap(reader.ReadLengthDelimited("HttpTrailers.trailers"), request);
            }
            else
            {
                reader.Skip(tag, "a field of HttpTrailers");
            }
        }
    }

    private static void ReadHeaderMap(ReadOnlySpan<byte> bytes, ExtProcRequest request)
    {
        request.HasHeaderMap = true;
        var reader = new Reader(bytes);
        while (reader.TryReadTag(out var tag))
        {
            if (tag == (1 << 3 | WireLengthDelimited)) // headers
            {
                ReadHeaderValue(reader.ReadLengthDelimited("HeaderMap.headers"), request);
            }
            else
            {
                reader.Skip(tag, "a field of HeaderMap");
            }
        }
    }

    private static void ReadHeaderValue(ReadOnlySpan<byte> bytes, ExtProcRequest request)
    {
        ReadOnlySpan<byte> key = default;
        ReadOnlySpan<byte> value = default;
        ReadOnlySpan<byte> raw = default;
        var reader = new Reader(bytes);
        while (reader.TryReadTag(out var tag))
        {
            switch (tag)
            {
                case 1 << 3 | WireLengthDelimited:
                    key = CheckUtf8(reader.ReadLengthDelimited("HeaderValue.key"), "HeaderValue.key");
                    break;
                case 2 << 3 | WireLengthDelimited:
                    value = CheckUtf8(reader.ReadLengthDelimited("HeaderValue.value"), "HeaderValue.value");
                    break;
                case 3 << 3 | WireLengthDelimited:
                    raw = reader.ReadLengthDelimited("HeaderValue.raw_value");
                    break;
                default:
                    reader.Skip(tag, "a field of HeaderValue");
                    break;
            }
        }

        // raw_value, else value (Envoys before the raw_value switch send only value).
        var text = raw.IsEmpty ? Encoding.UTF8.GetString(value) : HeaderText.DecodeRaw(raw);
        if (!request.TryAddHeader(HeaderNames.Get(key), text, MaxHeaderFields))
        {
            throw Malformed(string.Create(CultureInfo.InvariantCulture, $"more than {MaxHeaderFields} header fields in one message"));
        }
    }

    private static void ReadProtocolConfig(ReadOnlySpan<byte> bytes, ExtProcRequest request)
    {
        request.HasProtocolConfig = true;
        var reader = new Reader(bytes);
        while (reader.TryReadTag(out var tag))
        {
            switch (tag)
            {
                case 1 << 3 | WireVarint: // request_body_mode; enums keep unknown values, as generated code does
                    request.RequestBodyMode = (Proto.Filter.ProcessingMode.Types.BodySendMode)(int)reader.ReadVarint("protocol_config.request_body_mode");
                    break;
                case 2 << 3 | WireVarint: // response_body_mode
                    request.ResponseBodyMode = (Proto.Filter.ProcessingMode.Types.BodySendMode)(int)reader.ReadVarint("protocol_config.response_body_mode");
                    break;
                default:
                    reader.Skip(tag, "a field of ProtocolConfiguration");
                    break;
            }
        }
    }

    // One entry of map<string, google.protobuf.Struct>: only the filter's own namespace is read.
    // A later entry with the same key replaces the earlier one's fields, as in the map.
    private static void ReadAttributesEntry(ReadOnlySpan<byte> bytes, ref List<KeyValuePair<string, string?>>? fields)
    {
        ReadOnlySpan<byte> key = default;
        ReadOnlySpan<byte> value = default;
        var reader = new Reader(bytes);
        while (reader.TryReadTag(out var tag))
        {
            switch (tag)
            {
                case 1 << 3 | WireLengthDelimited:
                    key = CheckUtf8(reader.ReadLengthDelimited("attributes key"), "attributes key");
                    break;
                case 2 << 3 | WireLengthDelimited:
                    value = reader.ReadLengthDelimited("attributes value");
                    break;
                default:
                    reader.SkipInMapEntry(tag, "a field of attributes entry");
                    break;
            }
        }

        if (!Ascii.Equals(key, ExtProcStream.AttributesKey))
        {
            Check(value, Shape.Struct, depth: 2);
            return;
        }

        fields ??= [];
        fields.Clear();
        ReadStruct(value, fields);
    }

    // google.protobuf.Struct: map<string, Value> fields = 1.
    private static void ReadStruct(ReadOnlySpan<byte> bytes, List<KeyValuePair<string, string?>> fields)
    {
        var reader = new Reader(bytes);
        while (reader.TryReadTag(out var tag))
        {
            if (tag != (1 << 3 | WireLengthDelimited))
            {
                reader.Skip(tag, "a field of Struct");
                continue;
            }

            var entry = new Reader(reader.ReadLengthDelimited("Struct.fields"));
            ReadOnlySpan<byte> key = default;
            string? text = null;
            while (entry.TryReadTag(out var entryTag))
            {
                switch (entryTag)
                {
                    case 1 << 3 | WireLengthDelimited:
                        key = CheckUtf8(entry.ReadLengthDelimited("Struct.fields key"), "Struct.fields key");
                        break;
                    case 2 << 3 | WireLengthDelimited:
                        text = ReadValueText(entry.ReadLengthDelimited("Struct.fields value"));
                        break;
                    default:
                        entry.SkipInMapEntry(entryTag, "a field of Struct.fields entry");
                        break;
                }
            }

            var name = Encoding.UTF8.GetString(key);
            var index = fields.FindIndex(field => string.Equals(field.Key, name, StringComparison.Ordinal));
            if (index >= 0)
            {
                fields[index] = new(name, text);
            }
            else
            {
                fields.Add(new(name, text));
            }
        }
    }

    // google.protobuf.Value as the text ExtProcStream records: string, number or bool; null for
    // the other kinds (null, struct, list), which are skipped unread.
    private static string? ReadValueText(ReadOnlySpan<byte> bytes)
    {
        string? text = null;
        var reader = new Reader(bytes);
        while (reader.TryReadTag(out var tag))
        {
            switch (tag)
            {
                case 2 << 3 | WireFixed64: // number_value
                    text = BitConverter.Int64BitsToDouble((long)reader.ReadFixed64("Value.number_value")).ToString(CultureInfo.InvariantCulture);
                    break;
                case 3 << 3 | WireLengthDelimited: // string_value
                    text = Utf8String(reader.ReadLengthDelimited("Value.string_value"), "Value.string_value");
                    break;
                case 4 << 3 | WireVarint: // bool_value
                    text = reader.ReadVarint("Value.bool_value") != 0 ? "true" : "false";
                    break;
                case 1 << 3 | WireVarint: // null_value
                    reader.Skip(tag, "a field of Value");
                    text = null;
                    break;
                case 5 << 3 | WireLengthDelimited: // struct_value
                    Check(reader.ReadLengthDelimited("Value.struct_value"), Shape.Struct, depth: 5);
                    text = null;
                    break;
                case 6 << 3 | WireLengthDelimited: // list_value
                    Check(reader.ReadLengthDelimited("Value.list_value"), Shape.ListValue, depth: 5);
                    text = null;
                    break;
                default:
                    reader.Skip(tag, "a field of Value");
                    break;
            }
        }

        return text;
    }

    // Messages the agent does not use (metadata_context, other attribute namespaces, nested
    // values) are not built, only walked: bytes the generated parser would refuse are refused here
    // too, so whether a message is malformed does not depend on which reader reads it.
    private enum Shape
    {
        Struct,
        StructEntry,
        Value,
        ListValue,
        Metadata,
        StructMapEntry,
        AnyMapEntry,
        Any,
    }

    // For error texts, by Shape.
    private static readonly string[] _shapeFields =
    [
        "a field of Struct", "a field of Struct.fields", "a field of Value", "a field of ListValue",
        "a field of metadata_context", "a field of metadata_context.filter_metadata", "a field of metadata_context.typed_filter_metadata", "a field of Any",
    ];

    private static void Check(ReadOnlySpan<byte> bytes, Shape shape, int depth)
    {
        if (depth > MaxDepth)
        {
            throw Malformed("messages nested deeper than " + MaxDepth.ToString(CultureInfo.InvariantCulture));
        }

        var reader = new Reader(bytes);
        while (reader.TryReadTag(out var tag))
        {
            if ((shape, tag) is (Shape.StructEntry or Shape.StructMapEntry or Shape.AnyMapEntry or Shape.Any, 1 << 3 | WireLengthDelimited)
                or (Shape.Value, 3 << 3 | WireLengthDelimited))
            {
                // A map key, Any.type_url or Value.string_value: strings, so UTF-8.
                CheckUtf8(reader.ReadLengthDelimited(_shapeFields[(int)shape]), _shapeFields[(int)shape]);
                continue;
            }

            Shape? inner = (shape, tag) switch
            {
                (Shape.Struct, 1 << 3 | WireLengthDelimited) => Shape.StructEntry,
                (Shape.StructEntry, 2 << 3 | WireLengthDelimited) => Shape.Value,
                (Shape.Value, 5 << 3 | WireLengthDelimited) => Shape.Struct,
                (Shape.Value, 6 << 3 | WireLengthDelimited) => Shape.ListValue,
                (Shape.ListValue, 1 << 3 | WireLengthDelimited) => Shape.Value,
                (Shape.Metadata, 1 << 3 | WireLengthDelimited) => Shape.StructMapEntry,
                (Shape.Metadata, 2 << 3 | WireLengthDelimited) => Shape.AnyMapEntry,
                (Shape.StructMapEntry, 2 << 3 | WireLengthDelimited) => Shape.Struct,
                (Shape.AnyMapEntry, 2 << 3 | WireLengthDelimited) => Shape.Any,
                _ => null,
            };
            if (inner is { } nested)
            {
                Check(reader.ReadLengthDelimited(_shapeFields[(int)shape]), nested, depth + 1);
            }
            else if (shape is Shape.StructEntry or Shape.StructMapEntry or Shape.AnyMapEntry)
            {
                reader.SkipInMapEntry(tag, "a field of an unused map entry");
            }
            else
            {
                reader.Skip(tag, "a field of an unused message");
            }
        }
    }

    // A protobuf string must be UTF-8: the generated parser refuses the message otherwise.
    private static string Utf8String(ReadOnlySpan<byte> bytes, string field) =>
        bytes.IsEmpty ? "" : Encoding.UTF8.GetString(CheckUtf8(bytes, field));

    private static ReadOnlySpan<byte> CheckUtf8(ReadOnlySpan<byte> bytes, string field) =>
        Utf8.IsValid(bytes) ? bytes : throw Malformed(field + " is not valid UTF-8");

    private static RpcException Malformed(string what) =>
        new(new Status(StatusCode.InvalidArgument, "Malformed ext_proc ProcessingRequest: " + what));

    private ref struct Reader(ReadOnlySpan<byte> bytes)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;
        private int _position;

        public bool TryReadTag(out uint tag)
        {
            if (_position >= _bytes.Length)
            {
                tag = 0;
                return false;
            }

            // A tag is 32 bits; longer varints keep their low bits, as the generated parser does.
            tag = (uint)ReadVarint("a field tag");
            if (tag >> 3 == 0)
            {
                throw Malformed(string.Create(CultureInfo.InvariantCulture, $"invalid field tag {tag} at byte {_position}"));
            }

            return true;
        }

        public ulong ReadVarint(string field)
        {
            ulong value = 0;
            for (var shift = 0; shift < 70; shift += 7)
            {
                if (_position >= _bytes.Length)
                {
                    throw Malformed("truncated varint in " + field);
                }

                var b = _bytes[_position++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return value;
                }
            }

            throw Malformed("varint longer than 10 bytes in " + field);
        }

        public ulong ReadFixed64(string field)
        {
            var bytes = Take(8, field);
            return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        }

        public ReadOnlySpan<byte> ReadLengthDelimited(string field)
        {
            // A length is a 32-bit varint (longer ones keep their low bits, as the generated parser
            // does); one of 2^31 or more is negative there, and no message is that long.
            var length = (uint)ReadVarint(field);
            if (length > (uint)(_bytes.Length - _position))
            {
                throw Malformed(string.Create(CultureInfo.InvariantCulture, $"{field} is truncated: {length} bytes announced, {_bytes.Length - _position} left"));
            }

            return Take((int)length, field);
        }

        /// <summary>
        /// <see cref="Skip(uint, string)"/> inside a map entry, where the generated parser takes wire
        /// types 6 and 7 (which do not exist) as fields of no bytes rather than refusing them.
        /// </summary>
        public void SkipInMapEntry(uint tag, string message)
        {
            if ((tag & 7) < 6)
            {
                Skip(tag, message);
            }
        }

        /// <summary>Skips the field whose tag was just read (a group with everything in it).</summary>
        public void Skip(uint tag, string message) => Skip(tag, message, depth: 0);

        private void Skip(uint tag, string message, int depth)
        {
            // The error text names the message the field is in; it is built only when thrown.
            switch ((int)(tag & 7))
            {
                case WireVarint:
                    ReadVarint(message);
                    return;
                case WireFixed64:
                    Take(8, message);
                    return;
                case WireLengthDelimited:
                    ReadLengthDelimited(message);
                    return;
                case WireFixed32:
                    Take(4, message);
                    return;
                case WireStartGroup:
                    if (depth >= MaxDepth)
                    {
                        throw Malformed("groups nested deeper than " + MaxDepth.ToString(CultureInfo.InvariantCulture) + " in " + message);
                    }

                    while (TryReadTag(out var inner))
                    {
                        if ((inner & 7) == WireEndGroup)
                        {
                            if (inner >> 3 != tag >> 3)
                            {
                                throw Malformed(string.Create(CultureInfo.InvariantCulture, $"group {tag >> 3} ended by the end of group {inner >> 3} in {message}"));
                            }

                            return;
                        }

                        Skip(inner, message, depth + 1);
                    }

                    throw Malformed(string.Create(CultureInfo.InvariantCulture, $"group {tag >> 3} in {message} is not ended"));
                case WireEndGroup:
                    throw Malformed(string.Create(CultureInfo.InvariantCulture, $"end of group {tag >> 3} that was not started, in {message}"));
                default:
                    throw Malformed(string.Create(CultureInfo.InvariantCulture, $"invalid wire type {tag & 7} for field {tag >> 3} of {message}"));
            }
        }

        private ReadOnlySpan<byte> Take(int count, string field)
        {
            if (count > _bytes.Length - _position)
            {
                throw Malformed(string.Create(CultureInfo.InvariantCulture, $"{field} is truncated: {count} bytes needed, {_bytes.Length - _position} left"));
            }

            var span = _bytes.Slice(_position, count);
            _position += count;
            return span;
        }
    }
}
