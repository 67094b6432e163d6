using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// The messages of one ext_proc stream read from, and the answers written to, the HTTP/2 request's
/// own pipes: gRPC's length-prefixed framing (5 bytes: compressed flag, big-endian length), done
/// here instead of through Grpc.AspNetCore's stream reader and writer.
/// </summary>
/// <remarks>
/// <para>Why: in synchronous mode every message waits for Envoy, so every read completes
/// asynchronously, and Grpc.AspNetCore wraps Kestrel's read in two async layers of its own (its
/// message read and its <c>MoveNext</c>, a task each) and every write in two more, with a
/// cancellation registration and a lock; an exchange is four messages. Awaiting Kestrel's pipe
/// straight from the stream loop resumes the loop with no layer between (issue 13).</para>
/// <para>What Grpc.AspNetCore does on these paths is done the same way: a message announced over
/// the receive limit is refused before its bytes arrive (RESOURCE_EXHAUSTED), a compressed message
/// without a <c>grpc-encoding</c> is refused (INTERNAL), so is a stream that ends inside a message,
/// and the response is started before its first bytes. A call whose requests are compressed
/// (a <c>grpc-encoding</c> other than identity) is not taken here (<see cref="TryCreate"/>): Envoy
/// does not compress ext_proc messages, and Grpc.AspNetCore's reader decompresses them. Answers
/// are never compressed, which every gRPC client accepts.</para>
/// </remarks>
internal sealed class ExtProcFrames
{
    private const int HeaderBytes = 5;

    private readonly PipeReader _requests;
    private readonly HttpResponse _response;
    private readonly PipeWriter _answers;
    private readonly int _maxMessageBytes;

    // The stream's one request object, read into again for each message: the stream loop is done with
    // a message (its body array taken or returned) before it takes the next (issue 13: four
    // ExtProcRequest objects and a header array less per exchange).
    private readonly ExtProcRequest _request = new();

    private ExtProcFrames(PipeReader requests, HttpResponse response, int maxMessageBytes)
    {
        _requests = requests;
        _response = response;
        _answers = response.BodyWriter;
        _maxMessageBytes = maxMessageBytes;
    }

    /// <summary>
    /// The framing of the call's HTTP/2 stream, or null when the call is not served by ASP.NET Core
    /// (a call context built in memory) or its requests are compressed.
    /// </summary>
    public static ExtProcFrames? TryCreate(HttpContext? http, int maxMessageBytes)
    {
        if (http is null)
        {
            return null;
        }

        var encoding = http.Request.Headers["grpc-encoding"];
        if (encoding.Count > 0 && !string.Equals(encoding[0], "identity", StringComparison.Ordinal))
        {
            return null;
        }

        return new ExtProcFrames(http.Request.BodyReader, http.Response, maxMessageBytes);
    }

    /// <summary>Waits for more request bytes; give the result to <see cref="TryTake"/>.</summary>
    public ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken) => _requests.ReadAsync(cancellationToken);

    /// <summary>
    /// Takes the next message out of <paramref name="result"/> (what <see cref="ReadAsync"/> gave).
    /// True with the message, or with null at the end of the requests; false when its bytes have
    /// not all arrived (read again). Throws an <see cref="RpcException"/> as Grpc.AspNetCore does.
    /// The message is this object's one request, valid until the next call.
    /// </summary>
    public bool TryTake(in ReadResult result, out ExtProcRequest? request)
    {
        var buffer = result.Buffer;
        var consumed = buffer.Start;
        try
        {
            if (buffer.Length >= HeaderBytes)
            {
                Span<byte> header = stackalloc byte[HeaderBytes];
                buffer.Slice(0, HeaderBytes).CopyTo(header);
                if (header[0] != 0)
                {
                    throw new RpcException(new Status(StatusCode.Internal, "Request did not include grpc-encoding value with compressed message."));
                }

                var length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
                if (length > (uint)_maxMessageBytes)
                {
                    throw new RpcException(new Status(StatusCode.ResourceExhausted, "Received message exceeds the maximum configured message size."));
                }

                if (buffer.Length - HeaderBytes >= length)
                {
                    var message = buffer.Slice(HeaderBytes, length);
                    consumed = message.End;
                    request = ProcessingRequestReader.Read(message, _request);
                    return true;
                }
            }

            if (result.IsCompleted)
            {
                if (!buffer.IsEmpty)
                {
                    throw new RpcException(new Status(StatusCode.Internal, "Incomplete message."));
                }

                request = null;
                return true;
            }

            if (result.IsCanceled)
            {
                throw new OperationCanceledException("Reading the ext_proc requests was cancelled.");
            }

            request = null;
            return false;
        }
        finally
        {
            // Bytes of a message not whole yet are examined, so the next read waits for more.
            _requests.AdvanceTo(consumed, buffer.End);
        }
    }

    /// <summary>
    /// Writes one answer into the response and flushes it; the returned flush is what remains to
    /// await (usually complete: Kestrel's HTTP/2 writer takes the frame at once).
    /// </summary>
    public ValueTask<FlushResult> WriteAsync(ExtProcAnswer answer, CancellationToken cancellationToken)
    {
        if (!_response.HasStarted)
        {
            // The response headers go first: Kestrel takes body bytes only once the response started.
            return StartThenWriteAsync(answer, cancellationToken);
        }

        Write(answer);
        return _answers.FlushAsync(cancellationToken);
    }

    private async ValueTask<FlushResult> StartThenWriteAsync(ExtProcAnswer answer, CancellationToken cancellationToken)
    {
        await _response.StartAsync(cancellationToken).ConfigureAwait(false);
        Write(answer);
        return await _answers.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private void Write(ExtProcAnswer answer)
    {
        var length = answer.CalculateSize();
        var header = _answers.GetSpan(HeaderBytes);
        header[0] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(header[1..], (uint)length);
        _answers.Advance(HeaderBytes);
        answer.WriteTo(_answers);
    }
}
