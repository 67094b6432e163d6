using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>The contract suite on a real PostgreSQL: a fresh database per test.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresSpanStoreTests(PostgresFixture fixture) : SpanStoreContractTests
{
    private string? _connectionString;

    protected override async Task<ISpanStore> OpenStoreAsync(bool reopen)
    {
        _connectionString ??= await fixture.CreateDatabaseAsync();
        return SpanStoreFactory.Open("postgres:" + _connectionString, NullLoggerFactory.Instance);
    }

    protected override async Task<IReadOnlyList<string>> TablesWithTenantIdAsync()
    {
        await using var connection = new Npgsql.NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() AND column_name = 'tenant_id'", connection);
        var tables = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            tables.Add(reader.GetString(0));
        }

        return tables;
    }

    protected override Task CleanUpAsync() =>
        _connectionString is null ? Task.CompletedTask : fixture.DropDatabaseAsync(_connectionString);
}
