using System.Text.Json;
using SpIstio.Backend.GrpcCalls;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ui;

/// <summary>What the Trace View shows of a gRPC call beside its decoded messages: status classes, metadata, the message timeline.</summary>
internal static class GrpcCallFormat
{
    // Headers that are the transport or the status, not the call's metadata: shown elsewhere on the page.
    private static readonly HashSet<string> _transport = new(StringComparer.OrdinalIgnoreCase)
    {
        "content-type", "content-length", "te", "grpc-status", "grpc-message", "grpc-status-details-bin",
    };

    /// <summary>
    /// <c>ok</c>, <c>client-error</c> or <c>server-error</c> for a status code, by the rule of
    /// <see cref="ErrorDefinition"/> (google/rpc/code.proto's HTTP mapping): the codes of a bad or
    /// refused request (CANCELLED, INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, ABORTED, …) read
    /// like a 4xx; those of a failed server or transport (UNKNOWN, DEADLINE_EXCEEDED, INTERNAL,
    /// UNAVAILABLE, …) and a missing status (null) like a 5xx.
    /// </summary>
    public static string StatusClass(int? code) => code switch
    {
        0 => "ok",
        { } failed when ErrorDefinition.IsClientError(null, failed) => "client-error",
        _ => "server-error",
    };

    /// <summary>The status code of a stored <c>grpc_status</c> (-1: none), or null.</summary>
    public static int? Code(int? grpcStatus) => grpcStatus is { } code && code >= 0 ? code : null;

    /// <summary>The status name of a stored <c>grpc_status</c>, or null when the call ended without one.</summary>
    public static string? Name(int? grpcStatus) => Code(grpcStatus) is { } code ? Core.GrpcMessages.GrpcCallStatus.NameOf(code) : null;

    /// <summary><c>package.Service/Method</c> of a gRPC request path; the path itself when it is not one.</summary>
    public static string ServiceMethod(string? path) =>
        Core.GrpcMessages.GrpcSpanAttributes.ParsePath(path) is var (service, method) ? service + "/" + method : path ?? "/";

    /// <summary>The badge text: the status name, or that the call ended without one.</summary>
    public static string StatusText(string? name) => name ?? "no status";

    /// <summary>The call's metadata: captured headers (and, on the response, trailers) without the transport and status ones.</summary>
    public static JsonElement? Metadata(JsonElement? headers)
    {
        if (headers is not { ValueKind: JsonValueKind.Array } list)
        {
            return null;
        }

        var kept = new List<string[]>();
        foreach (var pair in list.EnumerateArray())
        {
            var name = pair[0].GetString() ?? string.Empty;
            if (name.StartsWith(':') || _transport.Contains(name))
            {
                continue;
            }

            kept.Add([name, pair[1].GetString() ?? string.Empty]);
        }

        return JsonSerializer.SerializeToElement(kept, UiJsonContext.Default.ListStringArray);
    }

    /// <summary>Both directions' messages in time order (request first on a tie): the call's timeline.</summary>
    public static List<(bool Request, GrpcMessageDto Message)> Timeline(GrpcCallDto call)
    {
        var rows = new List<(bool Request, GrpcMessageDto Message)>();
        foreach (var m in call.Request?.Messages ?? [])
        {
            rows.Add((true, m));
        }

        foreach (var m in call.Response?.Messages ?? [])
        {
            rows.Add((false, m));
        }

        return [.. rows.OrderBy(r => r.Message.OffsetMs).ThenBy(r => r.Request ? 0 : 1).ThenBy(r => r.Message.Index)];
    }
}

/// <summary>Source-generated JSON metadata of what the UI serializes itself.</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(List<string[]>))]
internal sealed partial class UiJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
