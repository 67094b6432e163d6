using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using SpIstio.Backend.Storage;

// Store load benchmark (bench/README.md, "Backend"):
//   dotnet run -c Release --project bench/Backend.Benchmarks -- [--spans 1000000] [--load-seconds 180] [--stores sqlite,postgres]
// PostgreSQL: SP_BENCH_POSTGRES (a connection string with CREATE DATABASE rights), else a throwaway
// cluster from /usr/lib/postgresql/15/bin with default durability settings (fsync on).
// Reader memory: --read-memory (ReadMemoryBench.cs). Ingest memory: --ingest-memory (IngestMemoryBench.cs).
var args2 = args;
if (args.Contains("--read-memory"))
{
    //   dotnet run -c Release --project bench/Backend.Benchmarks -- --read-memory [--settle-seconds 60]
    await ReadMemoryBench.RunAsync(IntArg("--settle-seconds", 60));
    return;
}

if (args.Contains("--ingest-memory"))
{
    //   dotnet run -c Release --project bench/Backend.Benchmarks -- --ingest-memory [--settle-seconds 30]
    await IngestMemoryBench.RunAsync(IntArg("--settle-seconds", 30));
    return;
}

if (args.Contains("--codec"))
{
    //   dotnet run -c Release --project bench/Backend.Benchmarks -- --codec [--rounds 20]
    CodecBench.Run(IntArg("--rounds", 20));
    return;
}

if (args.Contains("--profile"))
{
    //   dotnet run -c Release --project bench/Backend.Benchmarks -- --profile [--batches 20]
    ProfileBench.Run(IntArg("--batches", 20));
    return;
}

int targetSpans = IntArg("--spans", 1_000_000);
int loadSeconds = IntArg("--load-seconds", 180);
int warmupSpans = IntArg("--warmup-spans", 0);
string[] stores = (StringArg("--stores") ?? "sqlite,postgres").Split(',');

Console.WriteLine($"Backend store benchmark: batches of {Workload.BatchSize}, 2 KiB request + 2 KiB response bodies, target {targetSpans:N0} spans or {loadSeconds} s of loading per store; {Environment.ProcessorCount} cores");
{
    // Compression alone (BodyCodec, as the stores apply it) over the workload's bodies: without a
    // dictionary, and with one trained as a store trains a tenant's (its first values).
    var sample = new Workload(1);
    long ignored = 0, raw = 0, stored = 0, withDictionary = 0;
    var first = sample.NextBatch(ref ignored);
    var samples = first.SelectMany(s => new[] { BodyCodec.DictionarySample(s.RequestBody.Span), BodyCodec.DictionarySample(s.ResponseBody.Span) }).Take(CodecDictionaries.SampleValues);
    byte[] trained = ZstdSharp.DictBuilder.TrainFromBuffer(samples, CodecDictionaries.DictionaryBytes);
    CodecDictionary.MarkTrainedOnJsonColumns(trained);
    using var dictionary = new CodecDictionary(1, 1, trained);
    for (int i = 0; i < 4; i++)
    {
        foreach (var span in sample.NextBatch(ref ignored))
        {
            raw += span.RequestBody.Length + span.ResponseBody.Length;
            stored += BodyCodec.Encode(span.RequestBody.Span)!.Length + BodyCodec.Encode(span.ResponseBody.Span)!.Length;
            withDictionary += BodyCodec.Encode(span.RequestBody.Span, dictionary)!.Length + BodyCodec.Encode(span.ResponseBody.Span, dictionary)!.Length;
        }
    }

    Console.WriteLine($"body compression: {raw:N0} raw bytes -> {stored:N0} stored ({(double)stored / raw:N2}x), {withDictionary:N0} with a trained dictionary ({(double)withDictionary / raw:N2}x)");
}

