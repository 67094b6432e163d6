using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Mocks;

/// <summary>Mocks between their API form (<see cref="MockDto"/>) and their stored form (<see cref="MockRecord"/>), and the header lists both carry.</summary>
public static class MockMapping
{
    // Headers that describe one connection or one framing of a body, not the response itself.
    internal static readonly string[] _notReplayed =
        ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length", "x-sp-cache"];

    /// <summary>A stored mock as the API shows it.</summary>
    public static MockDto ToDto(MockRecord mock)
    {
        ArgumentNullException.ThrowIfNull(mock);
        var headers = new List<IReadOnlyList<string>>();
        using (var document = JsonDocument.Parse(mock.ResponseHeadersJson))
        {
            foreach (var pair in document.RootElement.EnumerateArray())
            {
                headers.Add([pair[0].GetString() ?? "", pair[1].GetString() ?? ""]);
            }
        }

        var requestText = Utf8.IsValid(mock.RequestBody.Span);
        var responseText = Utf8.IsValid(mock.ResponseBody.Span);
        return new MockDto
        {
            Id = mock.Id,
            Service = mock.Service,
            Environment = mock.Environment,
            Method = mock.Method,
            Authority = mock.Authority,
            Path = mock.Path,
            Query = mock.Query,
            RequestBody = mock.RequestBody.IsEmpty ? null : requestText ? Encoding.UTF8.GetString(mock.RequestBody.Span) : null,
            RequestBodyBase64 = !mock.RequestBody.IsEmpty && !requestText ? Convert.ToBase64String(mock.RequestBody.Span) : null,
            Status = mock.StatusCode,
            Headers = headers,
            Body = responseText ? Encoding.UTF8.GetString(mock.ResponseBody.Span) : null,
            BodyBase64 = responseText ? null : Convert.ToBase64String(mock.ResponseBody.Span),
            Description = mock.Description,
            SourceTraceId = mock.SourceTraceId,
            SourceSpanId = mock.SourceSpanId,
            CreatedAt = mock.CreatedAt,
            UpdatedAt = mock.UpdatedAt,
            ExpiresAt = mock.ExpiresAt,
        };
    }

    /// <summary>
    /// A mock from a request and a response; its match key is computed here. Returns null with a
    /// problem when the request or response is unusable.
    /// </summary>
    public static MockRecord? ToRecord(MockDto dto, DateTimeOffset now, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(dto);
        problem = null;
        var method = string.IsNullOrWhiteSpace(dto.Method) ? "GET" : dto.Method.Trim().ToUpperInvariant();
        if (string.IsNullOrEmpty(dto.Path) || dto.Path[0] != '/')
        {
            problem = "'path' must start with '/'";
            return null;
        }

        var status = dto.Status ?? 200;
        if (status is < 200 or > 599)
        {
            problem = "'status' must be from 200 to 599";
            return null;
        }

        byte[] requestBody;
        byte[] responseBody;
        try
        {
            requestBody = dto.RequestBodyBase64 is not null ? Convert.FromBase64String(dto.RequestBodyBase64) : Encoding.UTF8.GetBytes(dto.RequestBody ?? "");
            responseBody = dto.BodyBase64 is not null ? Convert.FromBase64String(dto.BodyBase64) : Encoding.UTF8.GetBytes(dto.Body ?? "");
        }
        catch (FormatException)
        {
            problem = "'requestBodyBase64' and 'bodyBase64' must be base64";
            return null;
        }

        var headers = new List<(string, string)>();
        foreach (var pair in dto.Headers ?? [])
        {
            if (pair.Count != 2 || string.IsNullOrWhiteSpace(pair[0]))
            {
                problem = "'headers' must be [name, value] pairs";
                return null;
            }

            headers.Add((pair[0].ToLowerInvariant(), pair[1]));
        }

        var authority = dto.Authority?.Trim() ?? "";
        var query = string.IsNullOrEmpty(dto.Query) ? null : dto.Query.TrimStart('?');
        return new MockRecord
        {
            Id = dto.Id,
            Service = dto.Service?.Trim() ?? "",
            Environment = dto.Environment?.Trim() ?? "",
            Method = method,
            Authority = authority,
            Path = dto.Path,
            Query = query,
            RequestBody = requestBody,
            MatchKey = MockKeys.ForMock(method, authority, dto.Path, query, requestBody),
            StatusCode = status,
            ResponseHeadersJson = HeadersJson(headers, dropContentEncoding: false),
            ResponseBody = responseBody,
            Description = dto.Description,
            SourceTraceId = dto.SourceTraceId,
            SourceSpanId = dto.SourceSpanId,
            CreatedAt = now,
            UpdatedAt = now,
            ExpiresAt = dto.ExpiresAt,
        };
    }

    /// <summary>The headers of a response as a mock replays them (no framing, no hop-by-hop fields), as JSON pairs.</summary>
    public static string HeadersJson(IEnumerable<(string Name, string Value)> headers, bool dropContentEncoding)
    {
        ArgumentNullException.ThrowIfNull(headers);
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var (name, value) in headers)
            {
                if (Array.Exists(_notReplayed, n => string.Equals(n, name, StringComparison.OrdinalIgnoreCase))
                    || (dropContentEncoding && string.Equals(name, "content-encoding", StringComparison.OrdinalIgnoreCase))
                    || name.StartsWith(':'))
                {
                    continue;
                }

                writer.WriteStartArray();
                writer.WriteStringValue(name);
                writer.WriteStringValue(value);
                writer.WriteEndArray();
            }

            writer.WriteEndArray();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    internal static List<(string Name, string Value)> ReadPairs(string? json)
    {
        var list = new List<(string, string)>();
        if (string.IsNullOrEmpty(json))
        {
            return list;
        }

        using var document = JsonDocument.Parse(json);
        foreach (var pair in document.RootElement.EnumerateArray())
        {
            if (pair.GetArrayLength() >= 2)
            {
                list.Add((pair[0].GetString() ?? "", pair[1].GetString() ?? ""));
            }
        }

        return list;
    }
}
