using System.Globalization;
using System.Reflection;
using SpIstio.Agent.Benchmarks;

// Envoy-like ext_proc load against `sp agent extproc` (separate process) and a no-op baseline
// server on the same stack; see bench/README.md.
if (args.Contains("--noop-server"))
{
    return await NoopServer.RunAsync();
}

var seconds = Option("--seconds", 10);
var concurrency = Option("--streams", 64);
var connections = Option("--connections", 2);
var rate = Option("--rate", 0);
var runs = Option("--runs", 3);
// --slices N: each max cell is measured as N slices per server, interleaved (see MeasurePairAsync).
var slices = Math.Max(1, Option("--slices", 5));
// --body-bytes 2048,65536: one sync and one observability cell per body size (each way).
var bodySizes = OptionList("--body-bytes", [2048, 65536]);
// --agent aot (default): the Native AOT sp-agent the image and the manifests run, published once
// from src/AgentHost; --agent jit: `dotnet sp.dll`; --agent PATH: that sp-agent binary.
var agentChoice = StringOption("--agent", "aot");
var ic = CultureInfo.InvariantCulture;
var here = AppContext.BaseDirectory;
var duration = TimeSpan.FromSeconds(seconds);
var warmup = TimeSpan.FromSeconds(2);
// The agent runs with the runtime settings the image and the manifests ship: sp.runtimeconfig.json
// (src/Cli/Cli.csproj), copied next to the driver with sp.dll. The no-op baseline runs with the
// same file (dotnet exec --runtimeconfig), so both servers get the same GC, whatever the driver uses.
var spRuntimeConfig = Path.Combine(here, "sp.runtimeconfig.json");

Console.WriteLine(string.Create(ic, $"ext_proc load: {concurrency} concurrent streams over {connections} HTTP/2 connections, {seconds} s per scenario, {Environment.ProcessorCount} cores"));
await using var sink = await OtlpSink.StartAsync();
var scripts = new List<ExchangeScript> { ExchangeScript.HeaderOnly() };
foreach (var size in bodySizes)
{
    scripts.Add(ExchangeScript.Body(size, observability: false));
    scripts.Add(ExchangeScript.Body(size, observability: true));
}

using var http = new HttpClient();

// Both servers live for the whole bench; a run measures every cell once, the no-op server's and then
// the agent's, and the bench makes --runs runs (default 3, as issue 13 asks). A ratio is computed
// within one run and the table prints its median over the runs with the per-run values beside it, so
// a run disturbed by something else on the machine shows instead of moving the figure.
await using var noop = await ServerProcess.StartAsync(Assembly.GetEntryAssembly()!.Location, ["--noop-server"], spRuntimeConfig, hasAdmin: false);
string[] agentArgs =
[
    "agent", "extproc", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ignore-env",
    "--set", "sp_backend_url=" + sink.BaseAddress, "--set", "public_key=bench",
];
var agentExecutable = agentChoice switch
{
    "jit" => null,
    "aot" => await AotAgent.PublishAsync(here),
    _ => agentChoice,
};
Console.WriteLine("  agent: " + (agentExecutable ?? "dotnet " + Path.Combine(here, "sp.dll") + " (JIT)"));
await using var agent = agentExecutable is null
    ? await ServerProcess.StartAsync(Path.Combine(here, "sp.dll"), agentArgs, runtimeConfig: null, hasAdmin: true)
    : await ServerProcess.StartExecutableAsync(agentExecutable, agentArgs, hasAdmin: true);
await Task.Delay(1000);
var rssIdle = agent.RssMiB();
Console.WriteLine(string.Create(ic, $"  agent pid {agent.Pid}, idle RSS {rssIdle:F1} MiB ({agent.AnonymousRssMiB():F1} MiB anonymous, the rest mapped runtime and assembly files)"));
double rssPeak = 0;
using var sampling = new CancellationTokenSource();
var sampler = Task.Run(async () =>
{
    while (!sampling.IsCancellationRequested)
    {
        rssPeak = Math.Max(rssPeak, agent.RssMiB());
        await Task.Delay(100);
    }
});

