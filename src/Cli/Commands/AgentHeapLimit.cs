using SpIstio.Core.Configuration;

namespace SpIstio.Cli.Commands;

/// <summary>
/// Caps the managed heap of an agent process (ext_proc or capture proxy) from its configuration,
/// at start-up: <c>2 × export.max_inflight_bytes + 48 MiB</c>. What the agent keeps alive is bounded by the
/// capture byte budget (bodies being captured, exchanges queued or being sent), plus at most one
/// encoded copy of what is being sent and a few MiB of its own; the heap, though, grows far past
/// that between full collections under large bodies (a gen2 of dead exchanges: 52 MiB of heap for
/// 7.5 MiB held, measured under the 64 KiB bench cell). A hard limit makes the GC collect before it
/// grows past it, so the agent's peak RSS follows its budget (issue 13: at most 150 MiB peak).
/// </summary>
/// <remarks>
/// Set here, for the agent commands only, with <see cref="GC.RefreshMemoryLimit"/>: the same
/// <c>sp</c> binary and runtimeconfig also run the backend, whose heap must not get the agent's
/// limit. Left alone when the operator chose a limit (<c>DOTNET_GCHeapHardLimit</c>,
/// <c>DOTNET_GCHeapHardLimitPercent</c>, or the runtimeconfig), when the runtime's own limit
/// (75 % of a container's memory limit) is already lower, and when cache rules are configured (the
/// cache holds recorded responses outside the capture budget).
/// </remarks>
internal static class AgentHeapLimit
{
    /// <summary>
    /// Headroom over twice the capture budget: the agent's own live objects (rules, metrics, pools) and,
    /// above all, what every open connection holds outside the budget (Kestrel's pipes, the forwarder's
    /// copy buffers, the upstream client's buffers: about 150 KiB a connection at 64 KiB bodies). A hard
    /// limit is a cliff: past it any allocation throws OutOfMemoryException, and in the 64 KiB bench
    /// cells 16 MiB of headroom was reached, taking down Kestrel's accept loop, then the process
    /// ("Out of memory.", aborted), and before the exporter's loops were restarted on a fault, the
    /// exporter for good (issue 13; bench/proxy/overload.sh reproduces it).
    /// </summary>
    internal const long HeadroomBytes = 48L * 1024 * 1024;

    /// <summary>The heap limit the agent sets for <paramref name="options"/>, or null when it leaves the heap alone.</summary>
    internal static long? For(AgentOptions options, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(environment);
        if (options.Cache.Rules.Count > 0
            || !string.IsNullOrEmpty(environment("DOTNET_GCHeapHardLimit"))
            || !string.IsNullOrEmpty(environment("DOTNET_GCHeapHardLimitPercent"))
            || AppContext.GetData("System.GC.HeapHardLimit") is not null
            || AppContext.GetData("System.GC.HeapHardLimitPercent") is not null
            || AppContext.GetData("GCHeapHardLimit") is not null)
        {
            return null;
        }

        var limit = (2 * options.Export.MaxInflightBytes) + HeadroomBytes;
        var current = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return current > 0 && current <= limit ? null : limit;
    }

    /// <summary>
    /// Applies <see cref="For"/>; returns a warning line when the runtime refused the limit (the agent
    /// then runs with the runtime's own), else null.
    /// </summary>
    internal static string? Apply(AgentOptions options)
    {
        if (For(options, Environment.GetEnvironmentVariable) is not { } limit)
        {
            return null;
        }

        AppContext.SetData("GCHeapHardLimit", (ulong)limit);
        try
        {
            GC.RefreshMemoryLimit();
            return null;
        }
        catch (InvalidOperationException e)
        {
            return $"warning: the managed heap limit of {limit} bytes (2 x export.max_inflight_bytes + 48 MiB) was not applied: {e.Message}";
        }
    }
}
