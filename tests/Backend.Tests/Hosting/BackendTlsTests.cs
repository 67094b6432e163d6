using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Data.Sqlite;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Startup;

namespace SpIstio.Backend.Tests.Hosting;

/// <summary>
/// TLS on both backend listeners from PEM files, with certificates the test makes, and the
/// certificate reloaded when the files are replaced in place (as cert-manager rotates a Secret).
/// </summary>
public sealed class BackendTlsTests : IDisposable
{
    private readonly string _directory = BackendFixture.NewDirectory();

    public BackendTlsTests() => Directory.CreateDirectory(_directory);

    private string CertPath => Path.Combine(_directory, "tls.crt");

    private string KeyPath => Path.Combine(_directory, "tls.key");

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task BothListeners_ServeTheCertificate_AndARotatedOneWithoutARestart()
    {
        var first = WritePair("sp-test-first");
        await using var server = await BackendServer.StartAsync(Options());

        Assert.Equal("https", server.Address.Scheme);
        Assert.Equal("https", server.GrpcAddress!.Scheme);
        var (status, presented) = await GetAsync(new Uri(server.Address, "/healthz"), HttpVersion.Version11);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(first, presented);
        var (_, grpcPresented) = await GetAsync(server.GrpcAddress, HttpVersion.Version20);
        Assert.Equal(first, grpcPresented);

        var second = WritePair("sp-test-second");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        string? now;
        do
        {
            // Each probe is a new connection, so a new handshake; the source checks the files at most once a second.
            (_, now) = await GetAsync(new Uri(server.Address, "/healthz"), HttpVersion.Version11);
        }
        while (now != second && !deadline.IsCancellationRequested);

        Assert.Equal(second, now);
        var (_, grpcAfter) = await GetAsync(server.GrpcAddress, HttpVersion.Version20);
        Assert.Equal(second, grpcAfter);
    }

    [Fact]
    public async Task FilesThatAreNotPem_AreAOneLineStartupError()
    {
        await File.WriteAllTextAsync(CertPath, "not a certificate");
        await File.WriteAllTextAsync(KeyPath, "not a key");

        var error = await Assert.ThrowsAsync<StartupException>(() => BackendServer.StartAsync(Options()));

        Assert.StartsWith("--tls-cert " + CertPath + " / --tls-key " + KeyPath + ": cannot load a PEM certificate and its private key", error.Message, StringComparison.Ordinal);
        Assert.Equal(StartupFailure.InvalidInput, error.Failure);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public async Task AKeyOfAnotherCertificate_IsAOneLineStartupError()
    {
        WritePair("sp-test-one");
        var otherKey = Path.Combine(_directory, "other.key");
        using (var other = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            await File.WriteAllTextAsync(otherKey, other.ExportPkcs8PrivateKeyPem());
        }

        var error = await Assert.ThrowsAsync<StartupException>(() => BackendServer.StartAsync(Options() with { TlsKeyPath = otherKey }));

        Assert.StartsWith("--tls-cert " + CertPath + " / --tls-key " + otherKey + ": cannot load", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NamesAMissingFileAndAHalfPair()
    {
        var missing = Path.Combine(_directory, "missing.crt");

        var bothMissing = new BackendOptions { TlsCertificatePath = missing, TlsKeyPath = missing }.Validate();
        Assert.Contains("tls-cert: '" + missing + "' does not exist", bothMissing);
        Assert.Contains("tls-key: '" + missing + "' does not exist", bothMissing);
        Assert.Contains("tls-cert: '" + missing + "' is given without --tls-key; give both or neither", new BackendOptions { TlsCertificatePath = missing }.Validate());
        Assert.Contains("tls-key: '" + missing + "' is given without --tls-cert; give both or neither", new BackendOptions { TlsKeyPath = missing }.Validate());
    }

    private BackendOptions Options() => new()
    {
        Listen = "127.0.0.1:0",
        GrpcListen = "127.0.0.1:0",
        Store = "sqlite:" + Path.Combine(_directory, "sp.db"),
        TlsCertificatePath = CertPath,
        TlsKeyPath = KeyPath,
    };

    /// <summary>Writes a new self-signed pair for 127.0.0.1 (key first, as a rotation might) and returns its thumbprint.</summary>
    private string WritePair(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + name, key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        File.WriteAllText(KeyPath, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(CertPath, certificate.ExportCertificatePem());
        return certificate.Thumbprint;
    }

    /// <summary>One request on a new connection; the status and the thumbprint the server presented.</summary>
    private static async Task<(HttpStatusCode Status, string? Thumbprint)> GetAsync(Uri uri, Version version)
    {
        string? presented = null;
        using var handler = new SocketsHttpHandler
        {
            SslOptions =
            {
                // The test trusts exactly what it sees and records it; the assertions decide.
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    presented = certificate is null ? null : new X509Certificate2(certificate).Thumbprint;
                    return true;
                },
            },
        };
        using var http = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Get, uri) { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var response = await http.SendAsync(request);
        return (response.StatusCode, presented);
    }
}
