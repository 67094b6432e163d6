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

// cells[(name, load)][run]: one measured cell per run, in the order first measured.
var cells = new Dictionary<(string Name, string Load), List<Cell>>();
for (var run = 1; run <= runs; run++)
{
    // Baseline: a server that answers CONTINUE and captures nothing.
    var baseline = new Dictionary<string, (LoadResult Result, double Cpu)>();
    foreach (var script in scripts)
    {
        await LoadDriver.RunAsync(noop.GrpcAddress, script, concurrency, connections, warmup, null);
        var cpuBefore = noop.CpuTime();
        var result = await LoadDriver.RunAsync(noop.GrpcAddress, script, concurrency, connections, duration, null);
        baseline[script.Name] = (result, CpuPerExchange(noop.CpuTime() - cpuBefore, result));
        Console.WriteLine(string.Create(ic, $"  run {run} baseline {script.Name}: {result.PerSecond:F0} exchanges/s, {baseline[script.Name].Cpu:F0} CPU-µs/exchange"));
    }

    foreach (var script in scripts)
    {
        await LoadDriver.RunAsync(agent.GrpcAddress, script, concurrency, connections, warmup, null);
        var (reference, referenceCpu) = baseline[script.Name];
        Record(run, await MeasureAsync(script, "max", null, reference.PerSecond, referenceCpu));
    }

    // Paced: the latency target is stated at half the no-op server's rate of the same cell in this
    // run (or --rate when given).
    foreach (var size in bodySizes)
    {
        var paced = ExchangeScript.Body(size, observability: false);
        var offered = rate > 0 ? rate : Math.Max(1, (int)(baseline[paced.Name].Result.PerSecond / 2));
        Record(run, await MeasureAsync(paced, rate > 0 ? offered.ToString(ic) + "/s" : "half the no-op rate", offered, null, null));
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

// One cell of the agent, measured under load (warm-up done by the caller).
async Task<Cell> MeasureAsync(ExchangeScript script, string load, double? pace, double? referencePerSecond, double? referenceCpu)
{
    var before = Histogram.Parse(await agent.ScrapeAsync(http));
    var cpuBefore = agent.CpuTime();
    var result = await LoadDriver.RunAsync(agent.GrpcAddress, script, concurrency, connections, duration, pace);
    var cpu = CpuPerExchange(agent.CpuTime() - cpuBefore, result);
    var server = Histogram.Parse(await agent.ScrapeAsync(http)).Minus(before);
    return new Cell(script.Name, load, pace, result.PerSecond, result.PerSecond / referencePerSecond, result.Percentile(0.50), result.Percentile(0.99),
        server.Quantile(0.50) * 1e6, server.Quantile(0.99) * 1e6, result.Errors, cpu, referenceCpu);
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
