namespace SpIstio.Backend.Storage;

/// <summary>
/// The one definition of an error, used by ingest, every query and every page (docs/ARCHITECTURE.md, "Errors"):
/// a span is an <b>error</b> when the server side failed — an HTTP status of 500 or more, or no response at
/// all (a transport failure, time-out or cancellation; OTLP status ERROR on a span without an HTTP status).
/// A 4xx is a <b>client error</b>: the caller's fault, counted separately and never as an error, even when an
/// SDK marked the client span ERROR (the HTTP semantic conventions tell client instrumentations to).
/// </summary>
public static class ErrorDefinition
{
    /// <summary>
    /// The stored error flag's SQL: rows written before this rule may carry the flag for a 4xx (an SDK's
    /// ERROR on a client span), so queries re-apply the status test; <paramref name="alias"/> is the spans alias.
    /// </summary>
    public static string Sql(string alias) =>
        $"(CASE WHEN {alias}.is_error = 1 AND ({alias}.status_code IS NULL OR {alias}.status_code >= 500) THEN 1 ELSE 0 END)";

    /// <summary>The 4xx test in SQL.</summary>
    public static string ClientSql(string alias) =>
        $"(CASE WHEN {alias}.status_code >= 400 AND {alias}.status_code < 500 THEN 1 ELSE 0 END)";

    /// <summary>True when the span is an error: status ≥ 500, or no HTTP status and a failure (transport, time-out, OTLP ERROR).</summary>
    public static bool IsError(int? httpStatus, bool failed) => httpStatus is { } status ? status >= 500 : failed;

    /// <summary>True for a 4xx answer.</summary>
    public static bool IsClientError(int? httpStatus) => httpStatus is >= 400 and < 500;

    /// <summary>The definition applied to a stored row (its flag and status).</summary>
    public static bool FromStored(bool flag, int? httpStatus) => flag && httpStatus is null or >= 500;
}
