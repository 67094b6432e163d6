using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;
using SpIstio.Backend.Api;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Har;

/// <summary>Maps stored exchanges to HAR entries and HAR entries to request/response parts.</summary>
public static class HarConverter
{
    /// <summary>A HAR document of <paramref name="spans"/> (exchanges only, in the order given) on one page.</summary>
    public static HarDocument ToDocument(IReadOnlyList<StoredSpan> spans, string pageId, string title)
    {
        ArgumentNullException.ThrowIfNull(spans);
        var entries = new List<HarEntry>(spans.Count);
        foreach (var span in spans)
        {
            if (span.IsExchange)
            {
                entries.Add(ToEntry(span, pageId));
            }
        }

        var page = new HarPage { Id = pageId, Title = title, StartedDateTime = entries.Count > 0 ? entries[0].StartedDateTime : DateTimeOffset.UnixEpoch };
        return new HarDocument { Log = new HarLog { Pages = [page], Entries = entries } };
    }

    /// <summary>One stored exchange as a HAR entry.</summary>
    public static HarEntry ToEntry(StoredSpan span, string? pageId)
    {
        ArgumentNullException.ThrowIfNull(span);
        var detail = QueryEndpoints.ToDetail(span);
        var requestHeaders = Headers(span.RequestHeadersJson);
        var responseHeaders = Headers(span.ResponseHeadersJson);
        var url = string.Concat(span.Scheme ?? "http", "://", span.Authority ?? "", span.Path ?? "/", span.Query is null ? "" : "?" + span.Query);
        var ms = Math.Max(0, span.Duration.TotalMilliseconds);
        HarPostData? postData = null;
        if (detail.RequestBody is { } requestBody)
        {
            postData = new HarPostData
            {
                MimeType = requestBody.ContentType ?? Find(requestHeaders, "content-type") ?? "",
                Text = requestBody.Content,
                Encoding = requestBody.Encoding == "base64" ? "base64" : null,
            };
        }

        var responseBody = detail.ResponseBody;
        return new HarEntry
        {
            Pageref = pageId,
            StartedDateTime = span.StartTime,
            Time = ms,
            TraceId = span.TraceId,
            SpanId = span.SpanId,
            Service = span.ServiceName,
            Request = new HarRequest
            {
                Method = span.Method ?? "GET",
                Url = url,
                Headers = requestHeaders,
                QueryString = Query(span.Query),
                PostData = postData,
                BodySize = detail.RequestBody?.OriginalSize ?? 0,
            },
            Response = new HarResponse
            {
                Status = span.StatusCode ?? 0,
                StatusText = span.StatusCode is int status ? ReasonPhrase(status) : "",
                Headers = responseHeaders,
                RedirectURL = Find(responseHeaders, "location") ?? "",
                BodySize = responseBody?.OriginalSize ?? 0,
                Content = new HarContent
                {
                    Size = responseBody?.CapturedBytes ?? 0,
                    MimeType = responseBody?.ContentType ?? Find(responseHeaders, "content-type") ?? "",
                    Text = responseBody?.Content,
                    Encoding = responseBody?.Encoding == "base64" ? "base64" : null,
                },
            },
            Timings = new HarTimings { Send = 0, Wait = ms, Receive = 0 },
        };
    }

    /// <summary>The bytes of a HAR text that may be base64.</summary>
    public static byte[] Bytes(string? text, string? encoding)
    {
        if (string.IsNullOrEmpty(text))
        {
            return [];
        }

        return string.Equals(encoding, "base64", StringComparison.OrdinalIgnoreCase) ? Convert.FromBase64String(text) : Encoding.UTF8.GetBytes(text);
    }

    /// <summary>The reason phrase of a status (empty when unknown).</summary>
    public static string ReasonPhrase(int status) => ReasonPhrases.GetReasonPhrase(status);

    private static List<HarNameValue> Headers(string? json)
    {
        var list = new List<HarNameValue>();
        if (string.IsNullOrEmpty(json))
        {
            return list;
        }

        using var document = JsonDocument.Parse(json);
        foreach (var pair in document.RootElement.EnumerateArray())
        {
            if (pair.GetArrayLength() >= 2)
            {
                list.Add(new HarNameValue(pair[0].GetString() ?? "", pair[1].GetString() ?? ""));
            }
        }

        return list;
    }

    private static List<HarNameValue> Query(string? query)
    {
        var list = new List<HarNameValue>();
        if (string.IsNullOrEmpty(query))
        {
            return list;
        }

        foreach (var pair in new QueryStringEnumerable(query))
        {
            list.Add(new HarNameValue(pair.DecodeName().ToString(), pair.DecodeValue().ToString()));
        }

        return list;
    }

    private static string? Find(List<HarNameValue> headers, string name)
    {
        foreach (var header in headers)
        {
            if (string.Equals(header.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                return header.Value;
            }
        }

        return null;
    }
}
