using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Replay.Jobs;

/// <summary>Limits and timing of replay jobs.</summary>
public sealed record ReplayJobOptions
{
    /// <summary>How often a worker looks for jobs another backend queued (jobs queued here wake it at once).</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a claim holds without a progress write; a worker writes after every exchange, so only a stopped backend lets it run out.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>The most exchanges one job replays: a job holds the recording and the kept responses in memory.</summary>
    public int MaxExchanges { get; init; } = 500;

    /// <summary>The most of each replayed response body kept for the diff page (500 × 64 KiB bounds a report at 32 MiB).</summary>
    public int KeepResponseBytes { get; init; } = 64 * 1024;

    /// <summary>Per-request timeout against the target.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>Starting replay jobs: checks the request, records the job, and wakes this backend's worker.</summary>
public sealed class ReplayJobs(IReplayJobStore jobs, ISpanQueryStore spans, TimeProvider time)
{
    /// <summary>The longest ignore-rule list accepted, in characters.</summary>
    public const int MaxIgnoreLength = 4096;

    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);

    /// <summary>
    /// Records a job replaying <paramref name="sessionId"/> of <paramref name="tenant"/> against
    /// <paramref name="target"/>; the caller has checked the admin scope. Returns the job, or null
    /// with every problem found (each names the field).
    /// </summary>
    public async Task<(ReplayJob? Job, IReadOnlyList<string> Problems)> StartAsync(
        long tenant, string? sessionId, string? target, string? service, string? ignore, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        var targetUri = ParseTarget(target, problems);
        if (string.IsNullOrWhiteSpace(sessionId))
        {
            problems.Add("session: a session id is required");
        }
        else if (await spans.GetSessionAsync(tenant, sessionId, cancellationToken).ConfigureAwait(false) is null)
        {
            problems.Add("session: no session '" + sessionId + "' is stored for this tenant");
        }

        if (ignore is { Length: > MaxIgnoreLength })
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"ignore: at most {MaxIgnoreLength} characters"));
        }

        if (problems.Count > 0)
        {
            return (null, problems);
        }

        var job = await jobs.AddReplayJobAsync(tenant, new ReplayJob
        {
            SessionId = sessionId!,
            Service = string.IsNullOrWhiteSpace(service) ? null : service.Trim(),
            Target = targetUri!.AbsoluteUri,
            IgnoreRules = string.IsNullOrWhiteSpace(ignore) ? null : ignore.Trim(),
            CreatedAt = time.GetUtcNow(),
        }, cancellationToken).ConfigureAwait(false);
        _wake.Release();
        return (job, []);
    }

    /// <summary>Waits until a job is queued here or <paramref name="interval"/> passes.</summary>
    internal async Task WaitForWorkAsync(TimeSpan interval, TimeProvider clock, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(interval, clock);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        try
        {
            await _wake.WaitAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The poll interval passed: look for jobs other backends queued.
        }
    }

    /// <summary>An absolute http or https URL with a trailing slash (so request paths append to a base path), or null with a problem.</summary>
    public static Uri? ParseTarget(string? text, List<string> problems)
    {
        ArgumentNullException.ThrowIfNull(problems);
        if (Uri.TryCreate(text?.Trim(), UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            && string.IsNullOrEmpty(uri.Query) && string.IsNullOrEmpty(uri.Fragment) && string.IsNullOrEmpty(uri.UserInfo))
        {
            return uri.AbsoluteUri.EndsWith('/') ? uri : new Uri(uri.AbsoluteUri + "/");
        }

        problems.Add("target: '" + text + "' is not an http or https URL without query, fragment or credentials (e.g. http://web.staging:8080)");
        return null;
    }
}

/// <summary>Registration of replay jobs.</summary>
public static class ReplayJobServices
{
    /// <summary>
    /// Registers <see cref="ReplayJobs"/> and the worker when <paramref name="store"/> keeps replay jobs
    /// (both shipped stores do; a test's wrapper around one may not, and then the pages say that jobs are off).
    /// </summary>
    public static IServiceCollection AddReplayJobs(this IServiceCollection services, ISpanStore store, ReplayJobOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (store is IReplayJobStore jobStore)
        {
            services.AddSingleton(jobStore);
            services.AddSingleton(options);
            services.AddSingleton<ReplayJobs>();
            services.AddHostedService<ReplayJobWorker>();
        }

        return services;
    }
}
