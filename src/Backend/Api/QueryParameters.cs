using System.Globalization;
using Microsoft.AspNetCore.Http;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Api;

/// <summary>
/// Parsing of what the API and the Trace View accept in URLs (ids, times, status classes, trace
/// search filters), with the problem each bad value is reported with.
/// </summary>
internal static class QueryParameters
{
    /// <summary>Parses trace search parameters; the problem names the first bad one. The UI shares it.</summary>
    internal static (TraceQuery? Query, string? Parameter, string? Problem) ParseTraceQuery(IEnumerable<KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues>> parameters)
    {
        var q = new QueryCollection(parameters.ToDictionary(p => p.Key, p => p.Value, StringComparer.OrdinalIgnoreCase));
        if (!TryInt(q["limit"], 1, QueryEndpoints.MaxLimit, 20, out var limit))
        {
            return Invalid("limit", string.Create(CultureInfo.InvariantCulture, $"must be an integer from 1 to {QueryEndpoints.MaxLimit}"));
        }

        var status = TraceStatusFilter.Any;
        int? statusClass = null;
        var statusText = Optional(q["status"]);
        if (statusText is not null)
        {
            switch (statusText.ToLowerInvariant())
            {
                case "error": status = TraceStatusFilter.Error; break;
                case "client_error" or "clienterror": status = TraceStatusFilter.ClientError; break;
                case "ok": status = TraceStatusFilter.Ok; break;
                default:
                    if (!TryStatusClass(q["status"], out statusClass))
                    {
                        return Invalid("status", "must be error, client_error, ok or a status class (2xx, 3xx, 4xx, 5xx)");
                    }

                    break;
            }
        }

        if (!TryDuration(q["minDuration"], out var minDuration))
        {
            return Invalid("minDuration", "must be a duration such as 250ms, 1.5s, 2m or a number of milliseconds");
        }

        if (!TryDuration(q["maxDuration"], out var maxDuration))
        {
            return Invalid("maxDuration", "must be a duration such as 250ms, 1.5s, 2m or a number of milliseconds");
        }

        if (minDuration is not null && maxDuration is not null && minDuration > maxDuration)
        {
            return Invalid("minDuration", "must not be more than 'maxDuration'");
        }

        if (!TryTime(q["from"], out var from))
        {
            return Invalid("from", "must be an ISO 8601 time or Unix milliseconds");
        }

        if (!TryTime(q["to"], out var to))
        {
            return Invalid("to", "must be an ISO 8601 time or Unix milliseconds");
        }

        if (from is not null && to is not null && from > to)
        {
            return Invalid("from", "must not be after 'to'");
        }

        var text = Optional(q["q"]);
        if (text is { Length: > 256 })
        {
            return Invalid("q", "must be at most 256 characters");
        }

        foreach (var name in new[] { "service", "operation", "route" })
        {
            if (Optional(q[name]) is { Length: > 512 })
            {
                return Invalid(name, "must be at most 512 characters");
            }
        }

        var attributes = new List<KeyValuePair<string, string>>();
        foreach (var (key, values) in q)
        {
            if (!key.StartsWith("attr.", StringComparison.Ordinal))
            {
                continue;
            }

            var name = key["attr.".Length..];
            if (name.Length is 0 or > 256)
            {
                return Invalid(key, "must name an attribute: attr.<key>=<value>, the key 1 to 256 characters");
            }

            foreach (var value in values)
            {
                if (value is null || value.Length > 1024)
                {
                    return Invalid(key, "must have a value of at most 1024 characters");
                }

                attributes.Add(new(name, value));
            }
        }

        if (attributes.Count > QueryEndpoints.MaxAttributeFilters)
        {
            return Invalid("attr", string.Create(CultureInfo.InvariantCulture, $"takes at most {QueryEndpoints.MaxAttributeFilters} attribute filters"));
        }

        var cursor = Optional(q["cursor"]);
        if (cursor is { Length: > 256 })
        {
            return Invalid("cursor", "is not a cursor this API returned");
        }

        return (new TraceQuery
        {
            Service = Optional(q["service"]),
            Operation = Optional(q["operation"]),
            Route = Optional(q["route"]),
            Status = status,
            StatusClass = statusClass,
            MinDuration = minDuration,
            MaxDuration = maxDuration,
            Text = text,
            Attributes = attributes,
            From = from,
            To = to,
            Cursor = cursor,
            Limit = limit,
        }, null, null);

        static (TraceQuery?, string?, string?) Invalid(string parameter, string problem) => (null, parameter, problem);
    }

