using System.Buffers.Binary;
using System.IO.Compression;
using Google.Protobuf;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Tests.GrpcMessages.Generated;

namespace SpIstio.Core.Tests.GrpcMessages;

public sealed class GrpcFrameReaderTests
{
    private static readonly GrpcCaptureLimits Roomy = new(1024, 10, 10_000);

    [Fact]
    public void Append_StreamCutAtEveryByte_YieldsTheSameMessages()
    {
        var first = new OrderReply { OrderId = "ord-1", TotalCents = 1234 }.ToByteArray();
        var second = new OrderReply { OrderId = "ord-2" }.ToByteArray();
        var stream = Frame(first).Concat(Frame(second)).Concat(Frame([])).ToArray();

        for (var cut = 0; cut <= stream.Length; cut++)
        {
            using var reader = new GrpcFrameReader(Roomy, null);
            reader.Append(stream.AsSpan(0, cut), TimeSpan.Zero);
            reader.Append(stream.AsSpan(cut), TimeSpan.Zero);
            reader.Complete();

            Assert.Equal(3, reader.MessageCount);
            Assert.Equal([first, second, []], reader.Messages.Select(m => m.Payload.ToArray()));
            Assert.Equal([0, 1, 2], reader.Messages.Select(m => m.Index));
            Assert.False(reader.Truncated);
            Assert.Equal(stream.Length, reader.TotalBytes);
        }
    }

    [Fact]
    public void Append_MessageOverPerMessageLimit_KeepsItsStartFlagsItAndReadsTheNextWhole()
    {
        var big = Enumerable.Range(0, 300).Select(i => (byte)i).ToArray();
        var small = new byte[] { 1, 2, 3 };
        using var reader = new GrpcFrameReader(new GrpcCaptureLimits(100, 10, 10_000), null);

        reader.Append(Frame(big).Concat(Frame(small)).ToArray(), TimeSpan.Zero);
        reader.Complete();

        Assert.Equal(2, reader.Messages.Count);
        Assert.Equal(big[..100], reader.Messages[0].Payload.ToArray());
        Assert.Equal(300, reader.Messages[0].WireLength);
        Assert.True(reader.Messages[0].Truncated);
        Assert.Equal(small, reader.Messages[1].Payload.ToArray());
        Assert.False(reader.Messages[1].Truncated);
        Assert.True(reader.Truncated);
    }

    [Fact]
    public void Append_MoreMessagesThanTheLimit_CountsThemAllKeepsTheFirst()
    {
        using var reader = new GrpcFrameReader(new GrpcCaptureLimits(100, 2, 10_000), null);

        for (var i = 0; i < 5; i++)
        {
            reader.Append(Frame([(byte)i]), TimeSpan.FromMilliseconds(i));
        }

        reader.Complete();

        Assert.Equal(5, reader.MessageCount);
        Assert.Equal([0, 1], reader.Messages.Select(m => (int)m.Payload.Span[0]));
        Assert.True(reader.Truncated);
    }

    [Fact]
    public void Append_StreamBudgetSpent_LaterMessagesKeepNoBytes()
    {
        using var reader = new GrpcFrameReader(new GrpcCaptureLimits(100, 10, 150), null);

        reader.Append(Frame(new byte[100]).Concat(Frame(new byte[100])).Concat(Frame(new byte[100])).ToArray(), TimeSpan.Zero);
        reader.Complete();

        Assert.Equal([100, 50, 0], reader.Messages.Select(m => m.Payload.Length));
        Assert.All(reader.Messages, m => Assert.Equal(100, m.WireLength));
        Assert.True(reader.Truncated);
    }

    [Fact]
    public void Append_GzipMessageUnderGrpcEncodingGzip_IsDecompressedForTheCapture()
    {
        var message = new OrderReply { OrderId = new string('x', 500) }.ToByteArray();
        using var reader = new GrpcFrameReader(Roomy, "gzip");

        reader.Append(Frame(Gzip(message), compressed: true), TimeSpan.Zero);
        reader.Complete();

        var captured = Assert.Single(reader.Messages);
        Assert.True(captured.Compressed);
        Assert.True(captured.Decoded);
        Assert.Equal(message, captured.Payload.ToArray());
    }

    [Fact]
    public void Append_CompressedBomb_DecodesNoMoreThanThePerMessageLimit()
    {
        var bomb = Gzip(new byte[50_000_000]);
        using var reader = new GrpcFrameReader(new GrpcCaptureLimits(4096, 10, 1_000_000), "gzip");

        reader.Append(Frame(bomb, compressed: true), TimeSpan.Zero);
        reader.Complete();

        var captured = Assert.Single(reader.Messages);
        Assert.True(captured.Decoded);
        Assert.Equal(4096, captured.Payload.Length);
        Assert.True(captured.Truncated);
    }

