namespace SpIstio.Core.Streams;

/// <summary>
/// What one captured stream (the events of a server-sent event response, the messages of a
/// WebSocket in both directions) may make the capture hold.
/// </summary>
/// <param name="MaxEvents">Events or messages kept; later ones are counted, not kept.</param>
/// <param name="MaxEventBytes">Bytes kept of one event's data or one message's payload.</param>
/// <param name="MaxStreamBytes">Bytes kept over all events or messages of the stream.</param>
public sealed record StreamCaptureLimits(int MaxEvents, int MaxEventBytes, long MaxStreamBytes)
{
    /// <summary>
    /// 500 events, 64 KiB each (the body capture limit's default), 1 MiB in all: the opening of
    /// a long-lived stream, bounded however long it lives.
    /// </summary>
    public static StreamCaptureLimits Default { get; } = new(500, 64 * 1024, 1024 * 1024);

    /// <summary>Bytes one event or message may keep, given what the stream has kept so far and how many it kept.</summary>
    internal int KeepLimit(int keptCount, long keptBytes) =>
        keptCount >= MaxEvents ? 0 : (int)Math.Max(0, Math.Min(MaxEventBytes, MaxStreamBytes - keptBytes));
}
