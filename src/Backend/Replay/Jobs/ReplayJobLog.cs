using Microsoft.Extensions.Logging;

namespace SpIstio.Backend.Replay.Jobs;

internal static partial class ReplayJobLog
{
    [LoggerMessage(5200, LogLevel.Information, "Replay job {Job} of tenant {Tenant}: replaying session {Session} against {Target}")]
    public static partial void Started(ILogger logger, long job, long tenant, string session, string target);

    [LoggerMessage(5201, LogLevel.Information, "Replay job {Job}: {Passed} passed, {Regressions} regressions, {Errors} errors")]
    public static partial void Finished(ILogger logger, long job, int passed, int regressions, int errors);

    [LoggerMessage(5202, LogLevel.Warning, "Replay job {Job} failed: {Reason}")]
    public static partial void Failed(ILogger logger, long job, string reason);

    [LoggerMessage(5203, LogLevel.Warning, "Replay job {Job}: this backend lost its lease (another step of the store failed it); stopping")]
    public static partial void LostLease(ILogger logger, long job);

    [LoggerMessage(5204, LogLevel.Warning, "Replay jobs: {Count} job(s) were failed because the backend running them stopped")]
    public static partial void Abandoned(ILogger logger, int count);

    [LoggerMessage(5205, LogLevel.Error, "Replay jobs: the store did not answer; retrying")]
    public static partial void StoreFailed(ILogger logger, Exception exception);
}