var results = new List<string>();
foreach (string kind in stores)
{
    string work = Path.Combine(Path.GetTempPath(), "sp-bench-" + Guid.NewGuid().ToString("N")[..8]);
    Directory.CreateDirectory(work);
    PgCluster? cluster = null;
    string spec;
    Func<Task<long>> diskBytes;
    if (kind == "sqlite")
    {
        string file = Path.Combine(work, "sp.db");
        spec = "sqlite:" + file;
        diskBytes = async () =>
        {
            // Fold the WAL into the database first: what is measured is the data, not a WAL a reader kept
            // from being checkpointed. A TRUNCATE checkpoint that the store's checkpointer or indexer
            // blocks answers busy rather than failing, and the file then holds the WAL's copies of pages
            // too: before the load that inflated the baseline subtracted from the load's bytes (0.28-0.30
            // where the file is 0.32, 2026-11-28 sqlite section). It is retried until it completes.
            await using (var c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + file))
            {
                await c.OpenAsync();
                await using var cmd = c.CreateCommand();
                cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
                long busy = 1, walFrames = 0;
                int attempts = 0;
                while (busy != 0)
                {
                    if (++attempts > 1)
                    {
                        // The store's own checkpointer or indexer is mid-pass; it ends within milliseconds.
                        await Task.Delay(10);
                    }

                    await using (var checkpoint = await cmd.ExecuteReaderAsync())
                    {
                        await checkpoint.ReadAsync();
                        (busy, walFrames) = (checkpoint.GetInt64(0), checkpoint.GetInt64(1));
                    }

                    if (busy != 0 && attempts == 1000)
                    {
                        throw new InvalidOperationException("The WAL checkpoint before measuring the file stayed busy for 10 s: a reader of the store holds it.");
                    }
                }

                cmd.CommandText = "PRAGMA freelist_count";
                long freePages = (long)(await cmd.ExecuteScalarAsync())!;
                cmd.CommandText = "PRAGMA page_size";
                long pageSize = (long)(await cmd.ExecuteScalarAsync())!;
                Console.WriteLine($"sqlite: WAL checkpointed (TRUNCATE, {walFrames:N0} frames, {attempts} attempt(s)) before the file is measured: {(File.Exists(file + "-wal") ? new FileInfo(file + "-wal").Length : 0):N0} B of WAL left; {freePages:N0} free pages ({freePages * pageSize:N0} B) in the file");

                // Where the bytes are (the bundled SQLite has no dbstat): the stored values per span;
                // the rest of the file is row and page overhead, the b-tree indexes and FTS5.
                cmd.CommandText = "SELECT COUNT(*), SUM(COALESCE(length(request_body), 0) + COALESCE(length(response_body), 0)), " +
                    "SUM(COALESCE(length(request_headers), 0) + COALESCE(length(response_headers), 0)), SUM(COALESCE(length(attributes), 0) + COALESCE(length(span_model), 0)), " +
                    "SUM(length(trace_id) + length(span_id) + COALESCE(length(parent_span_id), 0) + length(name) + length(service) + COALESCE(length(session_id), 0) + " +
                    "COALESCE(length(authority), 0) + COALESCE(length(path), 0) + COALESCE(length(route), 0)), " +
                    // FTS5's segments: their merge state at the end of a load moves the file between runs.
                    "(SELECT SUM(length(block)) FROM spans_fts_data), (SELECT COUNT(*) FROM spans_fts_data) FROM spans";
                await using var reader = await cmd.ExecuteReaderAsync();
                if (await reader.ReadAsync() && reader.GetInt64(0) > 0)
                {
                    double n = reader.GetInt64(0);
                    Console.WriteLine($"sqlite values per span: bodies {reader.GetInt64(1) / n:N0} B, headers {reader.GetInt64(2) / n:N0} B, attributes + model {reader.GetInt64(3) / n:N0} B, ids and text columns {reader.GetInt64(4) / n:N0} B, FTS5 segments {reader.GetInt64(5) / n:N0} B ({reader.GetInt64(6):N0} blocks); file {Directory.GetFiles(work).Sum(f => new FileInfo(f).Length) / n:N0} B");
                }
            }

            return Directory.GetFiles(work).Sum(f => new FileInfo(f).Length);
        };
    }
    else
    {
        string? external = Environment.GetEnvironmentVariable("SP_BENCH_POSTGRES");
        string admin = external ?? (cluster = await PgCluster.StartAsync(work)).ConnectionString;
        string conn = await PgCluster.CreateDatabaseAsync(admin, "sp_bench_" + Environment.ProcessId);
        spec = "postgres:" + conn;
        diskBytes = async () =>
        {
            await using var c = new NpgsqlConnection(conn);
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand("CHECKPOINT; SELECT pg_database_size(current_database())", c);
            long size = (long)(await cmd.ExecuteScalarAsync())!;

            // Where the bytes are: the largest relations (heap, TOAST and indexes each).
            await using var parts = new NpgsqlCommand("SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relkind IN ('r', 'i', 't') ORDER BY 2 DESC LIMIT 10", c);
            await using var reader = await parts.ExecuteReaderAsync();
            var list = new List<string>();
            while (await reader.ReadAsync())
            {
                list.Add($"{reader.GetString(0)} {reader.GetInt64(1) / 1024:N0} KiB");
            }

            Console.WriteLine("postgres relations: " + string.Join(", ", list));
            return size;
        };
    }

    try
    {
        results.Add(await RunAsync(kind, spec, diskBytes, cluster?.ServerPid));
    }
    finally
    {
        if (cluster is not null)
        {
            await cluster.DisposeAsync();
        }

        if (args.Contains("--keep-files"))
        {
            // For a look at where the bytes are (e.g. the sqlite3 shell's dbstat table) after the run.
            Console.WriteLine($"{kind}: files kept in {work}");
        }
        else
        {
            Directory.Delete(work, recursive: true);
        }
    }
}

Console.WriteLine();
Console.WriteLine("| store | ingest spans/s (first 100k) | ingest spans/s (whole load) | spans loaded | load time | search lag p50/p99 | session list p50/p99 | session list page 20 p50/p99 | session view p50/p99 | text filter p50/p99 | disk bytes/exchange | raw bytes/exchange | disk/raw |");
Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
foreach (var line in results)
{
    Console.WriteLine(line);
}

