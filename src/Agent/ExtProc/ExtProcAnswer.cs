using System.Buffers;
using System.Text;
using Google.Protobuf;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Core.Tracing;
using AppendAction = SpIstio.Agent.ExtProc.Proto.Core.HeaderValueOption.Types.HeaderAppendAction;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// One answer on the ext_proc stream, as the bytes of an <c>envoy.service.ext_proc.v3.ProcessingResponse</c>
/// that <see cref="ExtProcMethod"/> writes into the HTTP/2 stream. The common answers are written
/// without building the generated message graph (~17 objects for the request-headers answer): a
/// CONTINUE answer is the same bytes every time (<see cref="Fixed"/>), and the request-headers
/// answer of a followed exchange is three header fields written straight from the trace context
/// (<see cref="TraceHeaders"/>). Either's bytes are what the generated serializer writes for the
/// same message (the tests parse them with the generated client and compare the bytes).
/// </summary>
internal abstract class ExtProcAnswer
{
    /// <summary>True for an ImmediateResponse: Envoy answers locally and nothing more belongs to the stream.</summary>
    public virtual bool EndsStream => false;

    /// <summary>Writes the encoded ProcessingResponse, whose length is <see cref="CalculateSize"/>.</summary>
    public abstract void WriteTo(IBufferWriter<byte> output);

    /// <summary>The length of the encoded ProcessingResponse.</summary>
    public abstract int CalculateSize();

