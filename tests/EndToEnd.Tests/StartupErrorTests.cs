using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Data.Sqlite;

namespace SpIstio.EndToEnd.Tests;

/// <summary>
/// Every start-up mistake an operator can make is one line on stderr and an exit code, never a
/// stack trace: each case runs the real <c>sp</c> as a child process and checks the exit code and
/// the first line of stderr. Placeholders: {tmp} a fresh folder, {busy} a port another socket
/// holds, {closed} a port nothing listens on, {data} the TestData folder.
/// </summary>
public sealed class StartupErrorTests : IClassFixture<StartupErrorTests.Machine>
{
    private const int InvalidInput = 2;
    private const int Unavailable = 4;

    private readonly Machine _machine;

    public StartupErrorTests(Machine machine) => _machine = machine;

    public static TheoryData<string, int, string> Mistakes => new()
    {
        // Listen addresses: syntax is input, a port someone else holds or an address not here is the machine's refusal.
        { "backend|--listen|nonsense", InvalidInput, "error: listen: 'nonsense' is not host:port" },
        { "backend|--listen|127.0.0.1:70000", InvalidInput, "error: listen: '127.0.0.1:70000' is not host:port" },
        { "backend|--listen|example.com:8090", InvalidInput, "error: listen: 'example.com:8090' is not host:port" },
        { "backend|--listen|127.0.0.1:0|--grpc-listen|4317", InvalidInput, "error: grpc-listen: '4317' is not host:port" },
        { "backend|--listen|127.0.0.1:23990|--grpc-listen|127.0.0.1:23990", InvalidInput, "error: grpc-listen: '127.0.0.1:23990' uses the port of --listen (23990)" },
        { "backend|--store|sqlite:{tmp}/a.db|--listen|127.0.0.1:{busy}|--grpc-listen|off", Unavailable, "error: --listen 127.0.0.1:{busy} (HTTP listener): port {busy} is already in use" },
        { "backend|--store|sqlite:{tmp}/a.db|--listen|127.0.0.1:0|--grpc-listen|127.0.0.1:{busy}", Unavailable, "error: --grpc-listen 127.0.0.1:{busy} (OTLP/gRPC listener): port {busy} is already in use" },
        { "backend|--store|sqlite:{tmp}/a.db|--listen|192.0.2.1:0|--grpc-listen|off", Unavailable, "error: --listen 192.0.2.1:0 (HTTP listener): cannot listen: the address is not one of this machine's addresses" },

        // The store spec and the PostgreSQL connection string, named down to the keyword; a password is never echoed.
        { "backend|--store|mysql:Server=db", InvalidInput, "error: store: 'mysql:Server=db' is not sqlite:<file> or postgres:<connection string>" },
        { "backend|--store|sqlite:", InvalidInput, "error: store: 'sqlite:' is not sqlite:<file> or postgres:<connection string>" },
        { "backend|--store|sqlite:{tmp}/a.db?synchronous=maybe|--listen|127.0.0.1:0|--grpc-listen|off", InvalidInput, "error: store: Invalid store spec 'sqlite:{tmp}/a.db?synchronous=maybe': the only SQLite option is ?synchronous=normal|full." },
        { "backend|--store|postgres:Hots=127.0.0.1|--listen|127.0.0.1:0|--grpc-listen|off", InvalidInput, "error: store: Invalid store spec 'postgres:Hots=127.0.0.1': unknown PostgreSQL connection string keyword 'hots'" },
        { "backend|--store|postgres:Host=127.0.0.1;Port=abc|--listen|127.0.0.1:0|--grpc-listen|off", InvalidInput, "error: store: Invalid store spec 'postgres:Host=127.0.0.1;Port=abc': PostgreSQL connection string keyword 'port' has a bad value 'abc'" },
        { "backend|--store|postgres:Host=127.0.0.1;Password=hunter2;Pooling=sometimes|--listen|127.0.0.1:0|--grpc-listen|off", InvalidInput, "error: store: Invalid store spec 'postgres:Host=127.0.0.1;Password=***;Pooling=sometimes': PostgreSQL connection string keyword 'pooling' has a bad value 'sometimes'" },
        { "backend|--store|postgres:Host=127.0.0.1;Database|--listen|127.0.0.1:0|--grpc-listen|off", InvalidInput, "error: store: Invalid store spec 'postgres:Host=127.0.0.1;Database': the PostgreSQL connection string is not key=value pairs" },
        { "backend|--store|postgres:Host=127.0.0.1;Port={closed};Database=sp;Username=sp|--listen|127.0.0.1:0|--grpc-listen|off", Unavailable, "error: store: cannot connect to PostgreSQL at 127.0.0.1:{closed}: connection refused" },

        // The SQLite file and its folder.
        { "backend|--store|sqlite:/proc/sp-no-such/sp.db|--listen|127.0.0.1:0|--grpc-listen|off", Unavailable, "error: store: cannot create the folder /proc/sp-no-such for the SQLite file" },
        { "backend|--store|sqlite:{tmp}/a-file/sp.db|--listen|127.0.0.1:0|--grpc-listen|off", Unavailable, "error: store: cannot create the folder {tmp}/a-file for the SQLite file" },
        { "backend|--store|sqlite:{tmp}|--listen|127.0.0.1:0|--grpc-listen|off", Unavailable, "error: store: {tmp} is a folder, not a database file" },
        { "backend|--store|sqlite:{tmp}/a-file|--listen|127.0.0.1:0|--grpc-listen|off", Unavailable, "error: store: {tmp}/a-file is not a SQLite database" },
        { "backend|--store|sqlite:{tmp}/newer.db|--listen|127.0.0.1:0|--grpc-listen|off", Unavailable, "error: store: the sqlite schema is at version 999, newer than the " },
        { "keys|list|--store|postgres:Hots=127.0.0.1", InvalidInput, "error: store: Invalid store spec 'postgres:Hots=127.0.0.1': unknown PostgreSQL connection string keyword 'hots'" },

        // TLS files.
        { "backend|--tls-cert|{tmp}/a-file", InvalidInput, "error: tls-cert: '{tmp}/a-file' is given without --tls-key; give both or neither" },
        { "backend|--tls-cert|{tmp}/nope.crt|--tls-key|{tmp}/a-file", InvalidInput, "error: tls-cert: '{tmp}/nope.crt' does not exist" },
        { "backend|--store|sqlite:{tmp}/tls.db|--listen|127.0.0.1:0|--grpc-listen|off|--tls-cert|{tmp}/a-file|--tls-key|{tmp}/a-file", InvalidInput, "error: --tls-cert {tmp}/a-file / --tls-key {tmp}/a-file: cannot load a PEM certificate and its private key" },

        // Other backend options.
        { "backend|--retention|7x", InvalidInput, "error: retention: '7x' is not a duration" },
        { "backend|--max-body-bytes|10", InvalidInput, "error: max-body-bytes: '10' must be at least 1024" },

        // The ext_proc agent: its two listeners and its configuration.
        { "agent|extproc|--listen|127.0.0.1:{busy}|--admin|127.0.0.1:0", Unavailable, "error: --listen 127.0.0.1:{busy} (ext_proc gRPC listener): port {busy} is already in use" },
        { "agent|extproc|--listen|127.0.0.1:0|--admin|127.0.0.1:{busy}", Unavailable, "error: --admin 127.0.0.1:{busy} (admin listener): port {busy} is already in use" },
        { "agent|extproc|--listen|nope|--admin|127.0.0.1:0", InvalidInput, "error: --listen: listen address 'nope' has no port" },
        { "agent|extproc|--listen|127.0.0.1:0|--config|{tmp}/missing.yaml", InvalidInput, "error: {tmp}/missing.yaml: configuration file not found" },
        { "agent|extproc|--listen|127.0.0.1:0|--admin|127.0.0.1:0|--config|{tmp}/typo.yaml", InvalidInput, "error: colectionRules: unknown key 'colectionRules'; did you mean 'collectionRules'?" },
        { "agent|extproc|--listen|127.0.0.1:0|--admin|127.0.0.1:0|--config|{data}/bad.yaml", InvalidInput, "error: traffic_direction: 'sideways' is not one of" },

        // The export disk buffer: a folder that cannot be created, a file where the folder should be.
        { "agent|extproc|--listen|127.0.0.1:0|--admin|127.0.0.1:0|--set|export.buffer_path=/proc/sp-no-such/buffer", Unavailable, "error: export.buffer_path: '/proc/sp-no-such/buffer' cannot be used as the export buffer: " },
        { "agent|extproc|--listen|127.0.0.1:0|--admin|127.0.0.1:0|--set|export.buffer_path={tmp}/a-file", Unavailable, "error: export.buffer_path: '{tmp}/a-file' cannot be used as the export buffer: " },
        { "agent|proxy|--listen|127.0.0.1:0|--admin|127.0.0.1:0|--upstream|http://127.0.0.1:1|--set|export.buffer_path=/proc/sp-no-such/buffer", Unavailable, "error: export.buffer_path: '/proc/sp-no-such/buffer' cannot be used as the export buffer: " },

        // The capture proxy.
        { "agent|proxy|--listen|127.0.0.1:{busy}|--upstream|http://127.0.0.1:1", Unavailable, "error: --listen 127.0.0.1:{busy} (proxy listener): port {busy} is already in use" },
        { "agent|proxy|--listen|127.0.0.1:0|--admin|127.0.0.1:{busy}|--upstream|http://127.0.0.1:1", Unavailable, "error: --admin 127.0.0.1:{busy} (admin listener): port {busy} is already in use" },
        { "agent|proxy|--listen|127.0.0.1:0|--upstream|nope", InvalidInput, "error: --upstream: 'nope' is not an absolute URL" },
        { "agent|proxy|--listen|127.0.0.1:0", InvalidInput, "error: an upstream is required in reverse mode" },
        { "agent|proxy|--listen|127.0.0.1:0|--grpc-listen|127.0.0.1:{busy}|--upstream|http://127.0.0.1:1", Unavailable, "error: --grpc-listen 127.0.0.1:{busy} (gRPC listener): port {busy} is already in use" },
        { "agent|proxy|--listen|127.0.0.1:0|--grpc-listen|4317|--upstream|http://127.0.0.1:1", InvalidInput, "error: --grpc-listen: " },
        { "agent|proxy|--listen|127.0.0.1:0|--grpc-listen|127.0.0.1:0|--forward", InvalidInput, "error: --grpc-listen needs reverse mode (--upstream)" },
        { "agent|proxy|--listen|127.0.0.1:0|--upstream|http://127.0.0.1:1|--set|capture.grpc.descriptor_sets[0]={tmp}/missing.pb", InvalidInput, "error: capture.grpc.descriptor_sets: '{tmp}/missing.pb' cannot be read" },
    };