// End to end: OTLP/HTTP clients -> backend -> store (EndToEndBench.cs).
int e2eRequests = IntArg("--e2e-requests", Math.Max(1, targetSpans / Workload.BatchSize));
int e2eClients = IntArg("--e2e-clients", 8);
// Requests sent before the clock starts, as the store cell's warm-up: the server's JIT tiers up and the
// tenant trains its dictionary on them, so the rate is that of a backend that has been running.
int e2eWarmupRequests = IntArg("--e2e-warmup-requests", Math.Min(16, e2eRequests));
var e2e = new List<string>();
foreach (string kind in stores)
{
    string work = Path.Combine(Path.GetTempPath(), "sp-bench-e2e-" + Guid.NewGuid().ToString("N")[..8]);
    Directory.CreateDirectory(work);
    PgCluster? cluster = null;
    try
    {
        string spec;
        if (kind == "sqlite")
        {
            spec = "sqlite:" + Path.Combine(work, "sp.db");
        }
        else
        {
            string? external = Environment.GetEnvironmentVariable("SP_BENCH_POSTGRES");
            string admin = external ?? (cluster = await PgCluster.StartAsync(work)).ConnectionString;
            spec = "postgres:" + await PgCluster.CreateDatabaseAsync(admin, "sp_bench_e2e_" + Environment.ProcessId);
        }

        e2e.Add(await EndToEndBench.RunAsync(kind, spec, e2eRequests, e2eWarmupRequests, e2eClients, loadSeconds));
    }
    finally
    {
        if (cluster is not null)
        {
            await cluster.DisposeAsync();
        }

        Directory.Delete(work, recursive: true);
    }
}

Console.WriteLine();
Console.WriteLine("| store (end to end, OTLP/HTTP protobuf+gzip) | clients | requests x spans | spans/s | request p50 / p99 | failed requests |");
Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
foreach (var line in e2e)
{
    Console.WriteLine(line);
}

