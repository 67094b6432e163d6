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
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private const string BinDirectory = "/usr/lib/postgresql/15/bin";
    private string? _clusterDirectory;
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
        await RunAsync(Path.Combine(BinDirectory, "pg_ctl"),
        [
            "-D", data, "-l", Path.Combine(_clusterDirectory, "server.log"), "-w", "-t", "60",
            "-o", $"-p {port} -k {socket} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            "start",
        ], root);
        AdminConnectionString = $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Pooling=false";
    }

    public async Task DisposeAsync()
    {
        if (_clusterDirectory is null)
        {
            return;
        }

        await RunAsync(Path.Combine(BinDirectory, "pg_ctl"), ["-D", Path.Combine(_clusterDirectory, "data"), "-m", "immediate", "-w", "stop"], Environment.UserName == "root");
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
