using System.Net;
using System.Net.Http.Headers;
using SpIstio.Core.Configuration;

namespace SpIstio.Agent.Export;

/// <summary>
/// The one way the agent talks HTTP to its backend (exports, cache lookups, mock pulls): the
/// same connection pool settings, User-Agent and <c>x-public-key</c>, and endpoints joined under
/// <c>sp_backend_url</c> the same way.
/// </summary>
internal static class BackendHttp
{
    /// <summary>
    /// A client for the backend. Its timeout is infinite because every caller bounds its calls
    /// on the injected clock (Polly's timeout, a lookup deadline). A test handler is not disposed
    /// with the client.
    /// </summary>
    public static HttpClient CreateClient(
        AgentOptions options,
        HttpMessageHandler? handler,
        int maxResponseBytes,
        DecompressionMethods decompression = DecompressionMethods.None)
    {
        ArgumentNullException.ThrowIfNull(options);
        var client = handler is null
            ? new HttpClient(
                new SocketsHttpHandler
                {
                    PooledConnectionLifetime = TimeSpan.FromMinutes(2),
                    MaxConnectionsPerServer = Math.Max(1, options.MaxConcurrentRequests),
                    AutomaticDecompression = decompression,
                    UseProxy = false,
                },
                disposeHandler: true)
            : new HttpClient(handler, disposeHandler: false);
        client.Timeout = Timeout.InfiniteTimeSpan;
        client.MaxResponseContentBufferSize = maxResponseBytes;
        client.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("sp-agent", OtlpExporter.Version));
        if (!string.IsNullOrEmpty(options.PublicKey))
        {
            client.DefaultRequestHeaders.TryAddWithoutValidation(OtlpExporter.PublicKeyHeader, options.PublicKey);
        }

        return client;
    }

    /// <summary><paramref name="relative"/> (a path, optionally with a query) under <c>sp_backend_url</c>, whatever its trailing slash.</summary>
    public static Uri Endpoint(Uri backend, string relative)
    {
        ArgumentNullException.ThrowIfNull(backend);
        return new Uri(backend.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/" + relative, UriKind.Absolute);
    }
}
