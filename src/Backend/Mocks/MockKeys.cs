using SpIstio.Core.Model;
using SpIstio.Core.Replay;

namespace SpIstio.Backend.Mocks;

/// <summary>
/// The match keys of mocks and lookups: Core's <see cref="ReplayKey.Default"/> over method,
/// authority, path, query and body. A mock with an empty authority is keyed without one, so a
/// lookup tries both its own key and its any-host key.
/// </summary>
public static class MockKeys
{
    /// <summary>The key a mock with these request fields is stored under.</summary>
    public static string ForMock(string method, string authority, string path, string? query, ReadOnlySpan<byte> body) =>
        ReplayKey.Default.Compute(method, authority, path, query, body, null);

    /// <summary>The keys a request may match: host-specific first, then any-host.</summary>
    public static string[] ForRequest(Exchange request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = request.RequestBody.Content.Span;
        return
        [
            ReplayKey.Default.Compute(request.Method, request.Authority, request.Path, request.Query, body, null),
            ReplayKey.Default.Compute(request.Method, "", request.Path, request.Query, body, null),
        ];
    }
}
