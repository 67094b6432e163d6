namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// One length-prefixed gRPC message as captured from a stream.
/// </summary>
/// <param name="Index">Position in its stream, from 0; counts messages that were not kept too.</param>
/// <param name="Offset">When the message's first byte was seen, from the start of the exchange.</param>
/// <param name="Compressed">The frame's compressed flag.</param>
/// <param name="WireLength">The length the frame header announced.</param>
/// <param name="Payload">The message bytes kept: decompressed when <see cref="Decoded"/> is true, else as on the wire.</param>
/// <param name="Truncated">True when <see cref="Payload"/> is shorter than the message.</param>
/// <param name="Decoded">True when a compressed message was decompressed for the capture.</param>
public sealed record GrpcMessage(
    int Index,
    TimeSpan Offset,
    bool Compressed,
    long WireLength,
    ReadOnlyMemory<byte> Payload,
    bool Truncated,
    bool Decoded);

/// <summary>What one direction of a gRPC stream may make the capture hold.</summary>
/// <param name="MaxMessageBytes">Bytes kept of one message (after decompression).</param>
/// <param name="MaxMessages">Messages kept per stream direction; later ones are counted, not kept.</param>
/// <param name="MaxStreamBytes">Bytes kept over all messages of one stream direction.</param>
public sealed record GrpcCaptureLimits(int MaxMessageBytes, int MaxMessages, long MaxStreamBytes)
{
    /// <summary>
    /// 64 KiB per message (the body capture limit's default), 100 messages and 1 MiB per direction:
    /// enough for any unary call and the opening of a long stream, bounded for a stream that never ends.
    /// </summary>
    public static GrpcCaptureLimits Default { get; } = new(64 * 1024, 100, 1024 * 1024);
}
