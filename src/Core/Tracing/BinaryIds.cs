using System.Buffers.Binary;
using System.Diagnostics;

namespace SpIstio.Core.Tracing;

/// <summary>
/// Trace and span ids as numbers: the 16 (8) bytes of the W3C id read big-endian, zero for "none".
/// The capture path keeps ids this way from where they are made to the span encoder, which writes
/// the same bytes; <see cref="ActivityTraceId"/> holds a hex string instead, which cost two string
/// allocations an exchange and a parse back at encode (issue 13). The hex is made only for the
/// forwarded <c>traceparent</c> and for readers that want text.
/// </summary>
public static class BinaryIds
{
    /// <summary>A random non-zero trace id (all 16 bytes random, as the level-2 random flag promises).</summary>
    public static UInt128 NewTraceId()
    {
        Span<byte> bytes = stackalloc byte[16];
        UInt128 id;
        do
        {
            Random.Shared.NextBytes(bytes);
            id = BinaryPrimitives.ReadUInt128BigEndian(bytes);
        }
        while (id == UInt128.Zero);

        return id;
    }

    /// <summary>A random non-zero span id.</summary>
    public static ulong NewSpanId()
    {
        Span<byte> bytes = stackalloc byte[8];
        ulong id;
        do
        {
            Random.Shared.NextBytes(bytes);
            id = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        }
        while (id == 0);

        return id;
    }

    /// <summary>The id's value; zero for <c>default</c>.</summary>
    public static UInt128 FromTraceId(ActivityTraceId traceId)
    {
        if (traceId == default)
        {
            return UInt128.Zero;
        }

        Span<byte> bytes = stackalloc byte[16];
        traceId.CopyTo(bytes);
        return BinaryPrimitives.ReadUInt128BigEndian(bytes);
    }

    /// <summary>The id's value; zero for <c>default</c>.</summary>
    public static ulong FromSpanId(ActivitySpanId spanId)
    {
        if (spanId == default)
        {
            return 0;
        }

        Span<byte> bytes = stackalloc byte[8];
        spanId.CopyTo(bytes);
        return BinaryPrimitives.ReadUInt64BigEndian(bytes);
    }

    /// <summary>The id as an <see cref="ActivityTraceId"/> (allocates its hex string); <c>default</c> for zero.</summary>
    public static ActivityTraceId ToTraceId(UInt128 value)
    {
        if (value == UInt128.Zero)
        {
            return default;
        }

        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, value);
        return ActivityTraceId.CreateFromBytes(bytes);
    }

    /// <summary>The id as an <see cref="ActivitySpanId"/> (allocates its hex string); <c>default</c> for zero.</summary>
    public static ActivitySpanId ToSpanId(ulong value)
    {
        if (value == 0)
        {
            return default;
        }

        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        return ActivitySpanId.CreateFromBytes(bytes);
    }

    /// <summary>Writes the id's 32 lower-case hex chars.</summary>
    public static void WriteHex(UInt128 traceId, Span<char> destination)
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, traceId);
        Convert.TryToHexStringLower(bytes, destination, out _);
    }

    /// <summary>Writes the id's 16 lower-case hex chars.</summary>
    public static void WriteHex(ulong spanId, Span<char> destination)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, spanId);
        Convert.TryToHexStringLower(bytes, destination, out _);
    }
}