    [Fact]
    public void Append_CompressedFlagWithUnknownEncoding_KeepsTheWireBytes()
    {
        var wire = new byte[] { 9, 8, 7 };
        using var reader = new GrpcFrameReader(Roomy, "snappy");

        reader.Append(Frame(wire, compressed: true), TimeSpan.Zero);
        reader.Complete();

        var captured = Assert.Single(reader.Messages);
        Assert.False(captured.Decoded);
        Assert.Equal(wire, captured.Payload.ToArray());
    }

    [Fact]
    public void Complete_StreamEndsInsideAMessage_KeepsItAsTruncated()
    {
        var frame = Frame([1, 2, 3, 4, 5]);
        using var reader = new GrpcFrameReader(Roomy, null);

        reader.Append(frame.AsSpan(0, 7), TimeSpan.Zero);
        reader.Complete();

        var captured = Assert.Single(reader.Messages);
        Assert.Equal(new byte[] { 1, 2 }, captured.Payload.ToArray());
        Assert.True(captured.Truncated);
        Assert.True(reader.Truncated);
    }

    [Fact]
    public void Append_MessageStartingLateInAChunk_TakesTheTimeItsFirstByteArrived()
    {
        var frames = Frame([1]).Concat(Frame([2, 2])).ToArray();
        using var reader = new GrpcFrameReader(Roomy, null);

        reader.Append(frames.AsSpan(0, 8), TimeSpan.FromMilliseconds(10));
        reader.Append(frames.AsSpan(8), TimeSpan.FromMilliseconds(25));
        reader.Complete();

        Assert.Equal([TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(10)], reader.Messages.Select(m => m.Offset));

        using var later = new GrpcFrameReader(Roomy, null);
        later.Append(frames.AsSpan(0, 6), TimeSpan.FromMilliseconds(10));
        later.Append(frames.AsSpan(6), TimeSpan.FromMilliseconds(25));
        later.Complete();

        Assert.Equal([TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(25)], later.Messages.Select(m => m.Offset));
    }

