using SpIstio.Agent.Pipeline;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Cache;

/// <summary>
/// A recorded unary gRPC response given again (issue 18 §5). A recording keeps the status among its
/// response headers (both front ends put trailers there, and mocks made from spans carry them so);
/// the answer puts them back where gRPC wants them: after the message, as trailers, or — when
/// there is no message — in the headers of a trailers-only response (the gRPC over HTTP/2 spec's
/// "Trailers-Only"), which is also the only form Envoy gives a local reply to a gRPC request.
/// </summary>
public static class GrpcAnswers
{
    private static readonly string[] _statusFields = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

    /// <summary>True for <c>grpc-status</c>, <c>grpc-message</c> and <c>grpc-status-details-bin</c>.</summary>
    public static bool IsStatusField(string name)
    {
        foreach (var field in _statusFields)
        {
            if (string.Equals(field, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True when <paramref name="headers"/> say the response is gRPC.</summary>
    public static bool IsGrpc(HeaderList headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        return GrpcSpanAttributes.IsGrpc(headers.Get("content-type"));
    }

    /// <summary>
    /// The answer for a recorded response: as it is for HTTP; for gRPC with HTTP status 200, the
    /// status fields moved to <see cref="ShortCircuitResponse.Trailers"/> when there are messages,
    /// kept in the headers (trailers-only) when there are none. A recording without a status (cut
    /// before its trailers) gets none: the client then reports the missing status itself.
    /// </summary>
    public static ShortCircuitResponse Shape(int statusCode, HeaderList headers, ReadOnlyMemory<byte> body)
    {
        ArgumentNullException.ThrowIfNull(headers);
        if (!IsGrpc(headers) || body.IsEmpty)
        {
            return new ShortCircuitResponse(IsGrpc(headers) ? 200 : statusCode, headers, body);
        }

        var leading = new HeaderList();
        var trailers = new HeaderList();
        for (var i = 0; i < headers.Count; i++)
        {
            var (name, value) = headers[i];
            (IsStatusField(name) ? trailers : leading).Add(name, value);
        }

        return new ShortCircuitResponse(200, leading, body) { Trailers = trailers.Count == 0 ? null : trailers };
    }

    /// <summary>The status code of a gRPC answer (from its trailers, else its headers), or null when it has none.</summary>
    public static int? StatusOf(ShortCircuitResponse answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var text = answer.Trailers?.Get("grpc-status") ?? answer.Headers.Get("grpc-status");
        return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var code) ? code : null;
    }

    /// <summary>The decoded <c>grpc-message</c> of a gRPC answer, or null.</summary>
    public static string? MessageOf(ShortCircuitResponse answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var status = answer.Trailers ?? answer.Headers;
        return GrpcCallStatus.Parse(status.Get("grpc-status"), status.Get("grpc-message"), null)?.Message;
    }
}
