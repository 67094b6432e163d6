using System.Data.Common;
using System.Net.Sockets;
using Microsoft.Data.Sqlite;
using Npgsql;
using SpIstio.Core.Startup;

namespace SpIstio.Backend.Storage;

/// <summary>
/// Turns what Npgsql, SQLite and the file system throw while a store is opened and migrated into
/// one line naming the store, what went wrong and what to check, for <c>sp</c> to print instead of
/// a stack trace. Never quotes a password.
/// </summary>
public static class StoreErrors
{
    /// <summary>
    /// Checks an Npgsql connection string key by key; null when every keyword is known and every
    /// value has the right type, else one line naming the first bad keyword.
    /// </summary>
    public static string? CheckPostgresConnectionString(string connectionString)
    {
        DbConnectionStringBuilder generic;
        try
        {
            generic = new DbConnectionStringBuilder { ConnectionString = connectionString };
        }
        catch (ArgumentException)
        {
            return "the PostgreSQL connection string is not key=value pairs separated by ';' (e.g. Host=db;Database=sp;Username=sp)";
        }

        var npgsql = new NpgsqlConnectionStringBuilder();
        foreach (string key in generic.Keys)
        {
            var value = generic[key];
            try
            {
                npgsql[key] = value;
            }
            catch (ArgumentException e) when (e.InnerException is KeyNotFoundException || !npgsql.ContainsKey(key))
            {
                return "unknown PostgreSQL connection string keyword '" + key + "' (known ones include Host, Port, Database, Username, Password, SSL Mode, Timeout)";
            }
            catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException or OverflowException)
            {
                var shown = IsSecret(key) ? "***" : Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture);
                return "PostgreSQL connection string keyword '" + key + "' has a bad value '" + shown + "'";
            }
        }

        return null;
    }

    /// <summary>A one-line <see cref="StartupException"/> for a failure to open or migrate the store <paramref name="spec"/>, or null when the exception is not one of the known kinds.</summary>
    public static StartupException? Describe(Exception exception, string spec)
    {
        ArgumentNullException.ThrowIfNull(exception);
        ArgumentNullException.ThrowIfNull(spec);
        if (exception is StartupException startup)
        {
            return startup;
        }

        if (exception is StoreSchemaTooNewException tooNew)
        {
            return new StartupException("store: " + tooNew.Message, StartupFailure.Unavailable, exception);
        }

        if (exception is ArgumentException argument && argument.Message.StartsWith("Invalid store spec", StringComparison.Ordinal))
        {
            var text = argument.ParamName is null ? argument.Message : argument.Message.Replace(" (Parameter '" + argument.ParamName + "')", "", StringComparison.Ordinal);
            return new StartupException("store: " + text, StartupFailure.InvalidInput, exception);
        }

        var colon = spec.IndexOf(':', StringComparison.Ordinal);
        var scheme = colon < 0 ? "" : spec[..colon];
        var rest = colon < 0 ? spec : spec[(colon + 1)..];
        return scheme.StartsWith("postgres", StringComparison.OrdinalIgnoreCase)
            ? DescribePostgres(exception, rest)
            : DescribeSqlite(exception, rest);
    }

    private static StartupException? DescribePostgres(Exception exception, string connectionString)
    {
        string where = "PostgreSQL", user = "", database = "";
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString);
            where = "PostgreSQL at " + builder.Host + ":" + builder.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            user = builder.Username ?? "";
            database = builder.Database ?? "";
        }
        catch (ArgumentException)
        {
            // The connection string was checked before the store was opened; keep the generic name.
        }

        var unavailable = StartupFailure.Unavailable;
        if (Find<PostgresException>(exception) is { } postgres)
        {
            var message = postgres.SqlState switch
            {
                "28P01" or "28000" => where + " refused the login of user '" + user + "': " + postgres.MessageText,
                "3D000" => where + ": database '" + database + "' does not exist (create it, or fix Database=)",
                "42501" => where + ": user '" + user + "' lacks a privilege the schema migration needs: " + postgres.MessageText,
                _ => where + " answered " + postgres.SqlState + ": " + postgres.MessageText,
            };
            return new StartupException("store: " + message, unavailable, exception);
        }

        if (Find<SocketException>(exception) is { } socket)
        {
            var reason = socket.SocketErrorCode switch
            {
                SocketError.ConnectionRefused => "connection refused (is the server running and listening on that port?)",
                SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData => "the host name does not resolve",
                SocketError.TimedOut => "the connection timed out",
                SocketError.NetworkUnreachable or SocketError.HostUnreachable => "the host is unreachable",
                _ => socket.Message,
            };
            return new StartupException("store: cannot connect to " + where + ": " + reason, unavailable, exception);
        }

        if (Find<TimeoutException>(exception) is not null || (exception is NpgsqlException && exception.Message.Contains("Timeout", StringComparison.OrdinalIgnoreCase)))
        {
            return new StartupException("store: cannot connect to " + where + ": no answer within the connection timeout (Timeout=, default 15 s)", unavailable, exception);
        }

        if (Find<NpgsqlException>(exception) is { } npgsql)
        {
            return new StartupException("store: cannot use " + where + ": " + OneLine(npgsql.Message), unavailable, exception);
        }

        return null;
    }

    private static StartupException? DescribeSqlite(Exception exception, string file)
    {
        var question = file.IndexOf('?', StringComparison.Ordinal);
        var path = Path.GetFullPath(question < 0 ? file : file[..question]);
        var folder = Path.GetDirectoryName(path) ?? path;
        var unavailable = StartupFailure.Unavailable;
        if (Find<SqliteException>(exception) is { } sqlite)
        {
            var message = sqlite.SqliteErrorCode switch
            {
                26 => path + " is not a SQLite database (another file has this name)",
                14 => Directory.Exists(path)
                    ? path + " is a folder, not a database file"
                    : "cannot open or create " + path + " (is the folder " + folder + " writable?)",
                8 => path + " is read-only (the backend writes to its store)",
                13 => "the disk holding " + path + " is full",
                5 or 6 => path + " is locked by another process",
                11 => path + " is corrupt: " + sqlite.Message,
                _ => "cannot use " + path + ": " + OneLine(sqlite.Message),
            };
            return new StartupException("store: " + message, unavailable, exception);
        }

        if (exception is UnauthorizedAccessException)
        {
            return new StartupException("store: cannot create the folder " + folder + " for the SQLite file: permission denied", unavailable, exception);
        }

        if (exception is IOException io)
        {
            return new StartupException("store: cannot create the folder " + folder + " for the SQLite file: " + OneLine(io.Message), unavailable, exception);
        }

        return null;
    }

    private static bool IsSecret(string key) =>
        key.Contains("password", StringComparison.OrdinalIgnoreCase) || key.Equals("pwd", StringComparison.OrdinalIgnoreCase);

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");

    private static T? Find<T>(Exception? exception)
        where T : Exception
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is T found)
            {
                return found;
            }
        }

        return null;
    }
}
