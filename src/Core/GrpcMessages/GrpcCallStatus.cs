using System.Buffers.Text;
using System.Globalization;
using Google.Protobuf;

namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// The outcome of a gRPC call as its trailers (or a trailers-only response's headers) state it:
/// <c>grpc-status</c>, <c>grpc-message</c> and <c>grpc-status-details-bin</c>.
/// </summary>
/// <param name="Code">The status code, 0 (OK) to 16.</param>
/// <param name="Message">The percent-decoded <c>grpc-message</c>, if any.</param>
/// <param name="Details">The decoded <c>google.rpc.Status</c> details, if the trailer was present and valid.</param>
public sealed record GrpcCallStatus(int Code, string? Message, GrpcStatusDetails? Details)
{
    // The canonical names, indexed by code (grpc/doc/statuscodes.md).
    private static readonly string[] Names =
    [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
        "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ];

    // A status with neither message nor details, one per code of the table: most calls end so
    // (a record, immutable), and then no status is allocated a call.
    private static readonly GrpcCallStatus[] Plain = [.. Enumerable.Range(0, Names.Length).Select(static code => new GrpcCallStatus(code, null, null))];

    // The codes as decimal text, indexed by code: the span's rpc.grpc.status_code of every call.
    private static readonly string[] CodeTexts = [.. Enumerable.Range(0, Names.Length).Select(static code => code.ToString(CultureInfo.InvariantCulture))];

    /// <summary>A status code as decimal text (<c>"5"</c>), without formatting one for the codes of the table.</summary>
    public static string CodeText(int code) =>
        code >= 0 && code < CodeTexts.Length ? CodeTexts[code] : code.ToString(CultureInfo.InvariantCulture);

    /// <summary>The canonical name of <see cref="Code"/> (e.g. <c>NOT_FOUND</c>), or the number for a code outside the table.</summary>
    public string Name => NameOf(Code);

    /// <summary>The canonical name of a status code.</summary>
    public static string NameOf(int code) =>
        code >= 0 && code < Names.Length ? Names[code] : code.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Reads the status from trailer values; null when <paramref name="grpcStatus"/> is absent or not a
    /// number (the call did not end with a gRPC status, e.g. a proxy answered with plain HTTP).
    /// </summary>
    public static GrpcCallStatus? Parse(string? grpcStatus, string? grpcMessage, string? grpcStatusDetailsBin)
    {
        if (!int.TryParse(grpcStatus, NumberStyles.None, CultureInfo.InvariantCulture, out var code))
        {
            return null;
        }

        var message = string.IsNullOrEmpty(grpcMessage) ? null : PercentDecode(grpcMessage);
        var details = GrpcStatusDetails.TryParse(grpcStatusDetailsBin);
        return message is null && details is null && code < Plain.Length ? Plain[code] : new GrpcCallStatus(code, message, details);
    }

    /// <summary>
    /// Undoes the percent-encoding of <c>grpc-message</c>: <c>%XX</c> sequences are UTF-8 bytes. The
    /// spec asks decoders to keep a malformed sequence as it is rather than fail, which is what
    /// <see cref="Uri.UnescapeDataString(string)"/> does (and it leaves <c>+</c> alone, as gRPC wants).
    /// </summary>
    public static string PercentDecode(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return Uri.UnescapeDataString(value);
    }
}

/// <summary>
/// A decoded <c>google.rpc.Status</c> from <c>grpc-status-details-bin</c>: code, message and the
/// details as (type URL, bytes) pairs, which a viewer decodes with descriptors or schema-less.
/// </summary>
public sealed record GrpcStatusDetails(int Code, string Message, IReadOnlyList<GrpcStatusDetail> Details)
{
    /// <summary>
    /// Decodes the trailer's base64 (padded or not, as the spec allows both); null when absent or
    /// when it is not a valid <c>google.rpc.Status</c>.
    /// </summary>
    public static GrpcStatusDetails? TryParse(string? base64)
    {
        if (string.IsNullOrWhiteSpace(base64))
        {
            return null;
        }

        var text = base64.Trim();
        var padded = (text.Length % 4) switch
        {
            2 => text + "==",
            3 => text + "=",
            _ => text,
        };
        var bytes = new byte[Base64.GetMaxDecodedFromUtf8Length(padded.Length)];
        if (!Convert.TryFromBase64String(padded, bytes, out var written))
        {
            return null;
        }

        try
        {
            return Decode(new CodedInputStream(bytes, 0, written));
        }
        catch (InvalidProtocolBufferException)
        {
            return null;
        }
    }

    // google/rpc/status.proto: int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3.
    private static GrpcStatusDetails Decode(CodedInputStream input)
    {
        var code = 0;
        var message = string.Empty;
        var details = new List<GrpcStatusDetail>();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (tag)
            {
                case 8:
                    code = input.ReadInt32();
                    break;
                case 18:
                    message = input.ReadString();
                    break;
                case 26:
                    details.Add(DecodeAny(input.ReadBytes()));
                    break;
                default:
                    input.SkipLastField();
                    break;
            }
        }

        return new GrpcStatusDetails(code, message, details);
    }

    // google/protobuf/any.proto: string type_url = 1; bytes value = 2.
    private static GrpcStatusDetail DecodeAny(ByteString bytes)
    {
        var input = bytes.CreateCodedInput();
        var typeUrl = string.Empty;
        var value = ByteString.Empty;
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (tag)
            {
                case 10:
                    typeUrl = input.ReadString();
                    break;
                case 18:
                    value = input.ReadBytes();
                    break;
                default:
                    input.SkipLastField();
                    break;
            }
        }

        return new GrpcStatusDetail(typeUrl, value.Memory);
    }
}

/// <summary>One detail of a <c>google.rpc.Status</c>: a packed <c>google.protobuf.Any</c>.</summary>
/// <param name="TypeUrl">e.g. <c>type.googleapis.com/google.rpc.ErrorInfo</c>.</param>
/// <param name="Value">The serialized message of that type.</param>
public sealed record GrpcStatusDetail(string TypeUrl, ReadOnlyMemory<byte> Value)
{
    /// <summary>The message's full name: the type URL after its last <c>/</c>.</summary>
    public string TypeName => TypeUrl[(TypeUrl.LastIndexOf('/') + 1)..];
}
