using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using SpIstio.Agent.Pipeline;

namespace SpIstio.Agent.Proxy;

/// <summary>
/// Writes the agent's own answer (a recorded response, a mock, a refusal) to the client: status,
/// headers, body, and trailers after the body (a gRPC answer's status) through
/// <see cref="IHttpResponseTrailersFeature"/> when the connection can carry them (HTTP/2 and
/// later). Over HTTP/1.1 trailers cannot be sent, so they go with the headers instead.
/// </summary>
internal static class ShortCircuitWriter
{
    public static async Task WriteAsync(HttpResponse response, ShortCircuitResponse answer, CancellationToken cancellationToken)
    {
        response.StatusCode = answer.StatusCode;
        foreach (var header in answer.ClientHeaders)
        {
            response.Headers.Append(header.Key, header.Value);
        }

        var trailers = answer.Trailers is { Count: > 0 } list && response.SupportsTrailers() ? list : null;
        if (trailers is null && answer.Trailers is { } late)
        {
            foreach (var header in late)
            {
                response.Headers.Append(header.Key, header.Value);
            }
        }

        if (trailers is not null)
        {
            // Declared before the body, as HTTP asks of a sender of trailers (RFC 9110 §6.6.2).
            foreach (var header in trailers)
            {
                response.DeclareTrailer(header.Key);
            }
        }

        response.ContentLength = answer.Body.Length;
        await response.Body.WriteAsync(answer.Body, cancellationToken).ConfigureAwait(false);
        if (trailers is not null)
        {
            foreach (var header in trailers)
            {
                response.AppendTrailer(header.Key, header.Value);
            }
        }
    }
}