async Task<string> RunAsync(string kind, string spec, Func<Task<long>> diskBytes, int? serverPid)
{
    var cpu = new CpuMeter(serverPid);
    await using var store = await SpanStoreFactory.OpenAsync(spec, NullLoggerFactory.Instance, null, CancellationToken.None);
    if (StringArg("--setup-" + kind) is { } setup)
    {
        // A/B of a schema or index setting before it becomes a migration, e.g.
        // --setup-postgres "ALTER INDEX span_search_terms SET (fastupdate = off)".
        if (kind == "sqlite")
        {
            await using var c = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + spec["sqlite:".Length..]);
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = setup;
            await cmd.ExecuteNonQueryAsync();
        }
        else
        {
            await using var c = new NpgsqlConnection(spec["postgres:".Length..]);
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand(setup, c);
            await cmd.ExecuteNonQueryAsync();
        }

        Console.WriteLine($"{kind}: setup applied: {setup}");
    }

    var tenant = await store.EnsureTenantAsync("bench", CancellationToken.None);
    // Batches reach the store as OTLP requests do in the backend: through its ingest queue, which
    // prepares (encodes) each request on a pool thread as soon as it is queued and commits with its
    // writers (IngestWriters), so preparing the next batch overlaps writing this one.
    // --direct calls InsertSpansAsync instead, one caller per batch in flight (the model before
    // 2026-11-28, for an A/B of the two).
    bool direct = args2.Contains("--direct");
    var queueDefaults = new SpIstio.Backend.Hosting.BackendOptions();
    await using var queue = new SpIstio.Backend.Ingest.IngestQueue(store, queueDefaults.QueueCapacity, queueDefaults.MaxBatchSpans,
        new SpIstio.Backend.Telemetry.BackendMetrics(new SpIstio.Core.Metrics.MetricRegistry()), NullLogger.Instance, TimeProvider.System);
    async Task StoreAsync(long tenantId, List<StoredSpan> batch)
    {
        if (direct)
        {
            await store.InsertSpansAsync(tenantId, batch, CancellationToken.None);
        }
        else if (queue.TryEnqueue(tenantId, batch, out var committed))
        {
            await committed;
        }
        else
        {
            throw new InvalidOperationException($"The ingest queue refused a batch: more than its {queue.Capacity:N0} spans in flight.");
        }
    }

    if (warmupSpans > 0)
    {
        // Steady state: the JIT compiles the ingest path (zstd, SQLite/Npgsql, the converter) over
        // the first seconds, a third of the process's CPU in a 20 s run. A backend runs for days,
        // so that start-up cost is paid once here, in another tenant, before anything is measured.
        var warm = await store.EnsureTenantAsync("warmup", CancellationToken.None);
        var warmWorkload = new Workload(99);
        long ignoredRaw = 0;
        for (int n = 0; n < warmupSpans; n += Workload.BatchSize)
        {
            await StoreAsync(warm.Id, warmWorkload.NextBatch(ref ignoredRaw));
        }

        await ((ISearchIndexProgress)store).WaitForSearchAsync(CancellationToken.None);

        // Then on until the JIT is done: a method is compiled again at each tier after 30 calls, so
        // what runs once a batch or once an indexer pass (and the zstd port's large methods, once
        // their instrumented tier has run) reaches its final tier only after tens of thousands of
        // spans; 10,240 left ~1,300 methods and ~10 % of the measured CPU to compile. Rounds of 8
        // batches until one leaves the tiered-compilation thread idle (under one clock tick), at
        // most four times the warm-up again.
        int warmed = warmupSpans;
        double jitCpu = 0;
        while (warmed < 5 * warmupSpans)
        {
            var round = new CpuMeter.TieredCompilation();
            for (int i = 0; i < 8; i++)
            {
                await StoreAsync(warm.Id, warmWorkload.NextBatch(ref ignoredRaw));
                round.Sample();
            }

            await ((ISearchIndexProgress)store).WaitForSearchAsync(CancellationToken.None);
            warmed += 8 * Workload.BatchSize;
            round.Sample();
            jitCpu = round.Seconds;
            if (jitCpu < 0.01)
            {
                break;
            }
        }

        Console.WriteLine($"{kind}: warmed up with {warmed:N0} spans in another tenant (not measured); the JIT's last round took {jitCpu * 1000:N0} ms of CPU");
    }

    await MergePendingTextIndexAsync(kind, spec);
    long baseDisk = await diskBytes();
    var workload = new Workload(42);
    long rawBytes = 0;
    int loaded = 0;
    double firstRate = 0;
    double generateSeconds = 0;
    long generateAllocated = 0;
    var generatePause = TimeSpan.Zero;
    // Requests in flight: one for each group commit the queue keeps in flight (the store's
    // IngestWriters: one on SQLite, two on PostgreSQL) and one more being prepared meanwhile, the
    // least that keeps the queue's preparation ahead of its writers, as concurrent exporters do
    // (the end-to-end cell below: 8 clients). --direct: IngestWriters callers. --in-flight N overrides either.
    int inFlight = IntArg("--in-flight", direct ? store.IngestWriters : store.IngestWriters + 1);
    Console.WriteLine($"{kind}: {inFlight} batch(es) in flight, {(direct ? "each stored by its caller (InsertSpansAsync)" : "through the ingest queue")}");
    var jit = new CpuMeter.TieredCompilation();
    // The writer's turns (SQLite): CPU under the write lock runs on one core at a time.
    var sqliteStore = store as SpIstio.Backend.Storage.Sqlite.SqliteSpanStore;
    if (sqliteStore is not null)
    {
        sqliteStore.TurnClock = CpuMeter.ThreadSeconds;
    }

    var cpuBefore = cpu.Now();
    var heapBefore = (Allocated: GC.GetTotalAllocatedBytes(precise: true), Gen0: GC.CollectionCount(0), Gen1: GC.CollectionCount(1), Gen2: GC.CollectionCount(2), Pause: GC.GetTotalPauseDuration());
    var total = Stopwatch.StartNew();
    // Search lag: from each batch's acknowledgement to the indexer having indexed it.
    var search = (ISearchIndexProgress)store;
    var lags = new List<Task<double>>();
    var acknowledgements = new object();
    var inserts = new List<Task>(inFlight);
    int queued = 0;
    while (queued < targetSpans && total.Elapsed.TotalSeconds < loadSeconds)
    {
        // Each batch is built just in time, while the ones in flight are stored, as an exporter's
        // requests arrive: only the batches in flight and the next one are alive, so the
        // generator's data is not promoted through gen1 and gen2 at the store's charge (16 batches
        // built ahead a round, ~40 MB, cost ~10 gen2 collections a run; 2026-11-28 sqlite section).
        // Its CPU is still the exporter's, not the store's: the batch is built synchronously on this
        // thread, so this thread's CPU clock over NextBatch counts exactly it (and the collections
        // its allocations trigger: few, as it writes bodies into the arrays of acknowledged batches,
        // Workload.Recycle, and a collection run here also collects the store's garbage), and it is
        // left out of the CPU a span below. The clock runs: its few µs a span share the cores.
        double generateStart = CpuMeter.ThreadSeconds();
        long generateAllocatedStart = GC.GetAllocatedBytesForCurrentThread();
        var generatePauseStart = GC.GetTotalPauseDuration();
        var batch = workload.NextBatch(ref rawBytes);
        generateSeconds += CpuMeter.ThreadSeconds() - generateStart;
        generateAllocated += GC.GetAllocatedBytesForCurrentThread() - generateAllocatedStart;
        generatePause += GC.GetTotalPauseDuration() - generatePauseStart;
        queued += batch.Count;
        if (queued % (16 * Workload.BatchSize) == 0)
        {
            jit.Sample();
        }

        if (inserts.Count == inFlight)
        {
            var done = await Task.WhenAny(inserts);
            inserts.Remove(done);
            await done;
        }

        inserts.Add(InsertAsync(batch));
    }

    await Task.WhenAll(inserts);

    async Task InsertAsync(List<StoredSpan> batch)
    {
        await StoreAsync(tenant.Id, batch);
        long acknowledged = Stopwatch.GetTimestamp();
        workload.Recycle(batch);
        var lag = search.WaitForSearchAsync(CancellationToken.None).ContinueWith(_ => Stopwatch.GetElapsedTime(acknowledged).TotalMilliseconds, TaskScheduler.Default);
        lock (acknowledgements)
        {
            lags.Add(lag);
            loaded += batch.Count;
            if (loaded == 100_352)
            {
                firstRate = loaded / total.Elapsed.TotalSeconds;
                Console.WriteLine($"{kind}: first {loaded:N0} spans at {firstRate:N0} spans/s");
            }

            if (loaded % 102_400 == 0)
            {
                Console.WriteLine($"{kind}: {loaded:N0} spans after {total.Elapsed.TotalSeconds:N0} s");
            }
        }
    }

    total.Stop();
    double rate = loaded / total.Elapsed.TotalSeconds;
    if (firstRate == 0)
    {
        firstRate = rate;
    }

    Console.WriteLine($"{kind}: loaded {loaded:N0} spans in {total.Elapsed.TotalSeconds:N1} s ({rate:N0} spans/s)");
    var lagMs = (await Task.WhenAll(lags)).Order().ToArray();
    var dictionary = await ((SqlSpanStore)store).Dictionaries.ForTenantAsync(tenant.Id, CancellationToken.None);
    Console.WriteLine($"{kind}: tenant dictionary {(dictionary is null ? "none" : $"{dictionary.Id} ({dictionary.Length:N0} bytes)")}");
    string lag = $"{lagMs[lagMs.Length / 2]:N0} / {lagMs[(int)(lagMs.Length * 0.99)]:N0} ms";
    Console.WriteLine($"{kind}: search lag p50 / p99 {lag}; peak RSS so far {Environment.WorkingSet / 1048576:N0} MiB (VmHWM {PeakRssMiB()} MiB)");

    // CPU per span, once every loaded span is stored and searchable (this process; the PostgreSQL server's tree).
    jit.Sample();
    await MergePendingTextIndexAsync(kind, spec);
    var cpuAfter = cpu.Now();
    var heapAfter = (Allocated: GC.GetTotalAllocatedBytes(precise: true), Gen0: GC.CollectionCount(0), Gen1: GC.CollectionCount(1), Gen2: GC.CollectionCount(2), Pause: GC.GetTotalPauseDuration());
    // Two costs in the process that a long-running backend does not have are left out, and printed:
    // the load generator's batches (built on this thread, timed by its CPU clock) and the JIT's
    // background tier-up (the runtime's tiered-compilation thread; the warm-up above runs until it
    // is idle, so this is small unless --warmup-spans is 0: ~1,300 methods and ~10 % of the
    // process's CPU samples over a 40,960-span load after a fixed 10,240 spans of warm-up).
    double generateUs = generateSeconds * 1e6 / loaded;
    double jitUs = jit.Seconds * 1e6 / loaded;
    double allUs = (cpuAfter.Process - cpuBefore.Process) * 1e6 / loaded;
    double cpuUs = allUs - generateUs - jitUs, serverUs = (cpuAfter.Server - cpuBefore.Server) * 1e6 / loaded;
    Console.WriteLine($"{kind}: CPU per span {cpuUs:N0} µs in process + {serverUs:N0} µs server = {cpuUs + serverUs:N0} µs (2 idle cores: ~{2e6 / (cpuUs + serverUs):N0} spans/s if both were kept busy); not counted: the load generator's {generateUs:N1} µs and the JIT's {jitUs:N1} µs a span (process with them {allUs:N0} µs)");
    // What the store allocates (the load generator's own allocations, counted on its thread, left
    // out) and the collections over the load, which include the ones the generator's allocations
    // triggered. The GC the bench runs with is printed: eng/RuntimeSettings.props's, as `sp backend`'s
    // (Backend.Benchmarks.csproj imports it).
    Console.WriteLine($"{kind}: heap: {(heapAfter.Allocated - heapBefore.Allocated - generateAllocated) / (double)loaded:N0} B allocated a span by the store (the load generator's {generateAllocated / (double)loaded:N0} B left out); collections gen0 / gen1 / gen2 {heapAfter.Gen0 - heapBefore.Gen0:N0} / {heapAfter.Gen1 - heapBefore.Gen1:N0} / {heapAfter.Gen2 - heapBefore.Gen2:N0}, paused {(heapAfter.Pause - heapBefore.Pause).TotalMilliseconds:N0} ms ({generatePause.TotalMilliseconds:N0} ms of it while the generator ran); GC {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")}, {System.Runtime.GCSettings.LatencyMode}, gen0 budget cap {AppContext.GetData("System.GC.Gen0MaxBudget") ?? "none"} (runtimeconfig: DOTNET_GCgen0MaxBudget does not change it)");
    if (sqliteStore is not null)
    {
        double ingestTurnUs = sqliteStore.IngestTurnSeconds * 1e6 / loaded, indexTurnUs = sqliteStore.IndexTurnSeconds * 1e6 / loaded;
        Console.WriteLine($"{kind}: CPU in the writer's turn {ingestTurnUs + indexTurnUs:N1} µs a span (ingest inserts {ingestTurnUs:N1}, indexer {indexTurnUs:N1}): {(ingestTurnUs + indexTurnUs) / cpuUs:P0} of the store's CPU runs on one core at a time, the rest ({cpuUs - ingestTurnUs - indexTurnUs:N1} µs) outside the write lock");
    }

    var random = new Random(7);
    var list = await Measure(200, () => store.ListSessionsAsync(tenant.Id, new SessionQuery { Limit = 50 }, CancellationToken.None));
    string? deepCursor = null;
    for (int i = 0; i < 20; i++)
    {
        deepCursor = (await store.ListSessionsAsync(tenant.Id, new SessionQuery { Limit = 50, Cursor = deepCursor }, CancellationToken.None)).NextCursor;
    }

    var deep = await Measure(200, () => store.ListSessionsAsync(tenant.Id, new SessionQuery { Limit = 50, Cursor = deepCursor }, CancellationToken.None));
    int sessions = workload.Sessions;
    var view = await Measure(500, () => store.GetSessionAsync(tenant.Id, Workload.SessionId(random.Next(sessions)), CancellationToken.None));
    var text = await Measure(100, () => store.ListSessionsAsync(tenant.Id, new SessionQuery { Limit = 50, Text = Workload.Cities[random.Next(Workload.Cities.Length)] + " " + random.Next(1000).ToString(CultureInfo.InvariantCulture) }, CancellationToken.None));
    // A body's id (six digits: a word most spans do not hold, which the SQLite store files in its
    // block filters rather than FTS5), a third of them held by some span: sessions, then traces.
    var idText = await Measure(50, () => store.ListSessionsAsync(tenant.Id, new SessionQuery { Limit = 50, Text = random.Next(100_000, 1_000_000).ToString(CultureInfo.InvariantCulture) }, CancellationToken.None));
    var idTraces = await Measure(50, () => store.SearchTracesAsync(tenant.Id, new TraceQuery { Limit = 20, Text = random.Next(100_000, 1_000_000).ToString(CultureInfo.InvariantCulture) }, CancellationToken.None));
    Console.WriteLine($"{kind}: id filter p50/p99: sessions {idText}, traces {idTraces}");

    long disk = await diskBytes() - baseDisk;
    double perExchange = (double)disk / loaded;
    double rawPer = (double)rawBytes / loaded;
    return $"| {kind} | {firstRate:N0} | {rate:N0} | {loaded:N0} | {total.Elapsed.TotalSeconds:N0} s | {lag} | {list} | {deep} | {view} | {text} | {perExchange:N0} | {rawPer:N0} | {perExchange / rawPer:N2} |";
}

