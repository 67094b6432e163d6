using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>
/// A real PostgreSQL for the store tests: the server named by <c>SP_TEST_POSTGRES</c> (a
/// connection string) when set, otherwise a throwaway cluster started with the Debian
/// PostgreSQL 15 binaries on a free port and a private socket directory, removed at the end.
/// Missing binaries fail the tests with the command that installs them — never a silent pass.
/// A test that crashes the server starts a cluster of its own (<see cref="StartOwnClusterAsync"/>).
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private const string BinDirectory = "/usr/lib/postgresql/15/bin";

    // The shared cluster trades durability for speed: a commit returns before its WAL leaves the
    // server's memory, so a server crash may lose it.
    private const string FastSettings = " -c fsync=off -c synchronous_commit=off -c full_page_writes=off";

    // A commit returns once its WAL is written to the kernel (synchronous_commit on, the default):
    // a crash of the server's processes keeps it. Not fsynced: the machine itself does not crash.
    private const string CrashSafeSettings = " -c fsync=off -c full_page_writes=off";

    private string? _clusterDirectory;
    private string _serverOptions = "";
    private int _databases;

    /// <summary>Connection string of the maintenance database.</summary>
    public string AdminConnectionString { get; private set; } = string.Empty;

    public async Task InitializeAsync()
    {
        string? external = Environment.GetEnvironmentVariable("SP_TEST_POSTGRES");
        if (!string.IsNullOrWhiteSpace(external))
        {
            AdminConnectionString = external;
            return;
        }

        await StartClusterAsync(FastSettings);
    }

    /// <summary>
    /// A cluster of this test's own, whatever <c>SP_TEST_POSTGRES</c> says, where a commit returns
    /// once its WAL is written (<see cref="CrashSafeSettings"/>), so that a test may crash it
    /// (<see cref="CrashAsync"/>) and expect every acknowledged commit back after <see cref="StartAgainAsync"/>.
    /// Dispose it with <see cref="DisposeAsync"/>.
    /// </summary>
    public static async Task<PostgresFixture> StartOwnClusterAsync()
    {
        var fixture = new PostgresFixture();
        try
        {
            await fixture.StartClusterAsync(CrashSafeSettings);
        }
        catch
        {
            await fixture.DisposeAsync();
            throw;
        }

        return fixture;
    }

    /// <summary>Stops the server as a crash would (<c>pg_ctl stop -m immediate</c>: every server process gets SIGQUIT, no checkpoint, recovery from WAL on the next start).</summary>
    public Task CrashAsync() => PgCtlAsync(["-m", "immediate", "-w", "stop"]);

    /// <summary>Starts the server again on the same port and data directory after <see cref="CrashAsync"/>.</summary>
    public Task StartAgainAsync() => PgCtlAsync(["-l", Path.Combine(OwnCluster, "server.log"), "-w", "-t", "60", "-o", _serverOptions, "start"]);

    private string OwnCluster => _clusterDirectory ?? throw new InvalidOperationException("This fixture uses SP_TEST_POSTGRES: it has no server of its own to stop or start.");

    private Task PgCtlAsync(string[] arguments) =>
        RunAsync(Path.Combine(BinDirectory, "pg_ctl"), ["-D", Path.Combine(OwnCluster, "data"), .. arguments], Environment.UserName == "root");

    private async Task StartClusterAsync(string settings)
    {
        if (!File.Exists(Path.Combine(BinDirectory, "initdb")))
        {
            throw new InvalidOperationException(
                $"PostgreSQL 15 binaries are missing ({BinDirectory}/initdb). Install them with `apt-get update && apt-get install -y postgresql` " +
                "(.ci/run does), or point SP_TEST_POSTGRES at a server (a connection string with rights to CREATE DATABASE).");
        }

        _clusterDirectory = Path.Combine(Path.GetTempPath(), "sp-pg-" + Guid.NewGuid().ToString("N")[..12]);
        string data = Path.Combine(_clusterDirectory, "data");
        string socket = Path.Combine(_clusterDirectory, "sock");
        Directory.CreateDirectory(socket);
        bool root = Environment.UserName == "root";
        if (root)
        {
            // initdb refuses to run as root: the cluster belongs to the postgres OS user.
            await RunAsync("chown", ["-R", "postgres:postgres", _clusterDirectory], asPostgres: false);
        }

        int port = FreePort();
        await RunAsync(Path.Combine(BinDirectory, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"], root);
        _serverOptions = $"-p {port} -k {socket} -c listen_addresses=127.0.0.1" + settings;
        await StartAgainAsync();
        AdminConnectionString = $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Pooling=false";
    }

    public async Task DisposeAsync()
    {
        if (_clusterDirectory is null)
        {
            return;
        }

        if (File.Exists(Path.Combine(_clusterDirectory, "data", "postmaster.pid")))
        {
            await CrashAsync();
        }

        Directory.Delete(_clusterDirectory, recursive: true);
    }

    /// <summary>Creates an empty database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        string name = $"sp_test_{Environment.ProcessId}_{Interlocked.Increment(ref _databases)}";
        await using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await command.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name, Pooling = true }.ToString();
    }

    /// <summary>Drops a database made by <see cref="CreateDatabaseAsync"/>.</summary>
    public async Task DropDatabaseAsync(string connectionString)
    {
        string name = new NpgsqlConnectionStringBuilder(connectionString).Database!;
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task RunAsync(string file, string[] arguments, bool asPostgres)
    {
        var start = new ProcessStartInfo(asPostgres ? "runuser" : file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
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

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await stderr}{await stdout}");
        }
    }
}

[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "postgres";
}