// Every script once on each server before the first measured cell, unmeasured: the no-op server
// and the driver are JIT-compiled (and the driver uses tiered PGO), so without it the first cells
// measured whichever side went first on colder code than the cells after it.
foreach (var script in scripts)
{
    await LoadDriver.RunAsync(noop.GrpcAddress, script, concurrency, connections, warmup, null);
    await LoadDriver.RunAsync(agent.GrpcAddress, script, concurrency, connections, warmup, null);
}

// cells[(name, load)][run]: one measured cell per run, in the order first measured.
var cells = new Dictionary<(string Name, string Load), List<Cell>>();
for (var run = 1; run <= runs; run++)
{
    var baseline = new Dictionary<string, (LoadResult Result, double Cpu)>();
    foreach (var script in scripts)
    {
        var (noopCell, agentCell) = await MeasurePairAsync(script, agentFirst: run % 2 == 0);
        baseline[script.Name] = noopCell;
        Console.WriteLine(string.Create(ic, $"  run {run} baseline {script.Name}: {noopCell.Result.PerSecond:F0} exchanges/s, {noopCell.Cpu:F0} CPU-µs/exchange"));
        Record(run, agentCell with { Ratio = agentCell.PerSecond / noopCell.Result.PerSecond, NoopCpu = noopCell.Cpu });
    }

    // Paced: the latency target is stated at half the no-op server's rate of the same cell in this
    // run (or --rate when given).
    foreach (var size in bodySizes)
    {
        var paced = ExchangeScript.Body(size, observability: false);
        var offered = rate > 0 ? rate : Math.Max(1, (int)(baseline[paced.Name].Result.PerSecond / 2));
        await WaitForAgentExportAsync();
        Record(run, await MeasureAsync(paced, rate > 0 ? offered.ToString(ic) + "/s" : "half the no-op rate", offered));
    }
}

sampling.Cancel();
await sampler;
rssPeak = Math.Max(rssPeak, agent.PeakRssMiB());
var metrics = await agent.ScrapeAsync(http);
Console.WriteLine("  agent export: " + Histogram.Line(metrics, "sp_export_spans_total{result=\"exported\"}") + " spans exported, "
    + Histogram.Line(metrics, "sp_export_dropped_total") + " dropped; sink received " + sink.Requests.ToString(ic) + " batches");

