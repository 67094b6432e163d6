using System.Text.Json;
using Google.Protobuf;

namespace SpIstio.Backend.Ingest;

/// <summary>
/// A <c>google.rpc.Status</c> (code = 1, message = 2), the body OTLP/HTTP error answers carry.
/// Encoded by hand: the two fields do not justify a dependency on the common protos package.
/// </summary>
/// <param name="Code">A gRPC status code number (3 invalid argument, 14 unavailable, …).</param>
/// <param name="Message">What was wrong.</param>
public readonly record struct RpcStatus(int Code, string Message)
{
    /// <summary>The protobuf encoding.</summary>
    public byte[] ToProtobuf()
    {
        var size = CodedOutputStream.ComputeTagSize(1) + CodedOutputStream.ComputeInt32Size(Code)
            + CodedOutputStream.ComputeTagSize(2) + CodedOutputStream.ComputeStringSize(Message);
        var bytes = new byte[size];
        var output = new CodedOutputStream(bytes);
        output.WriteTag(1, WireFormat.WireType.Varint);
        output.WriteInt32(Code);
        output.WriteTag(2, WireFormat.WireType.LengthDelimited);
        output.WriteString(Message);
        output.CheckNoSpaceLeft();
        return bytes;
    }

    /// <summary>The protobuf-JSON encoding (<c>{"code":3,"message":"…"}</c>).</summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WriteNumber("code", Code);
            writer.WriteString("message", Message);
            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }

    /// <summary>Decodes the protobuf encoding (tests and clients).</summary>
    public static RpcStatus ParseProtobuf(ReadOnlySpan<byte> bytes)
    {
        var input = new CodedInputStream(bytes.ToArray());
        int code = 0;
        var message = "";
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: code = input.ReadInt32(); break;
                case 2: message = input.ReadString(); break;
                default: input.SkipLastField(); break;
            }
        }

        return new RpcStatus(code, message);
    }
}
