using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
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
        HttpClient client;
        if (handler is null)
        {
            var sockets = new SocketsHttpHandler
            {
                PooledConnectionLifetime = TimeSpan.FromMinutes(2),
                MaxConnectionsPerServer = Math.Max(1, options.MaxConcurrentRequests),
                AutomaticDecompression = decompression,
                UseProxy = false,
            };
            ConfigureTls(sockets.SslOptions, options.Export);
            client = new HttpClient(sockets, disposeHandler: true);
        }
        else
        {
            client = new HttpClient(handler, disposeHandler: false);
        }

        client.Timeout = Timeout.InfiniteTimeSpan;
        client.MaxResponseContentBufferSize = maxResponseBytes;
        client.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("sp-agent", OtlpExporter.Version));
        if (!string.IsNullOrEmpty(options.PublicKey))
        {
            client.DefaultRequestHeaders.TryAddWithoutValidation(OtlpExporter.PublicKeyHeader, options.PublicKey);
        }

        return client;
    }

    /// <summary>
    /// TLS to a backend outside the mesh: trust <c>export.ca_file</c> instead of the system's roots,
    /// and present <c>export.client_cert_file</c>. The files were checked when the options were validated.
    /// </summary>
    internal static void ConfigureTls(SslClientAuthenticationOptions ssl, ExportOptions export)
    {
        if (export.CaFile.Length > 0)
        {
            var roots = new X509Certificate2Collection();
            roots.ImportFromPemFile(export.CaFile);
            ssl.CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                // A private CA rarely publishes revocation lists the agent could reach.
                RevocationMode = X509RevocationMode.NoCheck,
            };
            ssl.CertificateChainPolicy.CustomTrustStore.AddRange(roots);
        }

        if (export.ClientCertFile.Length > 0)
        {
            using var pem = X509Certificate2.CreateFromPemFile(export.ClientCertFile, export.ClientKeyFile);
            // A PEM key is ephemeral; SslStream needs one it can use for the handshake on every platform.
            ssl.ClientCertificates = [X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null)];
        }
    }

    /// <summary><paramref name="relative"/> (a path, optionally with a query) under <c>sp_backend_url</c>, whatever its trailing slash.</summary>
    public static Uri Endpoint(Uri backend, string relative)
    {
        ArgumentNullException.ThrowIfNull(backend);
        return new Uri(backend.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/" + relative, UriKind.Absolute);
    }
}
