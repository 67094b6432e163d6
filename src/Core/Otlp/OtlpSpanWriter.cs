using System.Buffers;
using System.Buffers.Binary;
using System.Buffers.Text;
using System.Numerics;
using System.Text;
using System.Text.Unicode;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;

namespace SpIstio.Core.Otlp;

/// <summary>
/// Encodes a batch of exchanges as the protobuf bytes of the <c>ExportTraceServiceRequest</c> that
/// <see cref="ExchangeSpanMapper.ToExportRequest"/> builds, without building it: captured UTF-8
/// bodies go to the wire as they are instead of through a .NET string, and nothing is allocated
/// per exchange beyond one pooled buffer per batch.
/// </summary>
/// <remarks>
/// The agent encodes spans only here (exports and cache lookups): <see cref="EmitSpan"/> is the
/// span-attribute table of record, so adding an attribute is one edit there.
/// <see cref="ExchangeSpanMapper.ToSpan"/> is the independent reference (the test oracle): tests
/// parse these bytes and require exactly its message, so a change here that the reference does not
/// make on purpose fails. Sizes are measured first (one pass over the exchanges) so that every
/// length prefix is written before its message, exactly where the generated code puts it.
/// </remarks>
public static class OtlpSpanWriter
{
    // Wire types.
    private const int WireVarint = 0;
    private const int WireFixed64 = 1;
    private const int Len = 2;
    private const int WireFixed32 = 5;

    // ExportTraceServiceRequest / ResourceSpans / ScopeSpans / Resource / InstrumentationScope fields.
    private const int RequestResourceSpans = 1;
    private const int ResourceSpansResource = 1;
    private const int ResourceSpansScopeSpans = 2;
    private const int ResourceAttributes = 1;
    private const int ScopeSpansScope = 1;
    private const int ScopeSpansSpans = 2;
    private const int ScopeName = 1;
    private const int ScopeVersion = 2;

    // Span fields.
    private const int SpanTraceId = 1;
    private const int SpanSpanId = 2;
    private const int SpanParentSpanId = 4;
    private const int SpanName = 5;
    private const int SpanKind = 6;
    private const int SpanStart = 7;
    private const int SpanEnd = 8;
    private const int SpanAttributes = 9;
    private const int SpanStatus = 15;
    private const int SpanFlags = 16;

    // Status, KeyValue, AnyValue, ArrayValue fields.
    private const int StatusMessage = 2;
    private const int StatusCode = 3;
    private const int KeyValueKey = 1;
    private const int KeyValueValue = 2;
    private const int AnyString = 1;
    private const int AnyBool = 2;
    private const int AnyInt = 3;
    private const int AnyDouble = 4;
    private const int AnyArray = 5;
    private const int AnyKvlist = 6;
    private const int AnyBytes = 7;
    private const int ArrayValues = 1;
    private const int KeyValueListValues = 1;

    private const ulong KindServer = 2;
    private const ulong KindClient = 3;
    private const ulong StatusCodeError = 2;
    private const uint SampledFlag = 0x01;

    /// <summary>
    /// Writes the request for <paramref name="exchanges"/> to <paramref name="destination"/> in one
    /// write; the same bytes as <c>ToExportRequest(exchanges, publicKey, scopeVersion).WriteTo(destination)</c>.
    /// </summary>
    public static void Write(IReadOnlyList<Exchange> exchanges, string? publicKey, string scopeVersion, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var buffer = Encode(exchanges, publicKey, scopeVersion, exact: false, allocate: null, out var length);
        try
        {
            destination.Write(buffer, 0, length);
        }
        finally
        {
            if (IsPooled(length))
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>The request for <paramref name="exchanges"/> as a new array (see <see cref="Write"/>).</summary>
    public static byte[] ToByteArray(IReadOnlyList<Exchange> exchanges, string? publicKey, string scopeVersion)
    {
        // Measured first, so the array is exactly the request: no copy, nothing pooled.
        return Encode(exchanges, publicKey, scopeVersion, exact: true, allocate: null, out _);
    }

    /// <summary>
    /// The request for <paramref name="exchanges"/> in the first <paramref name="length"/> bytes of
    /// the array <paramref name="allocate"/> gives for that length (at least that long), so a caller
    /// can reuse large arrays instead of putting a new one on the large object heap per batch.
    /// </summary>
    public static byte[] ToArray(IReadOnlyList<Exchange> exchanges, string? publicKey, string scopeVersion, Func<int, byte[]> allocate, out int length)
    {
        ArgumentNullException.ThrowIfNull(allocate);
        return Encode(exchanges, publicKey, scopeVersion, exact: false, allocate, out length);
    }

    /// <summary>
    /// Measures the span <paramref name="exchange"/> becomes (the Span message's bytes, without the
    /// tag and length its batch puts before it), for <see cref="WriteSpan"/> to write. An exporter
    /// that encodes each exchange when it is queued holds these bytes instead of the exchange, so
    /// the exchange's objects die young (issue 13: queued exchanges survived gen0 and were copied).
    /// </summary>
    public static MeasuredSpan MeasureSpan(Exchange exchange, string? publicKey)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        var flags = TextFlags(exchange);
        var measure = new Measure();
        EmitSpan(ref measure, exchange, string.IsNullOrEmpty(publicKey) ? null : publicKey, flags);
        return new MeasuredSpan(checked((int)measure.Size), flags);
    }

    /// <summary>
    /// Writes the span <paramref name="measured"/> describes into <paramref name="destination"/> at
    /// <paramref name="offset"/> (<see cref="MeasuredSpan.Length"/> bytes; the same bytes
    /// <see cref="ToArray"/> writes for it inside a batch).
    /// </summary>
    /// <remarks>
    /// Given <paramref name="deferred"/>, a UTF-8 body of at least <see cref="DeferredBytes.MinBytes"/>
    /// is not copied: its place is left as a gap, recorded there.
    /// </remarks>
    /// <exception cref="InvalidOperationException">The exchange changed since it was measured.</exception>
    public static void WriteSpan(Exchange exchange, string? publicKey, MeasuredSpan measured, byte[] destination, int offset, DeferredBytes? deferred = null)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(measured.Length, destination.Length - offset);
        var writer = new Writer(destination, offset, deferred: deferred);
        EmitSpan(ref writer, exchange, string.IsNullOrEmpty(publicKey) ? null : publicKey, measured.TextFlags);
        if (writer.Position - offset != measured.Length)
        {
            throw new InvalidOperationException("OTLP span size changed between measuring and writing (was an exchange modified during export?).");
        }
    }