// PostgreSQL's text index (GIN) gathers new entries in a 16 MiB pending list and merges it into
// the index when it fills, most of the index's CPU, in whichever insert fills it: a load of a few
// tens of thousands of spans holds one or two merges, or none, and its server CPU per span moved
// from 12 to 80 µs between three runs of one build. Merging what is pending before and after the load
// counts the index work of exactly the loaded spans (in the server's CPU, by the backend the
// merge runs in, with maintenance_work_mem, 64 MB by default as the ingest's work_mem).
static async Task MergePendingTextIndexAsync(string kind, string spec)
{
    if (kind != "postgres")
    {
        return;
    }

    await using var c = new NpgsqlConnection(spec["postgres:".Length..]);
    await c.OpenAsync();
    await using var cmd = new NpgsqlCommand(
        "SELECT gin_clean_pending_list(c.oid::regclass) FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'gin' AND c.relnamespace = current_schema()::regnamespace", c);
    await cmd.ExecuteNonQueryAsync();
}

// The process's peak resident set (the backend's store work runs in it; PostgreSQL's server does not).
static string PeakRssMiB()
{
    foreach (string line in File.ReadLines("/proc/self/status"))
    {
        if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
        {
            return (long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024).ToString("N0", CultureInfo.InvariantCulture);
        }
    }

    return "?";
}