    [Fact]
    public void ResolveFrom_CallerKeepsTheStream_MessagesAreSlicesOfItsCopyAtEveryCut()
    {
        var first = new OrderReply { OrderId = "ord-1", TotalCents = 1234 }.ToByteArray();
        var second = new OrderReply { OrderId = "ord-2" }.ToByteArray();
        var stream = Frame(first).Concat(Frame(second)).Concat(Frame([])).ToArray();

        for (var cut = 0; cut <= stream.Length; cut++)
        {
            using var reader = new GrpcFrameReader(Roomy, null, callerKeepsStream: true);
            reader.Append(stream.AsSpan(0, cut), TimeSpan.Zero, stream.AsSpan(0, cut));
            reader.Append(stream.AsSpan(cut), TimeSpan.Zero, stream);
            Assert.Throws<InvalidOperationException>(() => reader.Messages);

            var final = stream.ToArray();
            reader.ResolveFrom(final);
            reader.Complete();

            Assert.Equal([first, second, []], reader.Messages.Select(m => m.Payload.ToArray()));
            Assert.Equal([0, 1, 2], reader.Messages.Select(m => m.Index));
            Assert.All(reader.Messages, m => Assert.False(m.Truncated));
            Assert.False(reader.Truncated);

            // No second copy: the first message is the caller's bytes after its frame header.
            Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(reader.Messages[0].Payload, out var segment));
            Assert.Same(final, segment.Array);
            Assert.Equal(5, segment.Offset);
        }
    }

    [Fact]
    public void Append_CallerStopsKeepingInsideAMessage_TheReaderCopiesItAndTheRestWhole()
    {
        var first = Enumerable.Range(0, 40).Select(i => (byte)i).ToArray();
        var second = new byte[] { 9, 8, 7 };
        var stream = Frame(first).Concat(Frame(second)).ToArray();
        using var reader = new GrpcFrameReader(Roomy, null, callerKeepsStream: true);

        // The caller's copy ends 20 bytes into the first message (its capture limit).
        reader.Append(stream.AsSpan(0, 15), TimeSpan.Zero, stream.AsSpan(0, 15));
        reader.Append(stream.AsSpan(15), TimeSpan.Zero, stream.AsSpan(0, 25));
        var callersCopy = stream.AsSpan(0, 25).ToArray();
        reader.Detach(callersCopy);
        Array.Clear(callersCopy);
        reader.Complete();

        Assert.Equal([first, second], reader.Messages.Select(m => m.Payload.ToArray()));
        Assert.False(reader.Truncated);
    }

    [Fact]
    public void Append_CallerStopsKeepingInsideAMessage_ItsCopyIsARentedArrayTheExchangeHolds()
    {
        // A message the caller's limit cut (a 64 KiB body holds 5 bytes less of a 64 KiB message than
        // the list keeps) is copied into a rented array, which the exchange holds as a lease.
        var first = Enumerable.Range(0, 40).Select(i => (byte)i).ToArray();
        var stream = Frame(first);
        using var reader = new GrpcFrameReader(Roomy, null, callerKeepsStream: true);
        reader.Append(stream.AsSpan(0, 25), TimeSpan.Zero, stream.AsSpan(0, 25));
        reader.Append(stream.AsSpan(25), TimeSpan.Zero, stream.AsSpan(0, 25));
        reader.Detach(stream.AsSpan(0, 25));
        reader.Complete();

        var lease = Assert.Single(reader.TakeLeases());
        Assert.Empty(reader.TakeLeases());
        var payload = Assert.Single(reader.Messages).Payload;
        Assert.Equal(first, payload.ToArray());
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(payload, out var segment));
        Assert.Equal(lease.Length, segment.Array!.Length);
        Assert.Equal(first.Length, lease.Counted);

        // The exchange's export estimate counts the payload with its list: only the array's unused part is slack.
        var exchange = new SpIstio.Core.Model.Exchange();
        exchange.HoldBodyArray(lease);
        Assert.Equal(lease.Length - first.Length, exchange.BodyArraySlack);
        exchange.ReturnBodyArrays();
        Assert.True(lease.Returned);
    }

    [Fact]
    public void Append_CallerStopsKeepingInsideALargeMessage_ItsArrayComesFromAndGoesBackToTheCapturesPool()
    {
        // A 20,000-byte message the caller's copy holds only 16 KiB of: its copy is rented from the
        // capture's pool, and once the exchange is done the pool keeps the array for the next one
        // instead of the shared pool (which holds only a few of a size a core) dropping it.
        var message = Enumerable.Range(0, 20_000).Select(i => (byte)i).ToArray();
        var stream = Frame(message);
        var pool = new SpIstio.Core.Capture.CaptureByteBudget(1 << 20).Arrays;
        using var reader = new GrpcFrameReader(new GrpcCaptureLimits(65_536, 10, 1 << 20), null, callerKeepsStream: true, pool);
        var kept = stream.AsSpan(0, 16_384);
        reader.Append(kept, TimeSpan.Zero, kept);
        reader.Append(stream.AsSpan(kept.Length), TimeSpan.Zero, kept);
        reader.Detach(kept);
        reader.Complete();

        Assert.Equal(message, Assert.Single(reader.Messages).Payload.ToArray());
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(Assert.Single(reader.Messages).Payload, out var segment));
        var exchange = new SpIstio.Core.Model.Exchange();
        exchange.HoldBodyArray(Assert.Single(reader.TakeLeases()));
        Assert.Equal(0, pool.KeptBytes);
        exchange.ReturnBodyArrays();

        Assert.Equal(segment.Array!.Length, pool.KeptBytes);
        Assert.Same(segment.Array, pool.Rent(message.Length));
    }

    [Fact]
    public void Detach_MessageStillBeingRead_KeepsItsBytesAfterTheCallersCopyIsGone()
    {
        var message = Enumerable.Range(0, 30).Select(i => (byte)(i + 1)).ToArray();
        var stream = Frame(message);
        using var reader = new GrpcFrameReader(Roomy, null, callerKeepsStream: true);

        reader.Append(stream.AsSpan(0, 20), TimeSpan.Zero, stream.AsSpan(0, 20));
        var callersCopy = stream.AsSpan(0, 20).ToArray();
        reader.Detach(callersCopy);
        Array.Clear(callersCopy);
        reader.Append(stream.AsSpan(20), TimeSpan.Zero);
        reader.Complete();

        Assert.Equal(message, Assert.Single(reader.Messages).Payload.ToArray());
        Assert.False(reader.Truncated);
    }

    [Fact]
    public void ResolveFrom_CompressedMessage_IsInflatedIntoItsOwnArray()
    {
        var message = new OrderReply { OrderId = "ord-9", TotalCents = 99 }.ToByteArray();
        var stream = Frame(Gzip(message), compressed: true).Concat(Frame([4, 2])).ToArray();
        using var reader = new GrpcFrameReader(Roomy, "gzip", callerKeepsStream: true);

        reader.Append(stream, TimeSpan.Zero, stream);
        reader.ResolveFrom(stream);
        reader.Complete();

        Assert.Equal([message, [4, 2]], reader.Messages.Select(m => m.Payload.ToArray()));
        Assert.True(reader.Messages[0].Decoded);
    }

    internal static byte[] Frame(byte[] message, bool compressed = false)
    {
        var frame = new byte[5 + message.Length];
        frame[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
        message.CopyTo(frame, 5);
        return frame;
    }

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
        {
            gzip.Write(data);
        }

        return output.ToArray();
    }
}
