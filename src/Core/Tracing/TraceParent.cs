using System.Buffers.Binary;
using System.Diagnostics;

namespace SpIstio.Core.Tracing;

/// <summary>
/// A W3C <c>traceparent</c> header value (https://www.w3.org/TR/trace-context/#traceparent-header):
/// <c>00-&lt;32 hex trace id&gt;-&lt;16 hex parent id&gt;-&lt;2 hex flags&gt;</c>.
/// </summary>
public readonly struct TraceParent : IEquatable<TraceParent>
{
    /// <summary>The header name.</summary>
    public const string HeaderName = "traceparent";

    /// <summary>Length of a version-00 value.</summary>
    public const int Length = 55;

    /// <summary>The <c>sampled</c> flag (bit 0).</summary>
    public const byte SampledFlag = 0x01;

    /// <summary>The level-2 <c>random</c> flag (bit 1): the trace id's right 7 bytes are random.</summary>
    public const byte RandomFlag = 0x02;

    /// <summary>Creates a value; <paramref name="flags"/> is written as it is.</summary>
    public TraceParent(ActivityTraceId traceId, ActivitySpanId spanId, byte flags, byte version = 0)
        : this(BinaryIds.FromTraceId(traceId), BinaryIds.FromSpanId(spanId), flags, version)
    {
    }

    /// <summary>Creates a value from binary ids (<see cref="BinaryIds"/>); <paramref name="flags"/> is written as it is.</summary>
    public TraceParent(UInt128 traceId, ulong spanId, byte flags, byte version = 0)
    {
        BinaryTraceId = traceId;
        BinarySpanId = spanId;
        Flags = flags;
        Version = version;
    }

    /// <summary>The version read from the header; <see cref="ToString"/> always writes 00, the only version this code knows.</summary>
    public byte Version { get; }

    /// <summary>The trace id as a number (<see cref="BinaryIds"/>).</summary>
    public UInt128 BinaryTraceId { get; }

    /// <summary>The span id of the sender (the parent of whoever receives this header) as a number.</summary>
    public ulong BinarySpanId { get; }

    /// <summary>The trace id (its hex string made at each read).</summary>
    public ActivityTraceId TraceId => BinaryIds.ToTraceId(BinaryTraceId);

    /// <summary>The span id of the sender (its hex string made at each read).</summary>
    public ActivitySpanId SpanId => BinaryIds.ToSpanId(BinarySpanId);

    /// <summary>The trace flags.</summary>
    public byte Flags { get; }

    /// <summary>True when the sender recorded (or may have recorded) the trace.</summary>
    public bool Sampled => (Flags & SampledFlag) != 0;

    /// <summary>
    /// Parses a header value per the spec: lower-case hex only, all-zero ids and version ff refused,
    /// version 00 exactly 55 characters. A higher version is parsed by its version-00 prefix when
    /// the prefix is well formed and is followed by the end or a '-' (§3.2.4, "Versioning of
    /// traceparent"), so a future sender still continues the trace.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> value, out TraceParent traceParent)
    {
        traceParent = default;

        // Surrounding optional whitespace is not part of the field value (RFC 9110 §5.5).
        value = value.Trim(" \t");
        if (value.Length < Length)
        {
            return false;
        }

        if (!TryParseHexByte(value[0], value[1], out var version) || version == 0xff)
        {
            return false;
        }

        if (version == 0 ? value.Length != Length : value.Length > Length && value[Length] != '-')
        {
            return false;
        }

        if (value[2] != '-' || value[35] != '-' || value[52] != '-')
        {
            return false;
        }

        var traceIdHex = value.Slice(3, 32);
        var spanIdHex = value.Slice(36, 16);
        if (!IsLowerHexNotAllZeros(traceIdHex) || !IsLowerHexNotAllZeros(spanIdHex)
            || !TryParseHexByte(value[53], value[54], out var flags))
        {
            return false;
        }

        // Checked as lower hex above, so the conversions cannot fail.
        Span<byte> ids = stackalloc byte[24];
        Convert.FromHexString(traceIdHex, ids[..16], out _, out _);
        Convert.FromHexString(spanIdHex, ids[16..], out _, out _);
        traceParent = new TraceParent(
            BinaryPrimitives.ReadUInt128BigEndian(ids),
            BinaryPrimitives.ReadUInt64BigEndian(ids[16..]),
            flags,
            version);
        return true;
    }

    /// <summary>The version-00 header value.</summary>
    public override string ToString() =>
        string.Create(Length, this, static (span, tp) =>
        {
            "00-".CopyTo(span);
            BinaryIds.WriteHex(tp.BinaryTraceId, span.Slice(3, 32));
            span[35] = '-';
            BinaryIds.WriteHex(tp.BinarySpanId, span.Slice(36, 16));
            span[52] = '-';
            span[53] = HexChar(tp.Flags >> 4);
            span[54] = HexChar(tp.Flags & 0xf);
        });

    /// <inheritdoc />
    public bool Equals(TraceParent other) =>
        BinaryTraceId == other.BinaryTraceId && BinarySpanId == other.BinarySpanId && Flags == other.Flags && Version == other.Version;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is TraceParent other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(BinaryTraceId, BinarySpanId, Flags, Version);

    /// <summary>Value equality.</summary>
    public static bool operator ==(TraceParent left, TraceParent right) => left.Equals(right);

    /// <summary>Value inequality.</summary>
    public static bool operator !=(TraceParent left, TraceParent right) => !left.Equals(right);

    internal static bool IsLowerHexNotAllZeros(ReadOnlySpan<char> hex)
    {
        var allZeros = true;
        foreach (var c in hex)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return false;
            }

            allZeros &= c == '0';
        }

        return !allZeros;
    }

    private static bool TryParseHexByte(char high, char low, out byte value)
    {
        var h = LowerHexValue(high);
        var l = LowerHexValue(low);
        value = (byte)((h << 4) | l);
        return h >= 0 && l >= 0;
    }

    private static int LowerHexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        _ => -1,
    };

    private static char HexChar(int nibble) => (char)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
}
