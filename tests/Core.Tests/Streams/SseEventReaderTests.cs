using System.Net.ServerSentEvents;
using System.Text;
using SpIstio.Core.Streams;

namespace SpIstio.Core.Tests.Streams;

public sealed class SseEventReaderTests
{
    // The BCL's SSE parser (System.Net.ServerSentEvents) is the oracle for what the events are.
    private const string Stream =
        "\uFEFF: a comment\n" +
        "retry: 1000\n" +
        "data: first\n\n" +
        "id: 7\r\nevent: update\r\ndata: {\"a\":1}\r\ndata:second line\r\n\r\n" +
        "data\n\n" +
        "id\rdata: cr only\r\r" +
        "unknown: field\ndata:  two spaces\n\n";

    public static TheoryData<int> ChunkSizes => [1, 2, 3, 5, 7, 64, 4096];

    [Theory]
    [MemberData(nameof(ChunkSizes))]
    public void Events_MatchTheBclParser_AtAnyChunking(int chunk)
    {
        var bytes = Encoding.UTF8.GetBytes(Stream);
        using var reader = new SseEventReader(StreamCaptureLimits.Default);
        for (var at = 0; at < bytes.Length; at += chunk)
        {
            reader.Append(bytes.AsSpan(at, Math.Min(chunk, bytes.Length - at)), TimeSpan.FromMilliseconds(at));
        }

        reader.Complete();

        var expected = SseParser.Create(new MemoryStream(bytes)).Enumerate().ToList();
        Assert.Equal(expected.Count, reader.EventCount);
        Assert.Equal(expected.Select(e => e.Data), reader.Events.Select(e => e.Data));
        Assert.Equal(expected.Select(e => e.EventType), reader.Events.Select(e => e.Event ?? "message"));
        Assert.False(reader.Truncated);
        Assert.Equal("7", reader.Events[1].Id);
        Assert.Equal("", reader.Events[3].Id);
        Assert.Null(reader.Events[0].Id);
        Assert.Equal(Encoding.UTF8.GetByteCount("{\"a\":1}\nsecond line"), reader.Events[1].Size);
    }

    [Fact]
    public void AnEventWithoutData_IsNotDispatched_AndItsTypeDoesNotCarryOver()
    {
        // HTML §9.2.6: "If the data buffer is an empty string, set the data buffer and the event
        // type buffer to the empty string and return." (the BCL parser keeps the type; we follow the standard).
        using var reader = new SseEventReader(StreamCaptureLimits.Default);
        reader.Append("event: only-a-type\n\ndata: x\n\n"u8, TimeSpan.Zero);

        var only = Assert.Single(reader.Events);
        Assert.Equal((0, (string?)null, "x"), (only.Index, only.Event, only.Data));
    }

    [Fact]
    public void Offset_IsWhenTheEventsFirstFieldArrived()
    {
        using var reader = new SseEventReader(StreamCaptureLimits.Default);
        reader.Append("data: a\n"u8, TimeSpan.FromMilliseconds(5));
        reader.Append("\n: keep-alive\n\n"u8, TimeSpan.FromMilliseconds(9));
        reader.Append("data: b\n\n"u8, TimeSpan.FromMilliseconds(20));

        Assert.Equal([TimeSpan.FromMilliseconds(5), TimeSpan.FromMilliseconds(20)], reader.Events.Select(e => e.Offset));
    }

    [Fact]
    public void Limits_CutEventsAndDropThemPastTheCount_ButKeepCounting()
    {
        using var reader = new SseEventReader(new StreamCaptureLimits(MaxEvents: 2, MaxEventBytes: 4, MaxStreamBytes: 100));
        reader.Append("data: 123456\n\ndata: ab\n\ndata: dropped\n\ndata: also\n\n"u8, TimeSpan.Zero);
        reader.Complete();

        Assert.Equal(4, reader.EventCount);
        Assert.True(reader.Truncated);
        Assert.Collection(
            reader.Events,
            e => Assert.Equal(("1234", 6L, true), (e.Data, e.Size, e.Truncated)),
            e => Assert.Equal(("ab", 2L, false), (e.Data, e.Size, e.Truncated)));
    }

    [Fact]
    public void StreamBudget_BoundsAllEventsTogether()
    {
        using var reader = new SseEventReader(new StreamCaptureLimits(MaxEvents: 100, MaxEventBytes: 1000, MaxStreamBytes: 10));
        reader.Append("data: 12345678\n\ndata: abcdef\n\ndata: x\n\n"u8, TimeSpan.Zero);

        Assert.Equal(["12345678", "ab", ""], reader.Events.Select(e => e.Data));
        Assert.True(reader.Events[1].Truncated);
        Assert.True(reader.Events[2].Truncated);
    }

    [Fact]
    public void LongLines_AreNeverHeldWhole()
    {
        // A 10 MB data line costs the event's limit, not 10 MB: the reader keeps nothing past it.
        using var reader = new SseEventReader(new StreamCaptureLimits(10, 16, 1000));
        reader.Append("data: "u8, TimeSpan.Zero);
        var block = new byte[64 * 1024];
        block.AsSpan().Fill((byte)'x');
        for (var i = 0; i < 160; i++)
        {
            reader.Append(block, TimeSpan.Zero);
        }

        reader.Append("\n\n"u8, TimeSpan.Zero);

        var only = Assert.Single(reader.Events);
        Assert.Equal(new string('x', 16), only.Data);
        Assert.Equal(160L * block.Length, only.Size);
    }

    [Fact]
    public void Complete_KeepsAnEventCutByTheEndAsTruncated()
    {
        using var reader = new SseEventReader(StreamCaptureLimits.Default);
        reader.Append("data: whole\n\nid: 2\ndata: par"u8, TimeSpan.Zero);
        reader.Complete();

        Assert.Equal(2, reader.EventCount);
        Assert.Equal(("par", "2", true), (reader.Events[1].Data, reader.Events[1].Id, reader.Events[1].Truncated));
        Assert.True(reader.Truncated);
    }
}
