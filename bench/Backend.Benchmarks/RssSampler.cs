using System.Globalization;

/// <summary>The process's resident set, read from /proc, and its peak sampled every 50 ms while running.</summary>
internal sealed class RssSampler : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _peak;

    private RssSampler()
    {
        _peak = Rss();
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                Interlocked.Exchange(ref _peak, Math.Max(Interlocked.Read(ref _peak), Rss()));
                try
                {
                    await Task.Delay(50, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        });
    }

    /// <summary>The highest RSS seen since <see cref="Start"/>.</summary>
    public long Peak => Math.Max(Interlocked.Read(ref _peak), Rss());

    /// <summary>Starts sampling.</summary>
    public static RssSampler Start() => new();

    /// <summary>The process's resident set now, in bytes.</summary>
    public static long Rss()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    /// <summary>The RSS once <paramref name="seconds"/> have passed: what the process handed back on its own meanwhile.</summary>
    public static async Task<long> RssAfterAsync(int seconds)
    {
        await Task.Delay(TimeSpan.FromSeconds(seconds));
        return Rss();
    }

    /// <summary>Bytes as whole MB, for the bench tables.</summary>
    public static string Mb(long bytes) => (bytes / (1024.0 * 1024)).ToString("N0", CultureInfo.InvariantCulture) + " MB";

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