// GC work per exchange over the whole run (every cell): collections and allocation do not depend
// on the machine's load, unlike CPU time (issue 13: queued exchanges surviving gen0).
var exchangesSeen = Number(metrics, "sp_export_spans_total{result=\"exported\"}") + Number(metrics, "sp_export_dropped_total");
if (exchangesSeen > 0)
{
    Console.WriteLine(string.Create(ic, $"  agent GC over the run: gen0 / gen1 / gen2 {1000 * Number(metrics, "dotnet_gc_collections_total{generation=\"0\"}") / exchangesSeen:F2} / {1000 * Number(metrics, "dotnet_gc_collections_total{generation=\"1\"}") / exchangesSeen:F2} / {1000 * Number(metrics, "dotnet_gc_collections_total{generation=\"2\"}") / exchangesSeen:F2} per 1,000 exchanges, {Number(metrics, "dotnet_gc_allocated_bytes_total") / exchangesSeen:F0} bytes allocated per exchange"));
}

var allocHeaders = await InProcessRun.RunAsync(ExchangeScript.HeaderOnly(), 50_000);
var allocBodies = new List<(string Name, (double BytesPerExchange, double P50Us, double P99Us) Result)>();
foreach (var size in bodySizes)
{
    // Fewer exchanges for large bodies: each one is redacted in full.
    var script = ExchangeScript.Body(size, observability: false);
    allocBodies.Add((script.Name, await InProcessRun.RunAsync(script, Math.Max(2_000, 50_000 * 2048 / Math.Max(size, 2048)))));
}

Console.WriteLine();
Console.WriteLine(string.Create(ic, $"Median of {runs} run(s); the ratio's per-run values in brackets."));
Console.WriteLine("| scenario | load | exchanges/s | vs baseline | exchange round trip p50 / p99 (ms) | server time per message p50 / p99 (µs, agent histogram) | errors | CPU-µs per exchange, agent (no-op) |");
Console.WriteLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
foreach (var ((name, load), measured) in cells)
{
    var ratios = measured.Where(c => c.Ratio is not null).Select(c => c.Ratio!.Value).ToArray();
    var noopCpu = measured.Where(c => c.NoopCpu is not null).Select(c => c.NoopCpu!.Value).ToArray();
    Console.WriteLine("| " + string.Join(" | ",
        name,
        load,
        Median(measured.Select(c => c.PerSecond)).ToString("F0", ic)
            + (measured.Any(c => c.Offered is not null) ? " of " + Median(measured.Select(c => c.Offered ?? double.NaN)).ToString("F0", ic) + " offered" : ""),
        ratios.Length == 0 ? "–" : Median(ratios).ToString("P0", ic) + " [" + string.Join(", ", ratios.Select(r => r.ToString("P0", ic))) + "]",
        string.Create(ic, $"{Median(measured.Select(c => c.RoundTripP50Ms)):F2} / {Median(measured.Select(c => c.RoundTripP99Ms)):F2}"),
        string.Create(ic, $"{Median(measured.Select(c => c.ServerP50Us)):F0} / {Median(measured.Select(c => c.ServerP99Us)):F0}"),
        measured.Sum(c => c.Errors).ToString(ic),
        noopCpu.Length == 0
            ? Median(measured.Select(c => c.Cpu)).ToString("F0", ic)
            : string.Create(ic, $"{Median(measured.Select(c => c.Cpu)):F0} ({Median(noopCpu):F0})")) + " |");
}

Console.WriteLine();
Console.WriteLine("| capture path in process (no transport) | bytes allocated per exchange | server time per message p50 / p99 (µs) |");
Console.WriteLine("| --- | ---: | ---: |");
Console.WriteLine(string.Create(ic, $"| headers-only sync | {allocHeaders.BytesPerExchange:F0} | {allocHeaders.P50Us:F1} / {allocHeaders.P99Us:F1} |"));
foreach (var (name, alloc) in allocBodies)
{
    Console.WriteLine(string.Create(ic, $"| {name} | {alloc.BytesPerExchange:F0} | {alloc.P50Us:F1} / {alloc.P99Us:F1} |"));
}

Console.WriteLine();
Console.WriteLine(string.Create(ic, $"agent RSS: idle {rssIdle:F1} MiB, peak under load (VmHWM) {rssPeak:F1} MiB"));
return 0;

static double Number(string metrics, string series) =>
    double.TryParse(Histogram.Line(metrics, series), NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ? value : 0;

// Process CPU time per exchange: the server's work, which unlike exchanges/s holds on a loaded machine.
static double CpuPerExchange(TimeSpan cpu, LoadResult result) => result.Exchanges == 0 ? double.NaN : cpu.TotalMicroseconds / result.Exchanges;

// The no-op server's cell and the agent's cell of one script, measured interleaved: --slices
// slices of each, alternating A B B A A B ... (the first side alternates between runs), so both see
// the same seconds of the machine and a drift in its load falls on both alike; a shared machine's
// load moves within seconds, and cells measured one after the other (the first method) gave
// ratios from 0.59 to 1.00 for the same build. Each slice starts once the agent has exported what
// it queued before: that export is the agent's work, so its CPU counts in the agent's slice, and it
// must not run in the no-op server's slice.
async Task<((LoadResult Result, double Cpu) Noop, Cell Agent)> MeasurePairAsync(ExchangeScript script, bool agentFirst)
{
    await WaitForAgentExportAsync();
    await LoadDriver.RunAsync(noop.GrpcAddress, script, concurrency, connections, warmup, null);
    await LoadDriver.RunAsync(agent.GrpcAddress, script, concurrency, connections, warmup, null);
    await WaitForAgentExportAsync();

    var slice = duration / slices;
    var noopResults = new List<LoadResult>();
    var agentResults = new List<LoadResult>();
    var noopCpu = TimeSpan.Zero;
    var agentCpu = TimeSpan.Zero;
    var serverBefore = Histogram.Parse(await agent.ScrapeAsync(http));
    for (var i = 0; i < slices; i++)
    {
        var agentNow = agentFirst == (i % 2 == 0);
        for (var side = 0; side < 2; side++, agentNow = !agentNow)
        {
            var server = agentNow ? agent : noop;
            var cpuBefore = server.CpuTime();
            var result = await LoadDriver.RunAsync(server.GrpcAddress, script, concurrency, connections, slice, null);
            if (agentNow)
            {
                await WaitForAgentExportAsync();
                agentCpu += agent.CpuTime() - cpuBefore;
                agentResults.Add(result);
            }
            else
            {
                noopCpu += noop.CpuTime() - cpuBefore;
                noopResults.Add(result);
            }
        }
    }

    var serverTime = Histogram.Parse(await agent.ScrapeAsync(http)).Minus(serverBefore);
    var noopTotal = LoadResult.Combine(noopResults);
    var agentTotal = LoadResult.Combine(agentResults);
    var agentCell = new Cell(script.Name, "max", null, agentTotal.PerSecond, null, agentTotal.Percentile(0.50), agentTotal.Percentile(0.99),
        serverTime.Quantile(0.50) * 1e6, serverTime.Quantile(0.99) * 1e6, agentTotal.Errors, CpuPerExchange(agentCpu, agentTotal), null);
    return ((noopTotal, CpuPerExchange(noopCpu, noopTotal)), agentCell);
}

// A paced cell of the agent (no ratio: the no-op server is not paced).
async Task<Cell> MeasureAsync(ExchangeScript script, string load, double pace)
{
    var before = Histogram.Parse(await agent.ScrapeAsync(http));
    var cpuBefore = agent.CpuTime();
    var result = await LoadDriver.RunAsync(agent.GrpcAddress, script, concurrency, connections, duration, pace);
    var cpu = CpuPerExchange(agent.CpuTime() - cpuBefore, result);
    var server = Histogram.Parse(await agent.ScrapeAsync(http)).Minus(before);
    return new Cell(script.Name, load, pace, result.PerSecond, null, result.Percentile(0.50), result.Percentile(0.99),
        server.Quantile(0.50) * 1e6, server.Quantile(0.99) * 1e6, result.Errors, cpu, null);
}

// Waits until the agent holds nothing for export (queue empty, no bytes in flight), so the export of
// the cells before does not run in the next cell (up to 30 s; a backend that keeps failing would
// never empty it, and the bench says so).
async Task WaitForAgentExportAsync()
{
    var deadline = DateTime.UtcNow.AddSeconds(30);
    while (true)
    {
        var metrics = await agent.ScrapeAsync(http);
        if (Number(metrics, "sp_export_queue_depth") == 0 && Number(metrics, "sp_export_inflight_bytes") == 0)
        {
            return;
        }

        if (DateTime.UtcNow > deadline)
        {
            Console.WriteLine("  the agent's export did not drain within 30 s; measuring anyway");
            return;
        }

        // Each look renders the agent's whole /metrics page, which the agent's CPU pays: a few looks
        // per slice (a batch waits up to export.batch_delay_ms, 200 ms), not dozens.
        await Task.Delay(50);
    }
}

void Record(int run, Cell cell)
{
    if (!cells.TryGetValue((cell.Name, cell.Load), out var list))
    {
        list = cells[(cell.Name, cell.Load)] = [];
    }

    list.Add(cell);
    Console.WriteLine(string.Create(ic, $"  run {run} {cell.Name} {cell.Load}: {cell.PerSecond:F0} exchanges/s{(cell.Offered is { } o ? $" of {o:F0} offered" : "")}, server p99 {cell.ServerP99Us:F0} µs, {cell.Cpu:F0} CPU-µs/exchange"));
}

static double Median(IEnumerable<double> values)
{
    var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
    return sorted.Length == 0 ? double.NaN
        : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2]
        : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
}

int[] OptionList(string name, int[] fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length
        ? [.. args[i + 1].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => int.Parse(v, CultureInfo.InvariantCulture))]
        : fallback;
}

string StringOption(string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

int Option(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}