    /// <summary>Parses <c>250ms</c>, <c>1.5s</c>, <c>2m</c>, <c>1h</c>, <c>300us</c> or a bare number of milliseconds.</summary>
    internal static bool TryDuration(Microsoft.Extensions.Primitives.StringValues value, out TimeSpan? duration)
    {
        duration = null;
        var text = Optional(value);
        if (text is null)
        {
            return true;
        }

        (string Suffix, double Ms)[] units = [("us", 0.001), ("µs", 0.001), ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];
        double scale = 1;
        foreach (var (suffix, ms) in units)
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && !(suffix == "s" && (text.EndsWith("ms", StringComparison.OrdinalIgnoreCase) || text.EndsWith("us", StringComparison.OrdinalIgnoreCase) || text.EndsWith("µs", StringComparison.Ordinal))))
            {
                text = text[..^suffix.Length];
                scale = ms;
                break;
            }
        }

        if (!double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }

        var total = number * scale;
        if (!double.IsFinite(total) || total > TimeSpan.FromDays(365).TotalMilliseconds)
        {
            return false;
        }

        duration = TimeSpan.FromMilliseconds(total);
        return true;
    }

    internal static bool TryStatusClass(Microsoft.Extensions.Primitives.StringValues value, out int? statusClass)
    {
        statusClass = null;
        var text = Optional(value);
        if (text is null)
        {
            return true;
        }

        if (text.Length == 3 && text.EndsWith("xx", StringComparison.OrdinalIgnoreCase))
        {
            text = text[..1];
        }

        if (text.Length == 1 && text[0] is >= '1' and <= '5')
        {
            statusClass = text[0] - '0';
            return true;
        }

        return false;
    }

    internal static bool TryTime(Microsoft.Extensions.Primitives.StringValues value, out DateTimeOffset? time)
    {
        time = null;
        var text = Optional(value);
        if (text is null)
        {
            return true;
        }

        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var ms))
        {
            if (ms > DateTimeOffset.MaxValue.ToUnixTimeMilliseconds())
            {
                return false;
            }

            time = DateTimeOffset.FromUnixTimeMilliseconds(ms);
            return true;
        }

        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var parsed))
        {
            time = parsed;
            return true;
        }

        return false;
    }

    internal static bool TryHexId(string? text, int length, out string id)
    {
        id = "";
        if (text is null || text.Length != length)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return false;
            }
        }

        id = text.ToLowerInvariant();
        return true;
    }

    /// <summary>
    /// A route value with escaped slashes restored: ASP.NET Core decodes every escape in a path except
    /// <c>%2F</c>, so an id sent as <c>a%2Fb</c> arrives as that text and means <c>a/b</c>.
    /// </summary>
    public static string DecodeSlashes(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
    }

    internal static string? Optional(Microsoft.Extensions.Primitives.StringValues value)
    {
        var text = value.ToString();
        return string.IsNullOrWhiteSpace(text) ? null : text.Trim();
    }

    internal static bool TryInt(Microsoft.Extensions.Primitives.StringValues value, int min, int max, int fallback, out int result)
    {
        var text = Optional(value);
        if (text is null)
        {
            result = fallback;
            return true;
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out result) && result >= min && result <= max;
    }
}
