namespace SpIstio.Backend.Storage;

/// <summary>
/// The one definition of an error, used by ingest, every query and every page (docs/ARCHITECTURE.md, "Errors"):
/// a span is an <b>error</b> when the server side failed — an HTTP status of 500 or more, or no response at
/// all (a transport failure, time-out or cancellation; OTLP status ERROR on a span without an HTTP status).
/// A 4xx is a <b>client error</b>: the caller's fault, counted separately and never as an error, even when an
/// SDK marked the client span ERROR (the HTTP semantic conventions tell client instrumentations to).
/// A gRPC call answers HTTP 200 whatever happened, so its status decides instead, by the HTTP status
/// google/rpc/code.proto maps it to: <c>UNKNOWN</c>, <c>DEADLINE_EXCEEDED</c>, <c>UNIMPLEMENTED</c>,
/// <c>INTERNAL</c>, <c>UNAVAILABLE</c>, <c>DATA_LOSS</c> and a call that ended without a status are errors;
/// <c>CANCELLED</c>, <c>INVALID_ARGUMENT</c>, <c>NOT_FOUND</c>, <c>ALREADY_EXISTS</c>,
/// <c>PERMISSION_DENIED</c>, <c>RESOURCE_EXHAUSTED</c>, <c>FAILED_PRECONDITION</c>, <c>ABORTED</c>,
/// <c>OUT_OF_RANGE</c> and <c>UNAUTHENTICATED</c> are client errors (4xx there); <c>OK</c> leaves the
/// HTTP status to decide.
/// </summary>
public static class ErrorDefinition
{
    /// <summary>
    /// The stored error flag's SQL: rows written before this rule may carry the flag for a 4xx (an SDK's
    /// ERROR on a client span), so queries re-apply the status test; <paramref name="alias"/> is the spans alias.
    /// </summary>
    public static string Sql(string alias) =>
        $"(CASE WHEN {GrpcFailedSql(alias)} THEN (CASE WHEN {alias}.grpc_status IN ({GrpcClientCodes}) THEN 0 ELSE 1 END) " +
        $"WHEN {alias}.is_error = 1 AND ({alias}.status_code IS NULL OR {alias}.status_code >= 500) THEN 1 ELSE 0 END)";

    /// <summary>The 4xx test in SQL (a gRPC call's status first, as in <see cref="Sql"/>).</summary>
    public static string ClientSql(string alias) =>
        $"(CASE WHEN {GrpcFailedSql(alias)} THEN (CASE WHEN {alias}.grpc_status IN ({GrpcClientCodes}) THEN 1 ELSE 0 END) " +
        $"WHEN {alias}.status_code >= 400 AND {alias}.status_code < 500 THEN 1 ELSE 0 END)";

    /// <summary>True when the span is an error: status ≥ 500, or no HTTP status and a failure (transport, time-out, OTLP ERROR).</summary>
    public static bool IsError(int? httpStatus, bool failed) => httpStatus is { } status ? status >= 500 : failed;

    /// <summary>True for a 4xx answer, or a gRPC status that maps to one.</summary>
    public static bool IsClientError(int? httpStatus, int? grpcStatus = null) =>
        GrpcFailed(grpcStatus) ? IsGrpcClientCode(grpcStatus!.Value) : httpStatus is >= 400 and < 500;

    /// <summary>The definition applied to a stored row (its flag, HTTP status and, for a gRPC call, its status).</summary>
    public static bool FromStored(bool flag, int? httpStatus, int? grpcStatus = null) =>
        GrpcFailed(grpcStatus) ? !IsGrpcClientCode(grpcStatus!.Value) : flag && httpStatus is null or >= 500;

    // The gRPC codes google/rpc/code.proto maps to a 4xx: CANCELLED (499), INVALID_ARGUMENT,
    // NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED,
    // OUT_OF_RANGE, UNAUTHENTICATED. Every other non-OK code, and -1 (ended without a status), is a 5xx.
    private static readonly int[] _grpcClientCodes = [1, 3, 5, 6, 7, 8, 9, 10, 11, 16];

    private static readonly string GrpcClientCodes = string.Join(", ", _grpcClientCodes);

    private static bool IsGrpcClientCode(int code) => Array.IndexOf(_grpcClientCodes, code) >= 0;

    // A gRPC call whose status is not OK (null: not a gRPC call).
    private static bool GrpcFailed(int? grpcStatus) => grpcStatus is { } code && code != 0;

    private static string GrpcFailedSql(string alias) => $"({alias}.grpc_status IS NOT NULL AND {alias}.grpc_status <> 0)";
}
