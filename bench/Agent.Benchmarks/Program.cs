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

var rows = new List<string[]>();
using var http = new HttpClient();

// Baseline: a server that answers CONTINUE and captures nothing.
var baseline = new Dictionary<string, LoadResult>();
var baselineCpu = new Dictionary<string, double>();
await using (var noop = await ServerProcess.StartAsync(Assembly.GetEntryAssembly()!.Location, ["--noop-server"], spRuntimeConfig, hasAdmin: false))
{
    foreach (var script in scripts)
    {
        await LoadDriver.RunAsync(noop.GrpcAddress, script, concurrency, connections, warmup, null);
        var cpuBefore = noop.CpuTime();
        baseline[script.Name] = await LoadDriver.RunAsync(noop.GrpcAddress, script, concurrency, connections, duration, null);
        baselineCpu[script.Name] = CpuPerExchange(noop.CpuTime() - cpuBefore, baseline[script.Name]);
        Console.WriteLine(string.Create(ic, $"  baseline {script.Name}: {baseline[script.Name].PerSecond:F0} exchanges/s, {baselineCpu[script.Name]:F0} CPU-µs/exchange"));
    }
}

double rssIdle;
double rssPeak = 0;
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
await using (var agent = agentExecutable is null
    ? await ServerProcess.StartAsync(Path.Combine(here, "sp.dll"), agentArgs, runtimeConfig: null, hasAdmin: true)
    : await ServerProcess.StartExecutableAsync(agentExecutable, agentArgs, hasAdmin: true))
{
    await Task.Delay(1000);
    rssIdle = agent.RssMiB();
    Console.WriteLine(string.Create(ic, $"  agent pid {agent.Pid}, idle RSS {rssIdle:F1} MiB ({agent.AnonymousRssMiB():F1} MiB anonymous, the rest mapped runtime and assembly files)"));
    using var sampling = new CancellationTokenSource();
    var sampler = Task.Run(async () =>
    {
        while (!sampling.IsCancellationRequested)
        {
            rssPeak = Math.Max(rssPeak, agent.RssMiB());
            await Task.Delay(100);
        }
    });

    foreach (var script in scripts)
    {
        await LoadDriver.RunAsync(agent.GrpcAddress, script, concurrency, connections, warmup, null);
        var before = Histogram.Parse(await agent.ScrapeAsync(http));
        var cpuBefore = agent.CpuTime();
        var result = await LoadDriver.RunAsync(agent.GrpcAddress, script, concurrency, connections, duration, null);
        var cpu = CpuPerExchange(agent.CpuTime() - cpuBefore, result);
        var server = Histogram.Parse(await agent.ScrapeAsync(http)).Minus(before);
        rows.Add(Row(script.Name, "max", result, baseline[script.Name], server, cpu, baselineCpu[script.Name]));
        Console.WriteLine("  " + string.Join(" | ", rows[^1]));
    }

    // Paced: the latency target is stated at half the no-op server's rate of the same cell
    // (or --rate when given).
    foreach (var size in bodySizes)
    {
        var paced = ExchangeScript.Body(size, observability: false);
        var offered = rate > 0 ? rate : Math.Max(1, (int)(baseline[paced.Name].PerSecond / 2));
        var pacedBefore = Histogram.Parse(await agent.ScrapeAsync(http));
        var pacedCpuBefore = agent.CpuTime();
        var pacedResult = await LoadDriver.RunAsync(agent.GrpcAddress, paced, concurrency, connections, duration, offered);
        var pacedCpu = CpuPerExchange(agent.CpuTime() - pacedCpuBefore, pacedResult);
        var pacedServer = Histogram.Parse(await agent.ScrapeAsync(http)).Minus(pacedBefore);
        rows.Add(Row(paced.Name, offered.ToString(ic) + "/s", pacedResult, null, pacedServer, pacedCpu, null));
        Console.WriteLine("  " + string.Join(" | ", rows[^1]));
    }

    sampling.Cancel();
    await sampler;
    rssPeak = Math.Max(rssPeak, agent.PeakRssMiB());
    var metrics = await agent.ScrapeAsync(http);
    Console.WriteLine("  agent export: " + Histogram.Line(metrics, "sp_export_spans_total{result=\"exported\"}") + " spans exported, "
        + Histogram.Line(metrics, "sp_export_dropped_total") + " dropped; sink received " + sink.Requests.ToString(ic) + " batches");
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
Console.WriteLine("| scenario | load | exchanges/s | vs baseline | exchange round trip p50 / p99 (ms) | server time per message p50 / p99 (µs, agent histogram) | errors | CPU-µs per exchange, agent (no-op) |");
Console.WriteLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
foreach (var row in rows)
{
    Console.WriteLine("| " + string.Join(" | ", row) + " |");
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

// Process CPU time per exchange: the server's work, which unlike exchanges/s holds on a loaded machine.
static double CpuPerExchange(TimeSpan cpu, LoadResult result) => result.Exchanges == 0 ? double.NaN : cpu.TotalMicroseconds / result.Exchanges;

string[] Row(string name, string load, LoadResult result, LoadResult? reference, Histogram server, double cpu, double? referenceCpu) =>
[
    name,
    load,
    result.PerSecond.ToString("F0", ic),
    reference is null ? "–" : (result.PerSecond / reference.PerSecond).ToString("P0", ic),
    string.Create(ic, $"{result.Percentile(0.50):F2} / {result.Percentile(0.99):F2}"),
    string.Create(ic, $"{server.Quantile(0.50) * 1e6:F0} / {server.Quantile(0.99) * 1e6:F0}"),
    result.Errors.ToString(ic),
    referenceCpu is { } noopCpu ? string.Create(ic, $"{cpu:F0} ({noopCpu:F0})") : cpu.ToString("F0", ic),
];

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
