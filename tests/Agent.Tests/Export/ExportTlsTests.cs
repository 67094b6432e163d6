using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Agent.Hosting;
using SpIstio.Agent.Tests.Infrastructure;
using SpIstio.Core.Configuration;

namespace SpIstio.Agent.Tests.Export;

/// <summary>
/// Outside the mesh the exporter trusts a private CA (<c>export.ca_file</c>) and presents a client
/// certificate (<c>export.client_cert_file</c> / <c>client_key_file</c>) to a real HTTPS backend
/// that requires one. Certificates are made by the test.
/// </summary>
public sealed class ExportTlsTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sp-export-tls-" + Guid.NewGuid().ToString("N"));
    private readonly ECDsa _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly X509Certificate2 _ca;

    public ExportTlsTests()
    {
        Directory.CreateDirectory(_directory);
        var request = new CertificateRequest("CN=sp-test-ca", _caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        _ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        File.WriteAllText(CaPath, _ca.ExportCertificatePem());
    }

    private string CaPath => Path.Combine(_directory, "ca.crt");

    public void Dispose()
    {
        _ca.Dispose();
        _caKey.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Exporter_TrustsTheCaFile_AndPresentsTheClientCertificate()
    {
        await using var backend = await HttpsBackend.StartAsync(Issue("CN=sp-test-backend", server: true));
        using var client = Issue("CN=sp-agent-client", server: false);
        File.WriteAllText(Path.Combine(_directory, "client.crt"), client.ExportCertificatePem());
        File.WriteAllText(Path.Combine(_directory, "client.key"), client.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        var loaded = Load(backend.Address, "export.ca_file=" + CaPath, "export.client_cert_file=" + Path.Combine(_directory, "client.crt"), "export.client_key_file=" + Path.Combine(_directory, "client.key"));
        await using var runtime = AgentRuntime.Create(loaded, new LogCollector());

        runtime.Pipeline.Complete(TestExchanges.Get("/over-tls"), sampled: true);
        await OtlpReceiver.WaitUntilAsync(() => backend.ClientSubjects.Count > 0);
        await OtlpReceiver.WaitUntilAsync(() => runtime.Exporter.Health.Snapshot().LastSuccess is not null);

        Assert.Equal("CN=sp-agent-client", Assert.Single(backend.ClientSubjects));
        Assert.Equal(1, runtime.Metrics.ExportSpansExported.Value);
    }

    [Fact]
    public async Task Exporter_WithoutTheCaFile_DoesNotTrustAPrivateCa()
    {
        await using var backend = await HttpsBackend.StartAsync(Issue("CN=sp-test-backend", server: true), requireClientCertificate: false);
        await using var runtime = AgentRuntime.Create(Load(backend.Address), new LogCollector());

        runtime.Pipeline.Complete(TestExchanges.Get("/untrusted"), sampled: true);
        await OtlpReceiver.WaitUntilAsync(() => runtime.Exporter.Health.Snapshot().BackendReachable == false);

        Assert.Equal(0, backend.Requests);
        Assert.Equal(0, runtime.Metrics.ExportSpansExported.Value);
    }

    [Fact]
    public void BadTlsFiles_AreConfigurationErrorsNamingTheKey()
    {
        var missing = Path.Combine(_directory, "missing.pem");
        var notPem = Path.Combine(_directory, "not.pem");
        File.WriteAllText(notPem, "hello");

        Assert.Contains(Errors("export.ca_file=" + missing), e => e.StartsWith("export.ca_file: '" + missing + "' does not exist", StringComparison.Ordinal));
        Assert.Contains(Errors("export.ca_file=" + notPem), e => e.StartsWith("export.ca_file: '" + notPem + "' holds no PEM certificate", StringComparison.Ordinal));
        Assert.Contains(Errors("export.client_cert_file=" + CaPath), e => e.StartsWith("export.client_cert_file: '" + CaPath + "' needs its pair", StringComparison.Ordinal));
        Assert.Contains(Errors("export.client_cert_file=" + CaPath, "export.client_key_file=" + notPem), e => e.StartsWith("export.client_cert_file: '" + CaPath + "' with client_key_file", StringComparison.Ordinal));
    }

    private static List<string> Errors(params string[] sets) =>
        AgentConfigLoader.Load(null, new Dictionary<string, string?>(), sets).Report.Errors.Select(e => e.ToString()).ToList();

    private static AgentOptions Load(Uri backend, params string[] sets)
    {
        var loaded = AgentConfigLoader.Load(null, new Dictionary<string, string?>(), ["sp_backend_url=" + backend, "public_key=test-key", "export.batch_delay_ms=20", .. sets]);
        Assert.True(loaded.Report.IsValid, string.Join("; ", loaded.Report.Errors));
        return loaded.Options;
    }

    private X509Certificate2 Issue(string subject, bool server)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(server ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
        if (server)
        {
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(san.Build());
        }

        var serial = RandomNumberGenerator.GetBytes(8);
        using var issued = request.Create(_ca, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(50), serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>A real HTTPS OTLP endpoint that requires (or not) a client certificate and records its subject.</summary>
    private sealed class HttpsBackend : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly List<string> _subjects = [];
        private int _requests;

        private HttpsBackend(WebApplication app) => _app = app;

        public Uri Address { get; private set; } = null!;

        public int Requests => Volatile.Read(ref _requests);

        public IReadOnlyList<string> ClientSubjects
        {
            get
            {
                lock (_subjects)
                {
                    return [.. _subjects];
                }
            }
        }

        public static async Task<HttpsBackend> StartAsync(X509Certificate2 certificate, bool requireClientCertificate = true)
        {
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.Services.AddLogging();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(new HttpsConnectionAdapterOptions
            {
                ServerCertificate = certificate,
                ClientCertificateMode = requireClientCertificate ? ClientCertificateMode.RequireCertificate : ClientCertificateMode.NoCertificate,
                // The client certificate is checked by the assertion (its subject); the test CA is not in the machine's store.
                ClientCertificateValidation = (_, _, _) => true,
            })));
            var app = builder.Build();
            var backend = new HttpsBackend(app);
            app.Run(async context =>
            {
                Interlocked.Increment(ref backend._requests);
                var client = await context.Connection.GetClientCertificateAsync(context.RequestAborted);
                if (client is not null)
                {
                    lock (backend._subjects)
                    {
                        backend._subjects.Add(client.Subject);
                    }
                }

                await context.Request.Body.CopyToAsync(Stream.Null, context.RequestAborted);
                context.Response.ContentType = "application/x-protobuf";
                context.Response.StatusCode = StatusCodes.Status200OK;
            });
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            backend.Address = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
            return backend;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }
}