    /// <summary>The encoded ProcessingResponse as a new array (tests, and answers encoded once).</summary>
    public byte[] ToByteArray()
    {
        var output = new ArrayBufferWriter<byte>(CalculateSize());
        WriteTo(output);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>An answer encoded once, from its generated message, and shared by every stream (its bytes never change).</summary>
    public sealed class Fixed(ProcessingResponse message) : ExtProcAnswer
    {
        private readonly byte[] _bytes = message.ToByteArray();

        public override int CalculateSize() => _bytes.Length;

        public override void WriteTo(IBufferWriter<byte> output) => output.Write(_bytes);
    }

    /// <summary>An answer built as a generated message and written by the generated serializer (ImmediateResponse: rare, and of any shape).</summary>
    public sealed class Message(ProcessingResponse message) : ExtProcAnswer
    {
        public ProcessingResponse Response { get; } = message;

        public override bool EndsStream => Response.ResponseCase == ProcessingResponse.ResponseOneofCase.ImmediateResponse;

        public override int CalculateSize() => Response.CalculateSize();

        public override void WriteTo(IBufferWriter<byte> output) => Response.WriteTo(output);
    }

    /// <summary>
    /// The request-headers answer of a followed exchange: CONTINUE with a header mutation that sets
    /// <c>traceparent</c>, <c>tracestate</c> and <c>x-sp-num</c> (each OVERWRITE_IF_EXISTS_OR_ADD, the
    /// value in <c>raw_value</c> only: Envoy ignores <c>value</c> and answers 500 when both are set),
    /// and the mode override, if any. Encoded field by field as the generated serializer does: fields
    /// in number order, an empty <c>raw_value</c> left out.
    /// </summary>
    public sealed class TraceHeaders : ExtProcAnswer
    {
        // Field tags (field number << 3 | wire type 2, length-delimited; 0 for a varint).
        private const byte ProcessingResponseRequestHeaders = (1 << 3) | 2;
        private const byte ProcessingResponseModeOverride = (9 << 3) | 2;
        private const byte HeadersResponseResponse = (1 << 3) | 2;
        private const byte CommonResponseHeaderMutation = (2 << 3) | 2;
        private const byte HeaderMutationSetHeaders = (1 << 3) | 2;
        private const byte HeaderValueOptionHeader = (1 << 3) | 2;
        private const byte HeaderValueOptionAppendAction = 3 << 3;
        private const byte HeaderValueKey = (1 << 3) | 2;
        private const byte HeaderValueRawValue = (3 << 3) | 2;
        private const byte Overwrite = (byte)AppendAction.OverwriteIfExistsOrAdd;

        private readonly string _traceParent;
        private readonly string _traceState;
        private readonly string _hopCount;
        private readonly byte[]? _modeOverride;

        // Lengths of the nested messages, innermost first (each length prefix needs the one inside
        // it), computed with the answer: the marshaller asks for the size before it writes.
        private readonly int _mutation;
        private readonly int _common;
        private readonly int _headers;
        private readonly int _total;

        /// <summary>The answer forwarding <paramref name="trace"/>'s headers, with <paramref name="modeOverride"/> (an encoded ProcessingMode) when not null.</summary>
        public TraceHeaders(in PropagationResult trace, byte[]? modeOverride)
            : this(trace.TraceParent, trace.TraceState, HopCounter.Format(trace.HopCount), modeOverride)
        {
        }

        /// <summary>The answer setting the three headers to these values, with <paramref name="modeOverride"/> (an encoded ProcessingMode) when not null.</summary>
        public TraceHeaders(string traceParent, string traceState, string hopCount, byte[]? modeOverride)
        {
            _traceParent = traceParent;
            _traceState = traceState;
            _hopCount = hopCount;
            _modeOverride = modeOverride;
            _mutation = Field(OptionSize(TraceParent.HeaderName, _traceParent))
                + Field(OptionSize(TraceState.HeaderName, _traceState))
                + Field(OptionSize(HopCounter.HeaderName, _hopCount));
            _common = Field(_mutation);
            _headers = Field(_common);
            _total = Field(_headers) + (modeOverride is null ? 0 : Field(modeOverride.Length));
        }

        public override int CalculateSize() => _total;

        public override void WriteTo(IBufferWriter<byte> output)
        {
            var span = output.GetSpan(_total);
            var at = 0;
            span[at++] = ProcessingResponseRequestHeaders;
            at += WriteVarint(span[at..], _headers);
            span[at++] = HeadersResponseResponse;
            at += WriteVarint(span[at..], _common);
            span[at++] = CommonResponseHeaderMutation;
            at += WriteVarint(span[at..], _mutation);
            at += WriteOption(span[at..], TraceParent.HeaderName, _traceParent);
            at += WriteOption(span[at..], TraceState.HeaderName, _traceState);
            at += WriteOption(span[at..], HopCounter.HeaderName, _hopCount);
            if (_modeOverride is { } mode)
            {
                span[at++] = ProcessingResponseModeOverride;
                at += WriteVarint(span[at..], mode.Length);
                mode.CopyTo(span[at..]);
                at += mode.Length;
            }

            output.Advance(at);
        }

        // A HeaderValueOption: its header, and the append action (a one-byte varint).
        private static int OptionSize(string name, string value) => Field(HeaderValueSize(name, value)) + 2;

        // A HeaderValue: key, and raw_value unless empty (proto3 leaves an empty bytes field out).
        private static int HeaderValueSize(string name, string value)
        {
            var valueBytes = Encoding.UTF8.GetByteCount(value);
            return Field(Encoding.UTF8.GetByteCount(name)) + (valueBytes == 0 ? 0 : Field(valueBytes));
        }

        // One set_headers entry, tag and length prefix included.
        private static int WriteOption(Span<byte> span, string name, string value)
        {
            var headerValue = HeaderValueSize(name, value);
            var at = 0;
            span[at++] = HeaderMutationSetHeaders;
            at += WriteVarint(span[at..], Field(headerValue) + 2);
            span[at++] = HeaderValueOptionHeader;
            at += WriteVarint(span[at..], headerValue);
            at += WriteText(span[at..], HeaderValueKey, name);
            if (value.Length != 0)
            {
                at += WriteText(span[at..], HeaderValueRawValue, value);
            }

            span[at++] = HeaderValueOptionAppendAction;
            span[at++] = Overwrite;
            return at;
        }

        private static int WriteText(Span<byte> span, byte tag, string text)
        {
            span[0] = tag;
            var length = WriteVarint(span[1..], Encoding.UTF8.GetByteCount(text));
            return 1 + length + Encoding.UTF8.GetBytes(text, span[(1 + length)..]);
        }

        // A length-delimited field of a payload of `length` bytes: one tag byte, the length varint, the payload.
        private static int Field(int length) => 1 + CodedOutputStream.ComputeLengthSize(length) + length;

        private static int WriteVarint(Span<byte> span, int value)
        {
            var v = (uint)value;
            var at = 0;
            while (v >= 0x80)
            {
                span[at++] = (byte)(v | 0x80);
                v >>= 7;
            }

            span[at++] = (byte)v;
            return at;
        }
    }
}
