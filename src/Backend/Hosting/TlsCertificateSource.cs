using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using SpIstio.Core.Startup;

namespace SpIstio.Backend.Hosting;

/// <summary>
/// The backend's TLS certificate from a PEM certificate (chain) and a PEM private key, reloaded
/// when either file changes, as cert-manager rotates a mounted Secret in place. Kestrel asks for
/// the certificate on every handshake (ServerCertificateSelector); the files' timestamps and sizes
/// are checked at most once a second, and a pair that does not load (the key written before the
/// certificate, say) keeps the previous certificate until it does.
/// </summary>
internal sealed class TlsCertificateSource
{
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(1);

    private readonly string _certificatePath;
    private readonly string _keyPath;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private X509Certificate2 _current;
    private FileStamp _stamp;
    private long _nextCheck;

    private TlsCertificateSource(string certificatePath, string keyPath, TimeProvider time, ILogger logger, X509Certificate2 current, FileStamp stamp)
    {
        _certificatePath = certificatePath;
        _keyPath = keyPath;
        _time = time;
        _logger = logger;
        _current = current;
        _stamp = stamp;
        _nextCheck = time.GetTimestamp();
    }

    /// <summary>Loads the pair; a file that is missing, not PEM, or a key that does not match is a one-line <see cref="StartupException"/>.</summary>
    public static TlsCertificateSource Load(string certificatePath, string keyPath, TimeProvider time, ILogger logger)
    {
        var stamp = FileStamp.Of(certificatePath, keyPath);
        try
        {
            return new TlsCertificateSource(certificatePath, keyPath, time, logger, LoadPair(certificatePath, keyPath), stamp);
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new StartupException(
                "--tls-cert " + certificatePath + " / --tls-key " + keyPath + ": cannot load a PEM certificate and its private key: " + ex.Message.ReplaceLineEndings(" "),
                StartupFailure.InvalidInput,
                ex);
        }
    }

    /// <summary>The certificate to present now, reloaded first when the files changed.</summary>
    public X509Certificate2 Current
    {
        get
        {
            var now = _time.GetTimestamp();
            if (now >= Volatile.Read(ref _nextCheck))
            {
                ReloadIfChanged(now);
            }

            return Volatile.Read(ref _current);
        }
    }

    private void ReloadIfChanged(long now)
    {
        lock (_lock)
        {
            if (now < _nextCheck)
            {
                return;
            }

            _nextCheck = now + (long)(CheckInterval.TotalSeconds * _time.TimestampFrequency);
            FileStamp stamp;
            try
            {
                stamp = FileStamp.Of(_certificatePath, _keyPath);
            }
            catch (IOException)
            {
                return;
            }

            if (stamp == _stamp)
            {
                return;
            }

            try
            {
                var fresh = LoadPair(_certificatePath, _keyPath);
                Volatile.Write(ref _current, fresh);
                _stamp = stamp;
                TlsLog.Reloaded(_logger, _certificatePath, fresh.Subject, fresh.NotAfter);
            }
            catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                // Not recorded as seen: the next check tries again (the other file may still be on its way).
                TlsLog.ReloadFailed(_logger, _certificatePath, ex.Message);
            }
        }
    }

    private static X509Certificate2 LoadPair(string certificatePath, string keyPath)
    {
        using var pem = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        // A PEM key is ephemeral; SslStream wants a persisted one on some platforms, so go through PKCS#12.
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    private readonly record struct FileStamp(DateTime CertificateWritten, long CertificateLength, DateTime KeyWritten, long KeyLength)
    {
        public static FileStamp Of(string certificatePath, string keyPath)
        {
            var certificate = new FileInfo(certificatePath);
            var key = new FileInfo(keyPath);
            return new FileStamp(certificate.LastWriteTimeUtc, certificate.Exists ? certificate.Length : -1, key.LastWriteTimeUtc, key.Exists ? key.Length : -1);
        }
    }
}

/// <summary>TLS log messages (event ids 100–109).</summary>
internal static partial class TlsLog
{
    [LoggerMessage(100, LogLevel.Information, "TLS certificate reloaded from {Path}: {Subject}, valid until {NotAfter:o}")]
    public static partial void Reloaded(ILogger logger, string path, string subject, DateTime notAfter);

    [LoggerMessage(101, LogLevel.Warning, "TLS certificate files at {Path} changed but do not load ({Reason}); still serving the previous certificate")]
    public static partial void ReloadFailed(ILogger logger, string path, string reason);
}