static async Task<string> Measure<T>(int iterations, Func<Task<T>> query)
{
    await query();
    var times = new double[iterations];
    for (int i = 0; i < iterations; i++)
    {
        long start = Stopwatch.GetTimestamp();
        await query();
        times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    Array.Sort(times);
    return $"{times[iterations / 2]:N1} / {times[(int)(iterations * 0.99)]:N1} ms";
}

int IntArg(string name, int fallback) => StringArg(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

string? StringArg(string name)
{
    int i = Array.IndexOf(args2, name);
    return i >= 0 && i + 1 < args2.Length ? args2[i + 1] : null;
}

/// <summary>
/// A travel-booking workload: sessions of 10 exchanges (a frontend server span, its client call,
/// the callee's server span, across 3–4 traces), JSON bodies of 2 KiB with varying values.
/// </summary>
internal sealed class Workload(int seed)
{
    public const int BatchSize = 512;
    public const int SpansPerSession = 10;
    public static readonly string[] Cities = ["lisbon", "paris", "berlin", "madrid", "rome", "vienna", "prague", "oslo", "dublin", "athens"];
    private static readonly string[] Services = ["frontend", "flights", "hotels", "booking", "payments"];
    // Not System.Random: seeded, it runs the legacy subtractive generator (~10 ns a draw), and the
    // bodies take ~430 draws a span, CPU the generator takes from the two cores the store is
    // measured on. The same draws (value ranges, order) from a cheaper generator: the bodies have
    // the same shape and statistics, not the same digits.
    private readonly BenchRandom _random = new((ulong)seed);
    private long _clock = DateTimeOffset.UtcNow.AddHours(-12).ToUnixTimeMilliseconds();
    private int _span;

    public int Sessions => _span / SpansPerSession;

    public static string SessionId(int n) => "sess-" + n.ToString("D8", CultureInfo.InvariantCulture);

    public List<StoredSpan> NextBatch(ref long rawBytes)
    {
        var batch = new List<StoredSpan>(BatchSize);
        for (int i = 0; i < BatchSize; i++)
        {
            var span = Next();
            rawBytes += span.RequestBody.Length + span.ResponseBody.Length + span.RequestHeadersJson!.Length + span.ResponseHeadersJson!.Length
                + span.AttributesJson.Length + span.TraceId.Length + span.SpanId.Length + (span.ParentSpanId?.Length ?? 0) + span.Name.Length
                + span.ServiceName.Length + span.SessionId!.Length + span.Method!.Length + span.Authority!.Length + span.Path!.Length + 8 + 8 + 4;
            batch.Add(span);
        }

        return batch;
    }

    private StoredSpan Next()
    {
        int n = _span++;
        int session = n / SpansPerSession;
        int inSession = n % SpansPerSession;
        int trace = (session * 4) + (inSession / 3);
        int role = inSession % 3;
        string service = role == 2 ? Services[1 + (session % 4)] : "frontend";
        int id = _random.Next(100_000);
        string path = role == 0 ? "/checkout" : $"/api/{service}/{id}";
        _clock += _random.Next(1, 4);
        var start = DateTimeOffset.FromUnixTimeMilliseconds(_clock);
        int status = _random.Next(100) < 3 ? 503 : 200;
        return new StoredSpan
        {
            TraceId = trace.ToString("x32", CultureInfo.InvariantCulture),
            SpanId = (n + 1).ToString("x16", CultureInfo.InvariantCulture),
            ParentSpanId = role == 0 ? null : n.ToString("x16", CultureInfo.InvariantCulture),
            Name = "GET " + path,
            Kind = role == 1 ? 3 : 2,
            ServiceName = service,
            StartTime = start,
            EndTime = start.AddMilliseconds(_random.Next(2, 200)),
            IsError = status >= 500,
            IsExchange = true,
            SessionId = SessionId(session),
            Direction = role == 1 ? "outbound" : "inbound",
            Method = "GET",
            Scheme = "http",
            Authority = service + ":8080",
            Path = path,
            Route = RouteTemplate.FromPath(path),
            StatusCode = status,
            RequestHeadersJson = $$"""[["accept","application/json"],["user-agent","travel-web/1.4"],["x-request-id","{{_random.NextGuid()}}"],["traceparent","00-{{trace:x32}}-{{n:x16}}-01"]]""",
            ResponseHeadersJson = """[["content-type","application/json"],["server","envoy"],["x-envoy-upstream-service-time","12"]]""",
            RequestBody = Body(2048),
            ResponseBody = Body(2048),
            AttributesJson = """{"http.request.body.size":2048,"http.response.body.size":2048}""",
        };
    }

    // A body as the capture limit leaves it: JSON text to its last byte, cut mid-record. (Padding a
    // shorter text to the size would count bytes no captured body has in the raw figure.) Written
    // as ASCII bytes into one reused buffer — the same text, from the same draws in the same order,
    // as the StringBuilder it replaced (22 KB allocated a span) — and copied into an array of an
    // acknowledged batch (Recycle), so the generator costs the load's cores and heap little beside
    // the store it feeds.
    private byte[] Body(int size)
    {
        if (_body.Length < size + MaxRecordBytes)
        {
            _body = new byte[size + MaxRecordBytes];
        }

        Span<byte> b = _body;
        int n = Put(b, 0, "{\"items\":["u8);
        while (n < size)
        {
            n = Put(b, n, "{\"id\":"u8);
            n = Put(b, n, _random.Next(1_000_000));
            n = Put(b, n, ",\"city\":\""u8);
            n = Put(b, n, CityBytes[_random.Next(Cities.Length)]);
            n = Put(b, n, "\",\"price\":"u8);
            n = Put(b, n, _random.Next(20, 900));
            b[n++] = (byte)'.';
            int cents = _random.Next(100);
            b[n++] = (byte)('0' + (cents / 10));
            b[n++] = (byte)('0' + (cents % 10));
            n = Put(b, n, ",\"seats\":"u8);
            n = Put(b, n, _random.Next(300));
            n = Put(b, n, ",\"code\":\""u8);
            b[n++] = (byte)('A' + _random.Next(26));
            b[n++] = (byte)('A' + _random.Next(26));
            n = Put(b, n, _random.Next(1000));
            n = Put(b, n, "\"},"u8);
        }

        byte[] body = TakeBodyArray(size);
        b[..size].CopyTo(body);
        return body;
    }

    /// <summary>
    /// Hands the bodies of an acknowledged batch back for the next batches to be written into: the
    /// store has encoded and committed them and holds none of them, and an exporter's request buffers
    /// are not the store's allocations either. So the load's heap is what the store allocates.
    /// </summary>
    public void Recycle(List<StoredSpan> batch)
    {
        lock (_freeBodies)
        {
            foreach (var span in batch)
            {
                Free(span.RequestBody);
                Free(span.ResponseBody);
            }
        }
    }

    private void Free(ReadOnlyMemory<byte> body)
    {
        if (MemoryMarshal.TryGetArray(body, out var segment) && _freeBodies.Count < MaxFreeBodies)
        {
            _freeBodies.Push(segment.Array!);
        }
    }

    private byte[] TakeBodyArray(int size)
    {
        lock (_freeBodies)
        {
            if (_freeBodies.TryPeek(out var free) && free.Length == size)
            {
                return _freeBodies.Pop();
            }
        }

        return new byte[size];
    }

    // Bodies of the batches in flight and one being built, a few times over.
    private const int MaxFreeBodies = 8 * 2 * BatchSize;
    private readonly Stack<byte[]> _freeBodies = new();

    // The longest record the loop above writes, {"id":999999,…,"code":"ZZ999"}, is 72 bytes.
    private const int MaxRecordBytes = 128;
    private static readonly byte[][] CityBytes = [.. Cities.Select(Encoding.ASCII.GetBytes)];
    private byte[] _body = [];

    private static int Put(Span<byte> buffer, int at, ReadOnlySpan<byte> text)
    {
        text.CopyTo(buffer[at..]);
        return at + text.Length;
    }

    // A non-negative number's decimal digits, written by hand: int.TryFormat with a culture took
    // ~20 ns a number, ~200 numbers a span (the generator's CPU shares the cores with the store).
    private static int Put(Span<byte> buffer, int at, int value)
    {
        uint magnitude = (uint)value;
        int digits = magnitude < 10 ? 1 : magnitude < 100 ? 2 : magnitude < 1_000 ? 3 : magnitude < 10_000 ? 4 : magnitude < 100_000 ? 5 : magnitude < 1_000_000 ? 6 : 0;
        if (digits == 0)
        {
            // Negative or seven digits and more: not drawn by this workload.
            value.TryFormat(buffer[at..], out int written, default, CultureInfo.InvariantCulture);
            return at + written;
        }

        for (int i = at + digits - 1; i >= at; i--)
        {
            buffer[i] = (byte)('0' + (magnitude % 10));
            magnitude /= 10;
        }

        return at + digits;
    }
}

/// <summary>
/// The workload's random draws: xoshiro256** (Blackman and Vigna), seeded by SplitMix64 as its authors
/// advise, a bounded draw by Lemire's multiply-shift. Deterministic for a seed, ~1 ns a draw.
/// </summary>
internal sealed class BenchRandom
{
    private ulong _s0, _s1, _s2, _s3;

    public BenchRandom(ulong seed)
    {
        _s0 = SplitMix64(ref seed);
        _s1 = SplitMix64(ref seed);
        _s2 = SplitMix64(ref seed);
        _s3 = SplitMix64(ref seed);
    }

    /// <summary>A draw in [0, <paramref name="maxExclusive"/>).</summary>
    public int Next(int maxExclusive) => (int)(((NextUInt64() >> 32) * (ulong)maxExclusive) >> 32);

    /// <summary>A draw in [<paramref name="minInclusive"/>, <paramref name="maxExclusive"/>).</summary>
    public int Next(int minInclusive, int maxExclusive) => minInclusive + Next(maxExclusive - minInclusive);

    /// <summary>A version-4 UUID of this generator's bits (System.Guid.NewGuid asks the OS for them).</summary>
    public Guid NextGuid()
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, NextUInt64());
        BinaryPrimitives.WriteUInt64LittleEndian(bytes[8..], NextUInt64());
        bytes[7] = (byte)((bytes[7] & 0x0f) | 0x40);
        bytes[8] = (byte)((bytes[8] & 0x3f) | 0x80);
        return new Guid(bytes);
    }

    private ulong NextUInt64()
    {
        ulong result = BitOperations.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = BitOperations.RotateLeft(_s3, 45);
        return result;
    }

    private static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}

