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

    protected override Task CleanUpAsync() =>
        _connectionString is null ? Task.CompletedTask : fixture.DropDatabaseAsync(_connectionString);
}
