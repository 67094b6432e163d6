using SpIstio.Core.Configuration;

namespace SpIstio.Cli.Commands;

/// <summary>
/// Caps the managed heap of an agent process (ext_proc or capture proxy) from its configuration,
/// at start-up: <c>2 × export.max_inflight_bytes</c> plus headroom for what the process holds
/// outside the capture budget (<see cref="HeadroomFor"/>). What the agent keeps alive for capture is
/// bounded by the byte budget (bodies being captured, exchanges queued or being sent), plus at most
/// one encoded copy of what is being sent; the heap, though, grows far past that between full
/// collections under large bodies (a gen2 of dead exchanges: 52 MiB of heap for 7.5 MiB held,
/// measured under the 64 KiB bench cell). A hard limit makes the GC collect before it grows past
/// it, so the agent's peak RSS follows its budget (issue 13: at most 150 MiB peak).
/// </summary>
/// <remarks>
/// Set here, for the agent commands only, with <see cref="GC.RefreshMemoryLimit"/>: the same
/// <c>sp</c> binary and runtimeconfig also run the backend, whose heap must not get the agent's
/// limit. Left alone when the operator chose a limit (<c>DOTNET_GCHeapHardLimit</c>,
/// <c>DOTNET_GCHeapHardLimitPercent</c>, or the runtimeconfig), when the runtime's own limit
/// (75 % of a container's memory limit) is already lower, and when cache rules are configured (the
/// cache holds recorded responses outside the capture budget).
/// <para>
/// A hard limit is a cliff: past it any allocation throws OutOfMemoryException, Kestrel's accept
/// loop can die and the runtime can abort the process (issue 13; bench/proxy/overload.sh). So what
/// is outside the budget must be bounded too, and counted here: for the capture proxy that is its
/// open connections, bounded by <c>proxy.max_connections</c> at
/// <see cref="ProxyOptions.ConnectionAllowanceBytes"/> each; for the ext_proc server its connections
/// and streams, bounded by <c>extproc.max_connections</c> and <c>extproc.max_streams</c> at
/// <see cref="ExtProcServerOptions.ConnectionAllowanceBytes"/> and
/// <see cref="ExtProcServerOptions.StreamAllowanceBytes"/> each.
/// </para>
/// </remarks>
internal static class AgentHeapLimit
{
    /// <summary>
    /// The agent's own live objects outside the capture budget and outside connections: rules,
    /// metrics, pools, the exporter's encoder and HTTP client.
    /// </summary>
    internal const long OwnBytes = 16L * 1024 * 1024;

    /// <summary>Which agent front end the limit is for.</summary>
    internal enum FrontEnd
    {
        /// <summary><c>sp agent extproc</c>: its connections and streams are bounded by <c>extproc.max_connections</c> and <c>extproc.max_streams</c>.</summary>
        ExtProc,

        /// <summary><c>sp agent proxy</c>: its open connections are bounded by <c>proxy.max_connections</c>.</summary>
        Proxy,

        /// <summary><c>sp agent proxy --grpc-listen</c>: its gRPC streams are bounded by <c>proxy.max_grpc_streams</c> too.</summary>
        GrpcProxy,
    }

    /// <summary>
    /// Headroom over twice the capture budget: <see cref="OwnBytes"/> plus, for the proxy,
    /// <c>proxy.max_connections</c> × <see cref="ProxyOptions.ConnectionAllowanceBytes"/> (48 MiB in
    /// all at the default 128 connections), for the ext_proc agent <c>extproc.max_connections</c> ×
    /// <see cref="ExtProcServerOptions.ConnectionAllowanceBytes"/> + <c>extproc.max_streams</c> ×
    /// <see cref="ExtProcServerOptions.StreamAllowanceBytes"/> (48 MiB in all by default); with the
    /// proxy's gRPC listener, <c>proxy.max_grpc_streams</c> × <see cref="ProxyOptions.ConnectionAllowanceBytes"/> more.
    /// </summary>
    internal static long HeadroomFor(AgentOptions options, FrontEnd frontEnd)
    {
        ArgumentNullException.ThrowIfNull(options);
        return frontEnd switch
        {
            FrontEnd.Proxy => OwnBytes + ((long)options.Proxy.MaxConnections * ProxyOptions.ConnectionAllowanceBytes),
            FrontEnd.GrpcProxy => OwnBytes + ((long)(options.Proxy.MaxConnections + options.Proxy.MaxGrpcStreams) * ProxyOptions.ConnectionAllowanceBytes),
            _ => OwnBytes + ((long)options.ExtProc.MaxConnections * ExtProcServerOptions.ConnectionAllowanceBytes)
                + ((long)options.ExtProc.MaxStreams * ExtProcServerOptions.StreamAllowanceBytes),
        };
    }

    /// <summary>The heap the configuration needs: <c>2 × export.max_inflight_bytes</c> + <see cref="HeadroomFor"/>.</summary>
    internal static long Needed(AgentOptions options, FrontEnd frontEnd) =>
        (2 * options.Export.MaxInflightBytes) + HeadroomFor(options, frontEnd);

    /// <summary>The heap limit the agent sets for <paramref name="options"/>, or null when it leaves the heap alone.</summary>
    internal static long? For(AgentOptions options, FrontEnd frontEnd, Func<string, string?> environment)
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

        var limit = Needed(options, frontEnd);
        var current = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return current > 0 && current <= limit ? null : limit;
    }

    /// <summary>
    /// Applies <see cref="For"/>; returns a warning line when the runtime refused the limit (the agent
    /// then runs with the runtime's own), or when the limit the agent runs with (the operator's, or
    /// the container's) is below what the configuration needs, else null.
    /// </summary>
    internal static string? Apply(AgentOptions options, FrontEnd frontEnd)
    {
        if (For(options, frontEnd, Environment.GetEnvironmentVariable) is not { } limit)
        {
            var current = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            var needed = Needed(options, frontEnd);
            return options.Cache.Rules.Count == 0 && current > 0 && current < needed
                ? $"warning: the managed heap limit is {current} bytes (the container's memory limit or DOTNET_GCHeapHardLimit), below the {needed} bytes this configuration needs ({Formula(frontEnd)}): under load allocations can fail; lower {frontEnd switch { FrontEnd.Proxy => "proxy.max_connections", FrontEnd.GrpcProxy => "proxy.max_connections, proxy.max_grpc_streams", _ => "extproc.max_connections, extproc.max_streams" }} or export.max_inflight_bytes, or raise the memory limit"
                : null;
        }

        AppContext.SetData("GCHeapHardLimit", (ulong)limit);
        try
        {
            GC.RefreshMemoryLimit();
            return null;
        }
        catch (InvalidOperationException e)
        {
            return $"warning: the managed heap limit of {limit} bytes ({Formula(frontEnd)}) was not applied: {e.Message}";
        }
    }

    private static string Formula(FrontEnd frontEnd) => frontEnd switch
    {
        FrontEnd.Proxy => "2 x export.max_inflight_bytes + 16 MiB + proxy.max_connections x 256 KiB",
        FrontEnd.GrpcProxy => "2 x export.max_inflight_bytes + 16 MiB + (proxy.max_connections + proxy.max_grpc_streams) x 256 KiB",
        _ => "2 x export.max_inflight_bytes + 16 MiB + extproc.max_connections x 256 KiB + extproc.max_streams x 64 KiB",
    };
}