/// <summary>A throwaway PostgreSQL 15 cluster with default durability (fsync on), for the benchmark.</summary>
internal sealed class PgCluster : IAsyncDisposable
{
    private const string Bin = "/usr/lib/postgresql/15/bin";
    private readonly string _data;
    private readonly bool _root;

    private PgCluster(string data, bool root, string connectionString)
    {
        _data = data;
        _root = root;
        ConnectionString = connectionString;
    }

    public string ConnectionString { get; }

    public int ServerPid => int.Parse(File.ReadLines(Path.Combine(_data, "postmaster.pid")).First(), CultureInfo.InvariantCulture);

    public static async Task<PgCluster> StartAsync(string work)
    {
        if (!File.Exists(Path.Combine(Bin, "initdb")))
        {
            throw new InvalidOperationException($"PostgreSQL 15 is not installed ({Bin}): apt-get install -y postgresql, or set SP_BENCH_POSTGRES.");
        }

        string data = Path.Combine(work, "pg");
        bool root = Environment.UserName == "root";
        if (root)
        {
            await Run("chown", ["-R", "postgres:postgres", work], false);
        }

        // SP_BENCH_POSTGRES_PORT pins the throwaway cluster's port (engineers sharing a machine keep to port ranges of their own).
        int port = int.TryParse(Environment.GetEnvironmentVariable("SP_BENCH_POSTGRES_PORT"), CultureInfo.InvariantCulture, out int pinned) ? pinned : FreePort();
        await Run(Path.Combine(Bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8"], root);
        await Run(Path.Combine(Bin, "pg_ctl"), ["-D", data, "-l", Path.Combine(work, "pg.log"), "-w", "-o", $"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c shared_buffers=512MB -c max_wal_size=4GB", "start"], root);
        return new PgCluster(data, root, $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public static async Task<string> CreateDatabaseAsync(string admin, string name)
    {
        await using var c = new NpgsqlConnection(admin);
        await c.OpenAsync();
        await using (var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", c))
        {
            await drop.ExecuteNonQueryAsync();
        }

        await using (var create = new NpgsqlCommand($"CREATE DATABASE {name}", c))
        {
            await create.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(admin) { Database = name }.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await Run(Path.Combine(Bin, "pg_ctl"), ["-D", _data, "-m", "fast", "-w", "stop"], _root);
    }

    private static async Task Run(string file, string[] arguments, bool asPostgres)
    {
        var start = new ProcessStartInfo(asPostgres ? "runuser" : file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Path.GetTempPath() };
        if (asPostgres)
        {
            foreach (string a in new[] { "-u", "postgres", "--", file })
            {
                start.ArgumentList.Add(a);
            }
        }

        foreach (string a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        using var p = Process.Start(start)!;
        var err = p.StandardError.ReadToEndAsync();
        var outp = p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} failed ({p.ExitCode}): {await err}{await outp}");
        }
    }
}