    [Theory]
    [MemberData(nameof(Mistakes))]
    public async Task Mistake_IsOneLineAndAnExitCode(string args, int exitCode, string firstLine)
    {
        var run = await SpProcess.RunAsync(args.Split('|').Select(_machine.Fill).ToArray());

        var lines = run.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length > 0, "nothing on stderr; stdout: " + run.StdOut);
        Assert.StartsWith(_machine.Fill(firstLine), lines[0], StringComparison.Ordinal);
        Assert.Equal(exitCode, run.ExitCode);
        Assert.DoesNotContain("   at ", run.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", run.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", run.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public void TheTableHoldsAtLeast25Mistakes() => Assert.True(Mistakes.Count >= 25);

    /// <summary>The shared arrangements: a temp folder with its files, a held port and a closed one.</summary>
    public sealed class Machine : IDisposable
    {
        private readonly TcpListener _busy;

        public Machine()
        {
            Folder = Path.Combine(Path.GetTempPath(), "sp-startup-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(Folder);
            File.WriteAllText(Path.Combine(Folder, "a-file"), "not a database, and not a folder either\n");
            File.WriteAllText(Path.Combine(Folder, "typo.yaml"), "colectionRules: {}\n");
            CreateNewerStore(Path.Combine(Folder, "newer.db"));

            _busy = new TcpListener(IPAddress.Loopback, 0);
            _busy.Start();
            BusyPort = ((IPEndPoint)_busy.LocalEndpoint).Port;

            using var closed = new TcpListener(IPAddress.Loopback, 0);
            closed.Start();
            ClosedPort = ((IPEndPoint)closed.LocalEndpoint).Port;
            closed.Stop();
        }

        public string Folder { get; }

        public int BusyPort { get; }

        public int ClosedPort { get; }

        public string Fill(string text) => text
            .Replace("{tmp}", Folder, StringComparison.Ordinal)
            .Replace("{busy}", BusyPort.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{closed}", ClosedPort.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{data}", Path.Combine(AppContext.BaseDirectory, "TestData"), StringComparison.Ordinal);

        public void Dispose()
        {
            _busy.Stop();
            _busy.Dispose();
            SqliteConnection.ClearAllPools();
            Directory.Delete(Folder, recursive: true);
        }

        // A store a newer sp migrated: its schema_migrations holds a version this build does not know.
        private static void CreateNewerStore(string path)
        {
            using var connection = new SqliteConnection("Data Source=" + path + ";Pooling=False");
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ns BIGINT NOT NULL); INSERT INTO schema_migrations VALUES (999, 0);";
            command.ExecuteNonQuery();
        }
    }
}
