using System.Net.WebSockets;
using System.Text;
using SpIstio.Core.Streams;

namespace SpIstio.Core.Tests.Streams;

public sealed class WebSocketFrameReaderTests
{
    // The BCL's WebSocket (RFC 6455, masking on the client side) writes the frames the reader must read.
    private static async Task<(byte[] Client, byte[] Server)> ConversationAsync()
    {
        using var clientBytes = new MemoryStream();
        using var serverBytes = new MemoryStream();
        using var client = WebSocket.CreateFromStream(clientBytes, new WebSocketCreationOptions { IsServer = false, KeepAliveInterval = TimeSpan.Zero });
        using var server = WebSocket.CreateFromStream(serverBytes, new WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.Zero });
        await client.SendAsync(Encoding.UTF8.GetBytes("hello"), WebSocketMessageType.Text, true, CancellationToken.None);
        await client.SendAsync(Encoding.UTF8.GetBytes("frag-"), WebSocketMessageType.Text, false, CancellationToken.None);
        await client.SendAsync(Encoding.UTF8.GetBytes("mented"), WebSocketMessageType.Text, true, CancellationToken.None);
        await client.SendAsync(new byte[300], WebSocketMessageType.Binary, true, CancellationToken.None);
        await server.SendAsync(Encoding.UTF8.GetBytes("héllo back"), WebSocketMessageType.Text, true, CancellationToken.None);
        await server.SendAsync(new byte[70_000], WebSocketMessageType.Binary, true, CancellationToken.None);
        await client.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        await server.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
        return (clientBytes.ToArray(), serverBytes.ToArray());
    }

    public static TheoryData<int> ChunkSizes => [1, 2, 3, 7, 13, 4096, 1 << 20];

    [Theory]
    [MemberData(nameof(ChunkSizes))]
    public async Task Messages_OfBothDirections_AtAnyChunking(int chunk)
    {
        var (sent, received) = await ConversationAsync();
        using var reader = new WebSocketFrameReader(new StreamCaptureLimits(100, 100_000, 1_000_000));
        Feed(reader, WebSocketDirection.Send, sent, chunk);
        Feed(reader, WebSocketDirection.Receive, received, chunk);
        reader.Complete();

        Assert.True(reader.Closed);
        Assert.False(reader.Truncated);
        Assert.Equal(7, reader.MessageCount);
        Assert.Collection(
            reader.Messages,
            m => Assert.Equal((WebSocketDirection.Send, WebSocketOpcode.Text, "hello"), (m.Direction, m.Opcode, m.Text)),
            m => Assert.Equal((WebSocketOpcode.Text, "frag-mented", 11L), (m.Opcode, m.Text, m.Size)),
            m => Assert.Equal((WebSocketOpcode.Binary, 300L, 300), (m.Opcode, m.Size, m.Payload.Length)),
            m => Assert.Equal((WebSocketDirection.Send, WebSocketOpcode.Close, 1000, "done"), (m.Direction, m.Opcode, m.CloseCode!.Value, m.Text)),
            m => Assert.Equal((WebSocketDirection.Receive, "héllo back"), (m.Direction, m.Text)),
            m => Assert.Equal((WebSocketOpcode.Binary, 70_000L, true), (m.Opcode, m.Size, m.Payload.Span.IndexOfAnyExcept((byte)0) < 0)),
            m => Assert.Equal((WebSocketOpcode.Close, "bye"), (m.Opcode, m.Text)));
    }

    [Fact]
    public void ControlFrames_InsideAFragmentedMessage_AreTheirOwnEntries()
    {
        using var reader = new WebSocketFrameReader(StreamCaptureLimits.Default);
        reader.Append(WebSocketDirection.Receive, [0x01, 0x02, (byte)'a', (byte)'b'], TimeSpan.FromMilliseconds(1));
        reader.Append(WebSocketDirection.Receive, [0x89, 0x01, (byte)'p'], TimeSpan.FromMilliseconds(2));
        reader.Append(WebSocketDirection.Receive, [0x80, 0x01, (byte)'c'], TimeSpan.FromMilliseconds(3));

        Assert.Collection(
            reader.Messages,
            m => Assert.Equal((WebSocketOpcode.Ping, "cA=="), (m.Opcode, Convert.ToBase64String(m.Payload.Span))),
            m => Assert.Equal((WebSocketOpcode.Text, "abc", TimeSpan.FromMilliseconds(1)), (m.Opcode, m.Text, m.Offset)));
    }

    [Fact]
    public void Limits_CutPayloadsAndDropMessagesPastTheCount()
    {
        using var reader = new WebSocketFrameReader(new StreamCaptureLimits(MaxEvents: 2, MaxEventBytes: 3, MaxStreamBytes: 100));
        reader.Append(WebSocketDirection.Receive, [0x81, 0x05, .. "abcde"u8, 0x82, 0x01, 0x07, 0x81, 0x01, (byte)'z'], TimeSpan.Zero);

        Assert.Equal(3, reader.MessageCount);
        Assert.True(reader.Truncated);
        Assert.Equal(("abc", 5L, true), (reader.Messages[0].Text, reader.Messages[0].Size, reader.Messages[0].Truncated));
        Assert.Equal(2, reader.Messages.Count);
    }

    [Fact]
    public void BrokenFraming_StopsFollowingThatDirection()
    {
        using var reader = new WebSocketFrameReader(StreamCaptureLimits.Default);
        reader.Append(WebSocketDirection.Send, [0x83, 0x00, 0x81, 0x01, (byte)'x'], TimeSpan.Zero);
        reader.Append(WebSocketDirection.Receive, [0x81, 0x01, (byte)'y'], TimeSpan.Zero);

        Assert.True(reader.Truncated);
        var only = Assert.Single(reader.Messages);
        Assert.Equal((WebSocketDirection.Receive, "y"), (only.Direction, only.Text));
    }

    [Fact]
    public void Complete_KeepsAMessageCutByTheEndAsTruncated()
    {
        using var reader = new WebSocketFrameReader(StreamCaptureLimits.Default);
        reader.Append(WebSocketDirection.Receive, [0x81, 0x05, .. "ab"u8], TimeSpan.Zero);
        reader.Complete();

        var only = Assert.Single(reader.Messages);
        Assert.Equal(("ab", 2L, true), (only.Text, only.Size, only.Truncated));
    }

    private static void Feed(WebSocketFrameReader reader, WebSocketDirection direction, byte[] bytes, int chunk)
    {
        for (var at = 0; at < bytes.Length; at += chunk)
        {
            reader.Append(direction, bytes.AsSpan(at, Math.Min(chunk, bytes.Length - at)), TimeSpan.FromMilliseconds(at));
        }
    }
}
