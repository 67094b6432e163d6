using System.IO.Compression;
using Grpc.Net.Compression;

namespace SpIstio.Backend.Ingest;

/// <summary>
/// gzip and deflate for the backend's gRPC port, in place of Grpc.AspNetCore's own two: a compressed
/// export message is inflated against its call's <see cref="IngestBudget.Reservation"/>, a segment
/// ahead of what it has produced, and against the receive limit. Grpc.AspNetCore inflates a message
/// whole into memory before any handler runs, so without this a message of a few KB inflating to
/// the receive limit was covered only by the <see cref="OtlpGrpcBudgetGate.AssumedCompressionRatio"/>
/// guess at its length prefix until the handler saw it: many such calls at once held many times
/// the budget. A refused message ends where it was refused (the stream reports its end, so
/// Grpc.AspNetCore logs no error), and the handler answers with the refusal (<see cref="OtlpGrpcInflation.Refusal"/>).
/// </summary>
internal sealed class BudgetedCompressionProvider : ICompressionProvider
{
    /// <summary>The encodings Grpc.AspNetCore accepts by default, each inflated against the budget.</summary>
    internal static readonly IReadOnlyList<ICompressionProvider> All = [new BudgetedCompressionProvider("gzip"), new BudgetedCompressionProvider("deflate")];

    private static readonly AsyncLocal<OtlpGrpcInflation?> _current = new();

    private BudgetedCompressionProvider(string encodingName) => EncodingName = encodingName;

    /// <summary>The export call being read on this flow, set by <see cref="OtlpGrpcBudgetGate"/> around the call (its handler reads the refusal here too).</summary>
    internal static OtlpGrpcInflation? Current
    {
        get => _current.Value;
        set => _current.Value = value;
    }

    /// <inheritdoc />
    public string EncodingName { get; }

    /// <inheritdoc />
    public Stream CreateCompressionStream(Stream stream, CompressionLevel? compressionLevel) => Create(stream, compressionLevel ?? CompressionLevel.Fastest);

    /// <inheritdoc />
    public Stream CreateDecompressionStream(Stream stream)
    {
        var inflating = Create(stream, null);
        return Current is { } call ? new ReservedInflateStream(inflating, call) : inflating;
    }

    // gRPC's "deflate" is the zlib format (RFC 1950), as Grpc.AspNetCore's own provider reads it.
    private Stream Create(Stream stream, CompressionLevel? compress) => (EncodingName, compress) switch
    {
        ("gzip", { } level) => new GZipStream(stream, level, leaveOpen: true),
        ("gzip", null) => new GZipStream(stream, CompressionMode.Decompress),
        (_, { } level) => new ZLibStream(stream, level, leaveOpen: true),
        _ => new ZLibStream(stream, CompressionMode.Decompress),
    };

    /// <summary>Reads an inflating message, covering it in the call's reservation before handing its bytes on.</summary>
    private sealed class ReservedInflateStream(Stream inner, OtlpGrpcInflation call) : Stream
    {
        private long _inflated;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => _inflated;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (call.Refusal is not null)
            {
                return 0;
            }

            int read = inner.Read(buffer);
            if (read > 0 && !call.TryCover(_inflated + read))
            {
                // Refused: the message ends before these bytes, and the handler answers with the refusal.
                return 0;
            }

            _inflated += read;
            return read;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}

/// <summary>One export call's message as it inflates: its reservation, the receive limit, and the refusal if either stopped it.</summary>
internal sealed class OtlpGrpcInflation(IngestBudget.Reservation reservation, int maxMessageBytes)
{
    /// <summary>Why the message was cut short, for the handler to answer; null while it is not.</summary>
    public (Grpc.Core.StatusCode Code, string Message)? Refusal { get; private set; }

    /// <summary>
    /// Whether <paramref name="inflated"/> bytes may be kept: within the receive limit
    /// (<c>--max-body-bytes</c>; else RESOURCE_EXHAUSTED) and covered by the reservation, which grows
    /// a segment (<see cref="SegmentedBody.SegmentBytes"/>) beyond them when it falls short, as an
    /// inflating HTTP body's does (else UNAVAILABLE, which exporters retry).
    /// </summary>
    public bool TryCover(long inflated)
    {
        if (inflated > maxMessageBytes)
        {
            Refusal = (Grpc.Core.StatusCode.ResourceExhausted, IngestService.OverLimitMessage(maxMessageBytes));
        }
        else if (inflated > reservation.BodyBytes
            && !reservation.TryCover(Math.Min(inflated + SegmentedBody.SegmentBytes, maxMessageBytes), OtlpGrpcService.Protocol))
        {
            Refusal = (Grpc.Core.StatusCode.Unavailable, IngestBudget.RefusalMessage);
        }

        return Refusal is null;
    }
}