    /// <summary>
    /// Writes the span <paramref name="exchange"/> becomes into <paramref name="destination"/> from
    /// <paramref name="offset"/> in one pass, without measuring it first: the same bytes as
    /// <see cref="MeasureSpan"/> then <see cref="WriteSpan"/>. Every length prefix inside a span
    /// belongs to one field whose size is known when it is written, so only the span's own length
    /// needs the whole span, and that is what <paramref name="written"/> returns. False when the span
    /// may not fit before <paramref name="limit"/> (the bytes written are then incomplete; measure it
    /// instead): a field is written only when an upper bound of its size fits.
    /// </summary>
    public static bool TryWriteSpan(Exchange exchange, string? publicKey, byte[] destination, int offset, int limit, out MeasuredSpan written)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, destination.Length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, limit);
        var flags = TextFlags(exchange);
        var writer = new Writer(destination, offset, limit);
        EmitSpan(ref writer, exchange, string.IsNullOrEmpty(publicKey) ? null : publicKey, flags);
        written = new MeasuredSpan(writer.Position - offset, flags);
        return !writer.Overflowed;
    }

    /// <summary>
    /// The request for spans written by <see cref="WriteSpan"/>, in the first <paramref name="length"/>
    /// bytes of the array <paramref name="allocate"/> gives: grouped by service name and framed
    /// exactly as <see cref="ToArray"/> frames the exchanges they came from, each span written once by its <see cref="IEncodedSpan.WriteTo"/>.
    /// Given <paramref name="deferred"/>, the spans may leave their large bodies out of the array (see <see cref="DeferredBytes"/>).
    /// </summary>
    public static byte[] ToArray<TSpan>(IReadOnlyList<TSpan> spans, string scopeVersion, Func<int, byte[]> allocate, out int length, DeferredBytes? deferred = null)
        where TSpan : IEncodedSpan
    {
        ArgumentNullException.ThrowIfNull(spans);
        ArgumentNullException.ThrowIfNull(scopeVersion);
        ArgumentNullException.ThrowIfNull(allocate);
        var count = spans.Count;
        var pool = ArrayPool<int>.Shared;
        var groupOf = pool.Rent(Math.Max(count, 1));
        var spanSizes = pool.Rent(Math.Max(count, 1));
        var firsts = pool.Rent(Math.Max(count, 1));
        try
        {
            var serviceNameOf = (int i) => spans[i].ServiceName;
            var groups = 0;
            for (var i = 0; i < count; i++)
            {
                groupOf[i] = AssignGroup(serviceNameOf, i, firsts, ref groups);
                spanSizes[i] = spans[i].Length;
            }

            var scopeSize = StringFieldSize(ScopeName, ExchangeSpanMapper.ScopeName) + StringFieldSize(ScopeVersion, scopeVersion);
            length = RequestLength(serviceNameOf, groups, count, firsts, groupOf, spanSizes, scopeSize);
            var buffer = allocate(length);
            var writer = new Writer(buffer);
            for (var g = 0; g < groups; g++)
            {
                var serviceName = spans[firsts[g]].ServiceName;
                WriteGroupHeader(ref writer, GroupSizes(g, count, groupOf, spanSizes, scopeSize, serviceName), scopeSize, serviceName, scopeVersion);
                for (var i = firsts[g]; i < count; i++)
                {
                    if (groupOf[i] == g)
                    {
                        writer.Tag(ScopeSpansSpans, Len);
                        writer.Raw((ulong)spanSizes[i]);
                        spans[i].WriteTo(buffer, writer.Position, deferred);
                        writer.Advance(spanSizes[i]);
                    }
                }
            }

            if (writer.Position != length)
            {
                throw new InvalidOperationException("OTLP request size does not match its measured size.");
            }

            return buffer;
        }
        finally
        {
            pool.Return(groupOf);
            pool.Return(spanSizes);
            pool.Return(firsts);
        }
    }

    // Requests above this are encoded into an array of their own rather than a pooled one:
    // ArrayPool.Shared keeps what it is given back (per core, per size), so a few multi-MiB export
    // batches would stay resident for the life of the agent (issue 13: 13 of 4 MiB seen in a heap
    // dump of the capture proxy under 64 KiB load).
    private const int MaxPooledBytes = 1024 * 1024;

    private static bool IsPooled(int length) => length <= MaxPooledBytes;

    // The encoded request in the first `length` bytes of the result: an array of exactly that
    // length when `exact`, one from `allocate` when given, otherwise one the caller returns to
    // ArrayPool.Shared when IsPooled(length).
    private static byte[] Encode(IReadOnlyList<Exchange> exchanges, string? publicKey, string scopeVersion, bool exact, Func<int, byte[]>? allocate, out int length)
    {
        length = 0;
        ArgumentNullException.ThrowIfNull(exchanges);
        ArgumentNullException.ThrowIfNull(scopeVersion);
        if (string.IsNullOrEmpty(publicKey))
        {
            publicKey = null;
        }

        var count = exchanges.Count;
        var pool = ArrayPool<int>.Shared;
        var groupOf = pool.Rent(Math.Max(count, 1));
        var spanSizes = pool.Rent(Math.Max(count, 1));
        var firsts = pool.Rent(Math.Max(count, 1));
        var textFlags = ArrayPool<byte>.Shared.Rent(Math.Max(count, 1));
        byte[]? buffer = null;
        try
        {
            // Resources in order of first appearance of their service name, as ToExportRequest groups them.
            var serviceNameOf = (int i) => exchanges[i].ServiceName;
            var groups = 0;
            for (var i = 0; i < count; i++)
            {
                var exchange = exchanges[i];
                groupOf[i] = AssignGroup(serviceNameOf, i, firsts, ref groups);
                textFlags[i] = TextFlags(exchange);
                var measure = new Measure();
                EmitSpan(ref measure, exchange, publicKey, textFlags[i]);
                spanSizes[i] = checked((int)measure.Size);
            }

            var scopeSize = StringFieldSize(ScopeName, ExchangeSpanMapper.ScopeName) + StringFieldSize(ScopeVersion, scopeVersion);
            length = RequestLength(serviceNameOf, groups, count, firsts, groupOf, spanSizes, scopeSize);
            buffer = allocate is not null ? allocate(length)
                : exact || !IsPooled(length) ? new byte[length] : ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
            var writer = new Writer(buffer);
            for (var g = 0; g < groups; g++)
            {
                var serviceName = exchanges[firsts[g]].ServiceName;
                WriteGroupHeader(ref writer, GroupSizes(g, count, groupOf, spanSizes, scopeSize, serviceName), scopeSize, serviceName, scopeVersion);
                for (var i = firsts[g]; i < count; i++)
                {
                    if (groupOf[i] != g)
                    {
                        continue;
                    }

                    writer.Tag(ScopeSpansSpans, Len);
                    writer.Raw((ulong)spanSizes[i]);
                    var start = writer.Position;
                    EmitSpan(ref writer, exchanges[i], publicKey, textFlags[i]);
                    if (writer.Position - start != spanSizes[i])
                    {
                        throw new InvalidOperationException("OTLP span size changed between measuring and writing (was an exchange modified during export?).");
                    }
                }
            }

            if (writer.Position != length)
            {
                throw new InvalidOperationException("OTLP request size does not match its measured size.");
            }

            var result = buffer;
            buffer = null;
            return result;
        }
        finally
        {
            pool.Return(groupOf);
            pool.Return(spanSizes);
            pool.Return(firsts);
            ArrayPool<byte>.Shared.Return(textFlags);
            if (buffer is not null && !exact && allocate is null && IsPooled(length))
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    // The group (resource) of item i: resources in order of first appearance of their service name,
    // as ToExportRequest groups them; firsts[g] is the first item of group g.
    // serviceNameOf(i) is item i's service name (one delegate per batch, not per span).
    private static int AssignGroup(Func<int, string> serviceNameOf, int i, int[] firsts, ref int groups)
    {
        var serviceName = serviceNameOf(i);
        for (var g = 0; g < groups; g++)
        {
            if (string.Equals(serviceNameOf(firsts[g]), serviceName, StringComparison.Ordinal))
            {
                return g;
            }
        }

        firsts[groups] = i;
        return groups++;
    }

    // The encoded request's length: every group's ResourceSpans field, sized by GroupSizes.
    private static int RequestLength(Func<int, string> serviceNameOf, int groups, int count, int[] firsts, int[] groupOf, int[] spanSizes, long scopeSize)
    {
        long total = 0;
        for (var g = 0; g < groups; g++)
        {
            var (resourceSpansSize, _, _) = GroupSizes(g, count, groupOf, spanSizes, scopeSize, serviceNameOf(firsts[g]));
            total += MessageFieldSize(RequestResourceSpans, resourceSpansSize);
        }

        if (total > Array.MaxLength)
        {
            throw new InvalidOperationException("The export batch is too large to encode in one request.");
        }

        return (int)total;
    }

    // One resource's ResourceSpans, Resource and ScopeSpans headers (sizes from GroupSizes), up to
    // where its spans follow; both batch encoders write it, so the framing cannot drift apart.
    private static void WriteGroupHeader(ref Writer writer, (long ResourceSpans, long Resource, long ScopeSpans) sizes, long scopeSize, string serviceName, string scopeVersion)
    {
        writer.Tag(RequestResourceSpans, Len);
        writer.Raw((ulong)sizes.ResourceSpans);
        writer.Tag(ResourceSpansResource, Len);
        writer.Raw((ulong)sizes.Resource);
        writer.KeyValue(ResourceAttributes, new Key(Keys.ResourceServiceName), new Text(serviceName));
        writer.Tag(ResourceSpansScopeSpans, Len);
        writer.Raw((ulong)sizes.ScopeSpans);
        writer.Tag(ScopeSpansScope, Len);
        writer.Raw((ulong)scopeSize);
        writer.String(ScopeName, new Text(ExchangeSpanMapper.ScopeName));
        writer.String(ScopeVersion, new Text(scopeVersion));
    }

    private static (long ResourceSpans, long Resource, long ScopeSpans) GroupSizes(
        int group, int count, int[] groupOf, int[] spanSizes, long scopeSize, string serviceName)
    {
        long scopeSpans = MessageFieldSize(ScopeSpansScope, scopeSize);
        for (var i = 0; i < count; i++)
        {
            if (groupOf[i] == group)
            {
                scopeSpans += MessageFieldSize(ScopeSpansSpans, spanSizes[i]);
            }
        }

        var resource = KeyValueSize(ResourceAttributes, new Key(Keys.ResourceServiceName), StringFieldSize(AnyString, serviceName));
        var resourceSpans = MessageFieldSize(ResourceSpansResource, resource) + MessageFieldSize(ResourceSpansScopeSpans, scopeSpans);
        return (resourceSpans, resource, scopeSpans);
    }

    // Bit 0: the request body goes out as UTF-8 text; bit 1: the response body does (ToSpan's test).
    private static byte TextFlags(Exchange exchange) =>
        (byte)((IsUtf8Text(exchange.RequestBody) ? 1 : 0) | (IsUtf8Text(exchange.ResponseBody) ? 2 : 0));

    // A body BodyCapture already validated is not read again (a second pass over up to the capture limit).
    private static bool IsUtf8Text(CapturedBody body) =>
        body.Kind == BodyKind.Text && (body.IsKnownUtf8 || Utf8.IsValid(body.Content.Span));

    // The span-attribute table of record: the one description of a span's fields, in the generated
    // code's field order (and ExchangeSpanMapper.ToSpan's, the oracle); measured and then written
    // through the same calls.
    private static void EmitSpan<TSink>(ref TSink sink, Exchange exchange, string? publicKey, byte textFlags)
        where TSink : struct, ISink
    {
        var client = exchange.Direction == TrafficDirection.Outbound;
        Span<byte> id = stackalloc byte[16];
        exchange.CopyTraceIdTo(id);
        sink.Bytes(SpanTraceId, id);
        exchange.CopySpanIdTo(id[..8]);
        sink.Bytes(SpanSpanId, id[..8]);
        if (exchange.HasParentSpanId)
        {
            exchange.CopyParentSpanIdTo(id[..8]);
            sink.Bytes(SpanParentSpanId, id[..8]);
        }

        sink.String(SpanName, new Text(exchange.Method, " ", exchange.Path));
        sink.Varint(SpanKind, client ? KindClient : KindServer);
        sink.Fixed64(SpanStart, ExchangeSpanMapper.ToUnixNanos(exchange.StartTime));
        sink.Fixed64(SpanEnd, ExchangeSpanMapper.ToUnixNanos(exchange.EndTime));

        sink.KeyValue(SpanAttributes, new Key(Keys.ServiceName), new Text(exchange.ServiceName));
        sink.KeyValue(SpanAttributes, new Key(Keys.TrafficDirection), new Text(client ? "outbound" : "inbound"));
        sink.KeyValue(
            SpanAttributes,
            new Key(Keys.SpanType),
            new Text(exchange.HasAttributes && exchange.Attributes.TryGetValue(OtlpAttributes.SpanType, out var spanType) ? spanType : OtlpAttributes.SpanTypeExtract));
        if (exchange.SessionId is not null)
        {
            sink.KeyValue(SpanAttributes, new Key(Keys.SessionId), new Text(exchange.SessionId));
        }

        if (publicKey is not null)
        {
            sink.KeyValue(SpanAttributes, new Key(Keys.PublicKey), new Text(publicKey));
        }

        sink.KeyValue(SpanAttributes, new Key(Keys.UrlHost), new Text(exchange.Authority));
        sink.KeyValue(SpanAttributes, new Key(Keys.UrlPath), new Text(exchange.Path));
        if (exchange.Query is not null)
        {
            sink.KeyValue(SpanAttributes, new Key(Keys.UrlQuery), new Text(exchange.Query));
        }

        sink.KeyValue(SpanAttributes, new Key(Keys.UrlScheme), new Text(exchange.Scheme));
        var url = exchange.Query is null
            ? new Text(exchange.Scheme, "://", exchange.Authority, exchange.Path)
            : new Text(exchange.Scheme, "://", exchange.Authority, exchange.Path, "?", exchange.Query);
        sink.KeyValue(SpanAttributes, new Key(Keys.UrlFull), url);
        sink.KeyValue(SpanAttributes, new Key(Keys.HttpRequestMethod), new Text(exchange.Method));
        if (ExchangeSpanMapper.TrySplitAuthoritySpan(exchange.Authority, out var host, out var port))
        {
            sink.KeyValue(SpanAttributes, new Key(Keys.ServerAddress), new Text(host));
            if (port >= 0)
            {
                sink.IntKeyValue(SpanAttributes, new Key(Keys.ServerPort), port);
            }
        }

        EmitHeaders(ref sink, exchange.RequestHeaders, Keys.RequestHeaderPrefix);
        EmitBody(ref sink, exchange.RequestBody, (textFlags & 1) != 0, Keys.RequestBody);

        if (exchange.StatusCode is { } status)
        {
            sink.IntKeyValue(SpanAttributes, new Key(Keys.ResponseStatusCode), status);
        }

        EmitHeaders(ref sink, exchange.ResponseHeaders, Keys.ResponseHeaderPrefix);
        EmitBody(ref sink, exchange.ResponseBody, (textFlags & 2) != 0, Keys.ResponseBody);

        if (exchange.Cache != CacheOutcome.None)
        {
            sink.KeyValue(SpanAttributes, new Key(Keys.Cache), new Text(exchange.Cache == CacheOutcome.Hit ? "hit" : "miss"));
        }

        var outcome = ExchangeSpanMapper.OutcomeName(exchange.Outcome);
        if (outcome is not null)
        {
            sink.KeyValue(SpanAttributes, new Key(Keys.Outcome), new Text(outcome));
        }

        if (exchange.Error is not null)
        {
            sink.KeyValue(SpanAttributes, new Key(Keys.Error), new Text(exchange.Error));
        }

        var errorType = ExchangeSpanMapper.DerivedErrorType(exchange);
        if (errorType is not null)
        {
            sink.KeyValue(SpanAttributes, new Key(Keys.ErrorType), new Text(errorType));
        }

        if (exchange.HasAttributes)
        {
            foreach (var (key, value) in exchange.Attributes)
            {
                if (OtlpAttributes.IsReserved(key)
                    || string.Equals(key, OtlpAttributes.SpanType, StringComparison.Ordinal)
                    || (errorType is not null && string.Equals(key, OtlpAttributes.ErrorType, StringComparison.Ordinal)))
                {
                    continue;
                }

                if (OtlpAttributes.IntegerValue(key, value) is { } number)
                {
                    sink.IntKeyValue(SpanAttributes, new Key([], key), number);
                }
                else
                {
                    sink.KeyValue(SpanAttributes, new Key([], key), new Text(value));
                }
            }
        }

        if (exchange.GrpcCall is { Sealed: true } call)
        {
            sink.MessagesKeyValue(SpanAttributes, new Key(Keys.GrpcRequestMessages), call.Request);
            if (call.Response is { } response)
            {
                sink.MessagesKeyValue(SpanAttributes, new Key(Keys.GrpcResponseMessages), response);
            }
        }

        if (errorType is not null)
        {
            // Field 15 goes after the attributes (9) and before the flags (16), as the generated code writes it.
            sink.ErrorStatus(SpanStatus, new Text(outcome is null ? "" : exchange.Error ?? outcome));
        }

        sink.Fixed32(SpanFlags, SampledFlag);
    }

    // Marks of EmitHeaders' pass over a head: a pseudo-header or a later occurrence of a name (both
    // not written as such), and a first occurrence that repeats (written as one array).
    private const byte HeaderSkipped = 1;
    private const byte HeaderRepeats = 2;

    // Heads up to this many fields are marked on the stack; a longer one rents its marks.
    private const int StackHeaderMarks = 128;

    private static void EmitHeaders<TSink>(ref TSink sink, HeaderList headers, byte[] prefix)
        where TSink : struct, ISink
    {
        var items = headers.AsSpan();
        byte[]? rented = null;
        var marks = items.Length <= StackHeaderMarks
            ? stackalloc byte[StackHeaderMarks]
            : (rented = ArrayPool<byte>.Shared.Rent(items.Length));
        marks = marks[..items.Length];
        marks.Clear();

        // Repeats found in one pass, each name compared only with the earlier first occurrences, over
        // the list's storage: the per-name scans back and forward were ~30 % of encoding a 1 KiB
        // exchange's span with a dozen headers (issue 13).
        for (var i = 0; i < items.Length; i++)
        {
            var name = items[i].Key;
            if (name.Length > 0 && name[0] == ':')
            {
                // Pseudo-headers are carried by dedicated attributes.
                marks[i] = HeaderSkipped;
                continue;
            }

            for (var j = 0; j < i; j++)
            {
                if ((marks[j] & HeaderSkipped) == 0 && string.Equals(items[j].Key, name, StringComparison.Ordinal))
                {
                    marks[i] = HeaderSkipped;
                    marks[j] |= HeaderRepeats;
                    break;
                }
            }
        }

        for (var i = 0; i < items.Length; i++)
        {
            if ((marks[i] & HeaderSkipped) != 0)
            {
                continue;
            }

            var name = items[i].Key;
            if ((marks[i] & HeaderRepeats) == 0)
            {
                sink.KeyValue(SpanAttributes, new Key(prefix, name), new Text(items[i].Value));
            }
            else
            {
                // Attribute keys must be unique: a repeated name goes out once, as the array of its values.
                sink.HeaderArray(SpanAttributes, new Key(prefix, name), headers, i, ExchangeSpanMapper.IndexOfName(headers, name, i + 1, items.Length));
            }
        }

        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static void EmitBody<TSink>(ref TSink sink, CapturedBody body, bool text, BodyKeyBytes keys)
        where TSink : struct, ISink
    {
        if (body.Kind == BodyKind.Empty && body.OriginalSize == 0 && !body.Truncated
            && body.ContentType is null && body.ContentEncoding is null && !body.Decoded)
        {
            return;
        }

        var content = body.Content.Span;
        if (body.MessageFrames)
        {
            // The bytes are the message list's frames (a cut body: their start): the list attribute carries them once.
            if (body.Truncated)
            {
                sink.KeyValue(SpanAttributes, new Key(keys.Encoding), new Text(OtlpAttributes.GrpcMessageFramesPrefix));
                sink.IntKeyValue(SpanAttributes, new Key(keys.FramesLength), body.Content.Length);
            }
            else
            {
                sink.KeyValue(SpanAttributes, new Key(keys.Encoding), new Text(OtlpAttributes.GrpcMessageFrames));
            }
        }
        else if (text)
        {
            sink.Utf8KeyValue(SpanAttributes, new Key(keys.Body), body.Content);
        }
        else if (body.Kind != BodyKind.Empty)
        {
            sink.Base64KeyValue(SpanAttributes, new Key(keys.Body), content);
            sink.KeyValue(SpanAttributes, new Key(keys.Encoding), new Text(OtlpAttributes.Base64));
            if (body.Kind == BodyKind.Text)
            {
                sink.KeyValue(SpanAttributes, new Key(keys.Kind), new Text("text"));
            }
        }

        sink.IntKeyValue(SpanAttributes, new Key(keys.Size), body.OriginalSize);
        if (body.Truncated)
        {
            sink.BoolKeyValue(SpanAttributes, new Key(keys.Truncated), true);
        }

        if (body.ContentType is not null)
        {
            sink.KeyValue(SpanAttributes, new Key(keys.ContentType), new Text(body.ContentType));
        }

        if (body.ContentEncoding is not null)
        {
            sink.KeyValue(SpanAttributes, new Key(keys.ContentEncoding), new Text(body.ContentEncoding));
        }

        if (body.Decoded)
        {
            sink.BoolKeyValue(SpanAttributes, new Key(keys.Decoded), true);
        }
    }

    private static int VarintSize(ulong value) => (BitOperations.Log2(value | 1) / 7) + 1;

    private static int TagSize(int field) => VarintSize((uint)field << 3);

    private static long MessageFieldSize(int field, long contentSize) => TagSize(field) + VarintSize((ulong)contentSize) + contentSize;

    private static long StringFieldSize(int field, string value) => value.Length == 0 ? 0 : MessageFieldSize(field, new Text(value).ByteCount());

    // Size of a KeyValue field whose AnyValue holds `anyContentSize` bytes (the key is omitted when empty, as proto3 does).
    private static long KeyValueSize(int field, in Key key, long anyContentSize)
    {
        var keyBytes = key.ByteCount();
        var content = (keyBytes == 0 ? 0 : MessageFieldSize(KeyValueKey, keyBytes)) + MessageFieldSize(KeyValueValue, anyContentSize);
        return MessageFieldSize(field, content);
    }

    private static long Base64Size(int length) => ((length + 2L) / 3) * 4;

    /// <summary>
    /// An attribute key: UTF-8 bytes encoded once (a constant key, or a header key's prefix), then
    /// chars encoded when written (a header's name, a key not known in advance). The constant part
    /// is copied instead of narrowed from UTF-16 on every span (issue 13).
    /// </summary>
    private readonly ref struct Key
    {
        private readonly ReadOnlySpan<byte> _utf8;
        private readonly ReadOnlySpan<char> _chars;

        public Key(ReadOnlySpan<byte> utf8, ReadOnlySpan<char> chars = default)
        {
            _utf8 = utf8;
            _chars = chars;
        }

        /// <summary>Bytes of the key when its chars are ASCII.</summary>
        public int Length => _utf8.Length + _chars.Length;

        // The bytes end a whole string's encoding, so encoding the chars after them gives the bytes
        // of the joined string: no surrogate pair is split between the parts.
        public int ByteCount() => _utf8.Length + Encoding.UTF8.GetByteCount(_chars);

        public long MaxByteCount() => _utf8.Length + (3L * (_chars.Length + 1));

        /// <summary>Writes the key's <see cref="Length"/> bytes when its chars are ASCII; false at the first other char.</summary>
        public bool TryCopyAscii(Span<byte> destination)
        {
            _utf8.CopyTo(destination);
            return _chars.IsEmpty || Ascii.FromUtf16(_chars, destination[_utf8.Length..], out _) == OperationStatus.Done;
        }

        public int CopyTo(Span<byte> destination)
        {
            _utf8.CopyTo(destination);
            return _utf8.Length + Encoding.UTF8.GetBytes(_chars, destination[_utf8.Length..]);
        }
    }

    /// <summary>The span's constant attribute keys as UTF-8, encoded once.</summary>
    private static class Keys
    {
        public static readonly byte[] ResourceServiceName = Utf8(OtlpAttributes.ResourceServiceName);
        public static readonly byte[] ServiceName = Utf8(OtlpAttributes.ServiceName);
        public static readonly byte[] TrafficDirection = Utf8(OtlpAttributes.TrafficDirection);
        public static readonly byte[] SpanType = Utf8(OtlpAttributes.SpanType);
        public static readonly byte[] SessionId = Utf8(OtlpAttributes.SessionId);
        public static readonly byte[] PublicKey = Utf8(OtlpAttributes.PublicKey);
        public static readonly byte[] UrlHost = Utf8(OtlpAttributes.UrlHost);
        public static readonly byte[] UrlPath = Utf8(OtlpAttributes.UrlPath);
        public static readonly byte[] UrlQuery = Utf8(OtlpAttributes.UrlQuery);
        public static readonly byte[] UrlScheme = Utf8(OtlpAttributes.UrlScheme);
        public static readonly byte[] UrlFull = Utf8(OtlpAttributes.UrlFull);
        public static readonly byte[] HttpRequestMethod = Utf8(OtlpAttributes.HttpRequestMethod);
        public static readonly byte[] ServerAddress = Utf8(OtlpAttributes.ServerAddress);
        public static readonly byte[] ServerPort = Utf8(OtlpAttributes.ServerPort);
        public static readonly byte[] ResponseStatusCode = Utf8(OtlpAttributes.ResponseStatusCode);
        public static readonly byte[] Cache = Utf8(OtlpAttributes.Cache);
        public static readonly byte[] Outcome = Utf8(OtlpAttributes.Outcome);
        public static readonly byte[] Error = Utf8(OtlpAttributes.Error);
        public static readonly byte[] ErrorType = Utf8(OtlpAttributes.ErrorType);
        public static readonly byte[] GrpcRequestMessages = Utf8(GrpcSpanAttributes.RequestMessages);
        public static readonly byte[] GrpcResponseMessages = Utf8(GrpcSpanAttributes.ResponseMessages);
        public static readonly byte[] RequestHeaderPrefix = Utf8(OtlpAttributes.RequestHeaderPrefix);
        public static readonly byte[] ResponseHeaderPrefix = Utf8(OtlpAttributes.ResponseHeaderPrefix);
        public static readonly BodyKeyBytes RequestBody = new(ExchangeSpanMapper.RequestBodyKeys);
        public static readonly BodyKeyBytes ResponseBody = new(ExchangeSpanMapper.ResponseBodyKeys);

        public static byte[] Utf8(string key) => Encoding.UTF8.GetBytes(key);
    }

    /// <summary>One body's attribute keys (<see cref="ExchangeSpanMapper.BodyKeys"/>) as UTF-8.</summary>
    private sealed class BodyKeyBytes(ExchangeSpanMapper.BodyKeys keys)
    {
        public byte[] Body { get; } = Keys.Utf8(keys.Body);

        public byte[] Encoding { get; } = Keys.Utf8(keys.Encoding);

        public byte[] Kind { get; } = Keys.Utf8(keys.Kind);

        public byte[] Size { get; } = Keys.Utf8(keys.Size);

        public byte[] Truncated { get; } = Keys.Utf8(keys.Truncated);

        public byte[] ContentType { get; } = Keys.Utf8(keys.ContentType);

        public byte[] ContentEncoding { get; } = Keys.Utf8(keys.ContentEncoding);

        public byte[] Decoded { get; } = Keys.Utf8(keys.Decoded);

        public byte[] FramesLength { get; } = Keys.Utf8(keys.FramesLength);
    }

    /// <summary>A string made of up to six parts, encoded as their concatenation without building it.</summary>
    private readonly ref struct Text
    {
        private readonly ReadOnlySpan<char> _a;
        private readonly ReadOnlySpan<char> _b;
        private readonly ReadOnlySpan<char> _c;
        private readonly ReadOnlySpan<char> _d;
        private readonly ReadOnlySpan<char> _e;
        private readonly ReadOnlySpan<char> _f;

        public Text(ReadOnlySpan<char> a, ReadOnlySpan<char> b = default, ReadOnlySpan<char> c = default,
            ReadOnlySpan<char> d = default, ReadOnlySpan<char> e = default, ReadOnlySpan<char> f = default)
        {
            _a = a;
            _b = b;
            _c = c;
            _d = d;
            _e = e;
            _f = f;
        }

        private bool Joined => _b.IsEmpty && _c.IsEmpty && _d.IsEmpty && _e.IsEmpty && _f.IsEmpty;

        // A surrogate pair split across two parts is one character in the concatenation; encoding
        // the parts separately would turn it into two replacement characters.
        private bool SplitsSurrogate =>
            EndsHigh(_a) || EndsHigh(_b) || EndsHigh(_c) || EndsHigh(_d) || EndsHigh(_e);

        public int ByteCount()
        {
            if (Joined)
            {
                return Encoding.UTF8.GetByteCount(_a);
            }

            if (SplitsSurrogate)
            {
                return Encoding.UTF8.GetByteCount(Concat());
            }

            return Encoding.UTF8.GetByteCount(_a) + Encoding.UTF8.GetByteCount(_b) + Encoding.UTF8.GetByteCount(_c)
                + Encoding.UTF8.GetByteCount(_d) + Encoding.UTF8.GetByteCount(_e) + Encoding.UTF8.GetByteCount(_f);
        }

        // An upper bound of ByteCount without reading the text: UTF-8 takes at most 3 bytes per UTF-16
        // char (a surrogate pair, two chars, takes 4), plus 3 for a replacement at each part's end.
        public long MaxByteCount() =>
            3L * ((long)_a.Length + _b.Length + _c.Length + _d.Length + _e.Length + _f.Length + 6);

        /// <summary>Chars in all parts (the byte count when every one is ASCII).</summary>
        public int Length => _a.Length + _b.Length + _c.Length + _d.Length + _e.Length + _f.Length;

        /// <summary>
        /// Writes the text as ASCII into <paramref name="destination"/> (<see cref="Length"/> bytes)
        /// when every char is ASCII, where UTF-8 gives the same bytes; false at the first other char
        /// (the destination then holds a part of it).
        /// </summary>
        public bool TryCopyAscii(Span<byte> destination)
        {
            if (Ascii.FromUtf16(_a, destination, out var n) != OperationStatus.Done)
            {
                return false;
            }

            if (Joined)
            {
                return true;
            }

            return CopyAsciiPart(_b, destination, ref n) && CopyAsciiPart(_c, destination, ref n)
                && CopyAsciiPart(_d, destination, ref n) && CopyAsciiPart(_e, destination, ref n)
                && CopyAsciiPart(_f, destination, ref n);
        }

        private static bool CopyAsciiPart(ReadOnlySpan<char> part, Span<byte> destination, ref int offset)
        {
            if (part.IsEmpty)
            {
                return true;
            }

            var done = Ascii.FromUtf16(part, destination[offset..], out var written) == OperationStatus.Done;
            offset += written;
            return done;
        }

        public int CopyTo(Span<byte> destination)
        {
            if (Joined)
            {
                return Encoding.UTF8.GetBytes(_a, destination);
            }

            if (SplitsSurrogate)
            {
                return Encoding.UTF8.GetBytes(Concat(), destination);
            }

            var n = Encoding.UTF8.GetBytes(_a, destination);
            n += Encoding.UTF8.GetBytes(_b, destination[n..]);
            n += Encoding.UTF8.GetBytes(_c, destination[n..]);
            n += Encoding.UTF8.GetBytes(_d, destination[n..]);
            n += Encoding.UTF8.GetBytes(_e, destination[n..]);
            n += Encoding.UTF8.GetBytes(_f, destination[n..]);
            return n;
        }

        private static bool EndsHigh(ReadOnlySpan<char> part) => part.Length > 0 && char.IsHighSurrogate(part[^1]);

        private string Concat() => string.Concat(string.Concat(_a, _b, _c), string.Concat(_d, _e, _f));
    }

    /// <summary>Receives a span's fields: <see cref="Measure"/> adds up their sizes, <see cref="Writer"/> writes them.</summary>
    private interface ISink
    {
        void Bytes(int field, ReadOnlySpan<byte> value);

        void String(int field, in Text value);

        void Varint(int field, ulong value);

        void Fixed32(int field, uint value);

        void Fixed64(int field, ulong value);

        void KeyValue(int field, in Key key, in Text value);

        void Utf8KeyValue(int field, in Key key, ReadOnlyMemory<byte> value);

        void Base64KeyValue(int field, in Key key, ReadOnlySpan<byte> value);

        void IntKeyValue(int field, in Key key, long value);

        void BoolKeyValue(int field, in Key key, bool value);

        void HeaderArray(int field, in Key key, HeaderList headers, int first, int next);

        void MessagesKeyValue(int field, in Key key, GrpcMessageList list);

        void ErrorStatus(int field, in Text message);
    }

    private struct Measure : ISink
    {
        public long Size { get; private set; }

        public void Bytes(int field, ReadOnlySpan<byte> value) => Size += value.IsEmpty ? 0 : MessageFieldSize(field, value.Length);

        public void String(int field, in Text value)
        {
            var bytes = value.ByteCount();
            Size += bytes == 0 ? 0 : MessageFieldSize(field, bytes);
        }

        public void Varint(int field, ulong value) => Size += value == 0 ? 0 : TagSize(field) + VarintSize(value);

        public void Fixed32(int field, uint value) => Size += value == 0 ? 0 : TagSize(field) + 4;

        public void Fixed64(int field, ulong value) => Size += value == 0 ? 0 : TagSize(field) + 8;

        public void KeyValue(int field, in Key key, in Text value) => Size += KeyValueSize(field, key, MessageFieldSize(AnyString, value.ByteCount()));

        public void Utf8KeyValue(int field, in Key key, ReadOnlyMemory<byte> value) => Size += KeyValueSize(field, key, MessageFieldSize(AnyString, value.Length));

        public void Base64KeyValue(int field, in Key key, ReadOnlySpan<byte> value) => Size += KeyValueSize(field, key, MessageFieldSize(AnyString, Base64Size(value.Length)));

        public void IntKeyValue(int field, in Key key, long value) => Size += KeyValueSize(field, key, TagSize(AnyInt) + VarintSize((ulong)value));

        public void BoolKeyValue(int field, in Key key, bool value) => Size += KeyValueSize(field, key, TagSize(AnyBool) + 1);

        public void HeaderArray(int field, in Key key, HeaderList headers, int first, int next) =>
            Size += KeyValueSize(field, key, MessageFieldSize(AnyArray, ArrayContentSize(headers, first, next)));

        public void MessagesKeyValue(int field, in Key key, GrpcMessageList list) =>
            Size += KeyValueSize(field, key, MessageFieldSize(AnyKvlist, ListContentSize(list, MessagesArraySize(list))));

        public void ErrorStatus(int field, in Text message)
        {
            var bytes = message.ByteCount();
            var content = (bytes == 0 ? 0 : MessageFieldSize(StatusMessage, bytes)) + TagSize(StatusCode) + VarintSize(StatusCodeError);
            Size += MessageFieldSize(field, content);
        }
    }

    // A message list's structured form (GrpcSpanAttributes.ToAnyValue): the KeyValueList of count,
    // truncated and messages, given the content of the messages' ArrayValue.
    private static long ListContentSize(GrpcMessageList list, long array) =>
        IntEntrySize(GrpcSpanAttributes.CountKey.Length, list.Count)
            + BoolEntrySize(GrpcSpanAttributes.TruncatedKey.Length)
            + EntrySize(GrpcSpanAttributes.MessagesKey.Length, MessageFieldSize(AnyArray, array));

    // Content of the messages' ArrayValue: one kvlist AnyValue a message.
    private static long MessagesArraySize(GrpcMessageList list)
    {
        long size = 0;
        var messages = list.Messages;
        for (var i = 0; i < messages.Count; i++)
        {
            size += MessageFieldSize(ArrayValues, MessageFieldSize(AnyKvlist, MessageEntriesSize(messages[i])));
        }

        return size;
    }

    // Content of one message's KeyValueList, its payload as bytes_value.
    private static long MessageEntriesSize(GrpcMessage message) =>
        IntEntrySize(GrpcSpanAttributes.IndexKey.Length, message.Index)
            + EntrySize(GrpcSpanAttributes.OffsetKey.Length, TagSize(AnyDouble) + 8)
            + BoolEntrySize(GrpcSpanAttributes.CompressedKey.Length)
            + BoolEntrySize(GrpcSpanAttributes.DecodedKey.Length)
            + IntEntrySize(GrpcSpanAttributes.SizeKey.Length, message.WireLength)
            + BoolEntrySize(GrpcSpanAttributes.TruncatedKey.Length)
            + EntrySize(GrpcSpanAttributes.DataKey.Length, MessageFieldSize(AnyBytes, message.Payload.Length));

    // One KeyValue of a KeyValueList: its key (never empty here) and an AnyValue of `anyContentSize` bytes.
    // A oneof value is written even when it is 0 or false, as the generated code does.
    private static long EntrySize(int keyBytes, long anyContentSize) =>
        MessageFieldSize(KeyValueListValues, MessageFieldSize(KeyValueKey, keyBytes) + MessageFieldSize(KeyValueValue, anyContentSize));

    private static long IntEntrySize(int keyBytes, long value) => EntrySize(keyBytes, TagSize(AnyInt) + VarintSize((ulong)value));

    private static long BoolEntrySize(int keyBytes) => EntrySize(keyBytes, TagSize(AnyBool) + 1);

    // Content of the ArrayValue for a repeated header: the value at `first`, then every later one of that name.
    private static long ArrayContentSize(HeaderList headers, int first, int next)
    {
        var name = headers[first].Key;
        long size = MessageFieldSize(ArrayValues, MessageFieldSize(AnyString, new Text(headers[first].Value).ByteCount()));
        for (var j = next; j < headers.Count; j++)
        {
            if (string.Equals(headers[j].Key, name, StringComparison.Ordinal))
            {
                size += MessageFieldSize(ArrayValues, MessageFieldSize(AnyString, new Text(headers[j].Value).ByteCount()));
            }
        }

        return size;
    }

    /// <summary>
    /// Writes into a buffer already sized by <see cref="Measure"/> (so it never grows), or, given a
    /// limit (<see cref="TryWriteSpan"/>), into one that may be too small: each field first checks an
    /// upper bound of its size against the limit, and past it nothing more is written and
    /// <see cref="Overflowed"/> is set (no measuring pass, and never a write past the limit).
    /// </summary>
    private struct Writer : ISink
    {
        // A field's tags and length prefixes take at most this many bytes beside its keys and values
        // (KeyValue: 2 + 5 + key tag and length 6 + value tag and length 6 + AnyValue tag and length 6).
        private const int FieldOverhead = 32;

        private readonly byte[] _buffer;
        private readonly long _limit;
        private readonly DeferredBytes? _deferred;

        public Writer(byte[] buffer, int position = 0, int limit = -1, DeferredBytes? deferred = null)
        {
            _buffer = buffer;
            Position = position;
            _deferred = deferred;

            // Without a limit the buffer was measured for what is written: nothing to check.
            _limit = limit < 0 ? long.MaxValue : limit;
        }

        public int Position { get; private set; }

        /// <summary>True once a field did not fit under the limit (what was written is incomplete).</summary>
        public bool Overflowed { get; private set; }

        // False (and Overflowed) when `bound` more bytes may not fit under the limit.
        private bool Room(long bound)
        {
            if (Overflowed || Position + bound > _limit)
            {
                Overflowed = true;
                return false;
            }

            return true;
        }

        public void Tag(int field, int wireType) => Raw(((uint)field << 3) | (uint)wireType);

        // Past bytes written into the buffer by someone else (a pre-encoded span).
        public void Advance(int count) => Position += count;

        public void Raw(ulong value)
        {
            var buffer = _buffer;
            var position = Position;
            while (value >= 0x80)
            {
                buffer[position++] = (byte)(value | 0x80);
                value >>= 7;
            }

            buffer[position++] = (byte)value;
            Position = position;
        }

        public void Bytes(int field, ReadOnlySpan<byte> value)
        {
            if (!value.IsEmpty && Room(FieldOverhead + value.Length))
            {
                Tag(field, Len);
                Raw((ulong)value.Length);
                Copy(value);
            }
        }

        public void String(int field, in Text value)
        {
            if (!Room(FieldOverhead + value.MaxByteCount()))
            {
                return;
            }

            // The span name ("GET /path") is nearly always ASCII: narrowed in one pass, as TryAsciiKeyValue does.
            var start = Position;
            var chars = value.Length;
            if (chars != 0)
            {
                Tag(field, Len);
                Raw((ulong)chars);
                if (value.TryCopyAscii(_buffer.AsSpan(Position, chars)))
                {
                    Position += chars;
                    return;
                }

                Position = start;
            }

            var bytes = value.ByteCount();
            if (bytes != 0)
            {
                Tag(field, Len);
                Raw((ulong)bytes);
                Position += value.CopyTo(_buffer.AsSpan(Position, bytes));
            }
        }

        public void Varint(int field, ulong value)
        {
            if (value != 0 && Room(FieldOverhead))
            {
                Tag(field, WireVarint);
                Raw(value);
            }
        }

        public void Fixed32(int field, uint value)
        {
            if (value != 0 && Room(FieldOverhead))
            {
                Tag(field, WireFixed32);
                BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(Position, 4), value);
                Position += 4;
            }
        }

        public void Fixed64(int field, ulong value)
        {
            if (value != 0 && Room(FieldOverhead))
            {
                Tag(field, WireFixed64);
                BinaryPrimitives.WriteUInt64LittleEndian(_buffer.AsSpan(Position, 8), value);
                Position += 8;
            }
        }

        public void KeyValue(int field, in Key key, in Text value)
        {
            if (!Room(FieldOverhead + key.MaxByteCount() + value.MaxByteCount()))
            {
                return;
            }

            if (TryAsciiKeyValue(field, key, value))
            {
                return;
            }

            var bytes = value.ByteCount();
            var any = MessageFieldSize(AnyString, bytes);
            KeyValueStart(field, key, any);
            Tag(AnyString, Len);
            Raw((ulong)bytes);
            Position += value.CopyTo(_buffer.AsSpan(Position, bytes));
        }

        // Nearly every key and value (header names and values, URLs, ids) is ASCII: one byte a
        // char, so every length follows from the char counts and each text is narrowed in one pass
        // instead of counted and then encoded (~2 % of the agent's CPU at 2 KiB, issue 13). At the
        // first other char the field is rewound and written by the counting path: the same bytes.
        // The caller checked the room for the field's upper bound.
        private bool TryAsciiKeyValue(int field, in Key key, in Text value)
        {
            var start = Position;
            var keyBytes = key.Length;
            var valueBytes = value.Length;
            var any = MessageFieldSize(AnyString, valueBytes);
            KeyValueHead(field, keyBytes, any);
            if (keyBytes != 0)
            {
                if (!key.TryCopyAscii(_buffer.AsSpan(Position, keyBytes)))
                {
                    Position = start;
                    return false;
                }

                Position += keyBytes;
            }

            Tag(KeyValueValue, Len);
            Raw((ulong)any);
            Tag(AnyString, Len);
            Raw((ulong)valueBytes);
            return TryAscii(value, valueBytes, start);
        }

        // Writes `text` as its `bytes` ASCII bytes; at its first other char, rewinds to `start` and returns false.
        private bool TryAscii(in Text text, int bytes, int start)
        {
            if (!text.TryCopyAscii(_buffer.AsSpan(Position, bytes)))
            {
                Position = start;
                return false;
            }

            Position += bytes;
            return true;
        }

        public void Utf8KeyValue(int field, in Key key, ReadOnlyMemory<byte> value)
        {
            if (!Room(FieldOverhead + key.MaxByteCount() + value.Length))
            {
                return;
            }

            KeyValueStart(field, key, MessageFieldSize(AnyString, value.Length));
            Tag(AnyString, Len);
            Raw((ulong)value.Length);
            if (_deferred is not null && value.Length >= DeferredBytes.MinBytes)
            {
                _deferred.Add(Position, value);
                Position += value.Length;
            }
            else
            {
                Copy(value.Span);
            }
        }

        public void Base64KeyValue(int field, in Key key, ReadOnlySpan<byte> value)
        {
            var encoded = (int)Base64Size(value.Length);
            if (!Room(FieldOverhead + key.MaxByteCount() + encoded))
            {
                return;
            }

            KeyValueStart(field, key, MessageFieldSize(AnyString, encoded));
            Tag(AnyString, Len);
            Raw((ulong)encoded);
            Base64.EncodeToUtf8(value, _buffer.AsSpan(Position, encoded), out _, out var written);
            Position += written;
        }

        public void IntKeyValue(int field, in Key key, long value)
        {
            if (!Room(FieldOverhead + 12 + key.MaxByteCount()))
            {
                return;
            }

            KeyValueStart(field, key, TagSize(AnyInt) + VarintSize((ulong)value));
            Tag(AnyInt, WireVarint);
            Raw((ulong)value);
        }

        public void BoolKeyValue(int field, in Key key, bool value)
        {
            if (!Room(FieldOverhead + key.MaxByteCount()))
            {
                return;
            }

            KeyValueStart(field, key, TagSize(AnyBool) + 1);
            Tag(AnyBool, WireVarint);
            Raw(value ? 1UL : 0UL);
        }

        public void HeaderArray(int field, in Key key, HeaderList headers, int first, int next)
        {
            var array = ArrayContentSize(headers, first, next);
            if (!Room(FieldOverhead + key.MaxByteCount() + array))
            {
                return;
            }

            KeyValueStart(field, key, MessageFieldSize(AnyArray, array));
            Tag(AnyArray, Len);
            Raw((ulong)array);
            var name = headers[first].Key;
            ArrayItem(headers[first].Value);
            for (var j = next; j < headers.Count; j++)
            {
                if (string.Equals(headers[j].Key, name, StringComparison.Ordinal))
                {
                    ArrayItem(headers[j].Value);
                }
            }
        }

        public void MessagesKeyValue(int field, in Key key, GrpcMessageList list)
        {
            var array = MessagesArraySize(list);
            var content = ListContentSize(list, array);
            var any = MessageFieldSize(AnyKvlist, content);
            if (!Room(FieldOverhead + key.MaxByteCount() + any))
            {
                return;
            }

            KeyValueStart(field, key, any);
            Tag(AnyKvlist, Len);
            Raw((ulong)content);
            IntEntry(GrpcSpanAttributes.CountKey, list.Count);
            BoolEntry(GrpcSpanAttributes.TruncatedKey, list.Truncated);
            EntryHead(GrpcSpanAttributes.MessagesKey, MessageFieldSize(AnyArray, array));
            Tag(AnyArray, Len);
            Raw((ulong)array);
            var messages = list.Messages;
            for (var i = 0; i < messages.Count; i++)
            {
                var message = messages[i];
                var entries = MessageEntriesSize(message);
                Tag(ArrayValues, Len);
                Raw((ulong)MessageFieldSize(AnyKvlist, entries));
                Tag(AnyKvlist, Len);
                Raw((ulong)entries);
                IntEntry(GrpcSpanAttributes.IndexKey, message.Index);
                EntryHead(GrpcSpanAttributes.OffsetKey, TagSize(AnyDouble) + 8);
                Tag(AnyDouble, WireFixed64);
                BinaryPrimitives.WriteUInt64LittleEndian(_buffer.AsSpan(Position, 8), BitConverter.DoubleToUInt64Bits(GrpcSpanAttributes.OffsetMilliseconds(message.Offset)));
                Position += 8;
                BoolEntry(GrpcSpanAttributes.CompressedKey, message.Compressed);
                BoolEntry(GrpcSpanAttributes.DecodedKey, message.Decoded);
                IntEntry(GrpcSpanAttributes.SizeKey, message.WireLength);
                BoolEntry(GrpcSpanAttributes.TruncatedKey, message.Truncated);
                var payload = message.Payload;
                EntryHead(GrpcSpanAttributes.DataKey, MessageFieldSize(AnyBytes, payload.Length));
                Tag(AnyBytes, Len);
                Raw((ulong)payload.Length);

                // As a large text body: the payload's array is the exchange's until its batch is done.
                if (_deferred is not null && payload.Length >= DeferredBytes.MinBytes)
                {
                    _deferred.Add(Position, payload);
                    Position += payload.Length;
                }
                else
                {
                    Copy(payload.Span);
                }
            }
        }

        // A KeyValueList entry's tag and length, its key, and the tag and length of its AnyValue.
        private void EntryHead(ReadOnlySpan<byte> key, long anyContentSize)
        {
            Tag(KeyValueListValues, Len);
            Raw((ulong)(MessageFieldSize(KeyValueKey, key.Length) + MessageFieldSize(KeyValueValue, anyContentSize)));
            Tag(KeyValueKey, Len);
            Raw((ulong)key.Length);
            Copy(key);
            Tag(KeyValueValue, Len);
            Raw((ulong)anyContentSize);
        }

        private void IntEntry(ReadOnlySpan<byte> key, long value)
        {
            EntryHead(key, TagSize(AnyInt) + VarintSize((ulong)value));
            Tag(AnyInt, WireVarint);
            Raw((ulong)value);
        }

        private void BoolEntry(ReadOnlySpan<byte> key, bool value)
        {
            EntryHead(key, TagSize(AnyBool) + 1);
            Tag(AnyBool, WireVarint);
            Raw(value ? 1UL : 0UL);
        }

        public void ErrorStatus(int field, in Text message)
        {
            if (!Room(FieldOverhead + FieldOverhead + message.MaxByteCount()))
            {
                return;
            }

            var bytes = message.ByteCount();
            var content = (bytes == 0 ? 0 : MessageFieldSize(StatusMessage, bytes)) + TagSize(StatusCode) + VarintSize(StatusCodeError);
            Tag(field, Len);
            Raw((ulong)content);
            String(StatusMessage, message);
            Varint(StatusCode, StatusCodeError);
        }

        private void ArrayItem(string value)
        {
            var text = new Text(value);
            var bytes = text.ByteCount();
            Tag(ArrayValues, Len);
            Raw((ulong)MessageFieldSize(AnyString, bytes));
            Tag(AnyString, Len);
            Raw((ulong)bytes);
            Position += text.CopyTo(_buffer.AsSpan(Position, bytes));
        }

        // The KeyValue's tag and length and, when it has a key, the key's tag and length (its bytes come next).
        private void KeyValueHead(int field, int keyBytes, long anyContentSize)
        {
            var content = (keyBytes == 0 ? 0 : MessageFieldSize(KeyValueKey, keyBytes)) + MessageFieldSize(KeyValueValue, anyContentSize);
            Tag(field, Len);
            Raw((ulong)content);
            if (keyBytes != 0)
            {
                Tag(KeyValueKey, Len);
                Raw((ulong)keyBytes);
            }
        }

        // The KeyValue's tag and length, its key, and the tag and length of its AnyValue.
        private void KeyValueStart(int field, in Key key, long anyContentSize)
        {
            var keyBytes = key.ByteCount();
            KeyValueHead(field, keyBytes, anyContentSize);
            if (keyBytes != 0)
            {
                Position += key.CopyTo(_buffer.AsSpan(Position, keyBytes));
            }

            Tag(KeyValueValue, Len);
            Raw((ulong)anyContentSize);
        }

        private void Copy(ReadOnlySpan<byte> value)
        {
            value.CopyTo(_buffer.AsSpan(Position, value.Length));
            Position += value.Length;
        }
    }
}
