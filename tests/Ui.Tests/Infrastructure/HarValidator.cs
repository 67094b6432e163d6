using System.Globalization;
using System.Text.Json;

namespace SpIstio.Ui.Tests.Infrastructure;

/// <summary>Checks a document against the HAR 1.2 required fields and their types; returns every problem.</summary>
internal static class HarValidator
{
    public static List<string> Validate(JsonElement root)
    {
        var problems = new List<string>();
        if (!Obj(root, "log", problems, "$", out var log))
        {
            return problems;
        }

        if (!Str(log, "version", problems, "log", out var version) || version != "1.2")
        {
            problems.Add("log.version must be \"1.2\"");
        }

        if (Obj(log, "creator", problems, "log", out var creator))
        {
            Str(creator, "name", problems, "log.creator", out _);
            Str(creator, "version", problems, "log.creator", out _);
        }

        if (!log.TryGetProperty("entries", out var entries) || entries.ValueKind != JsonValueKind.Array)
        {
            problems.Add("log.entries must be an array");
            return problems;
        }

        var i = 0;
        foreach (var e in entries.EnumerateArray())
        {
            var at = "log.entries[" + i++.ToString(CultureInfo.InvariantCulture) + "]";
            if (Str(e, "startedDateTime", problems, at, out var started)
                && !DateTimeOffset.TryParseExact(started, ["yyyy-MM-ddTHH:mm:ss.fffK", "yyyy-MM-ddTHH:mm:ssK", "o"], CultureInfo.InvariantCulture, DateTimeStyles.None, out _))
            {
                problems.Add(at + ".startedDateTime is not ISO 8601 with an offset: " + started);
            }

            Num(e, "time", problems, at);
            if (Obj(e, "request", problems, at, out var req))
            {
                var r = at + ".request";
                Str(req, "method", problems, r, out _);
                Str(req, "url", problems, r, out _);
                Str(req, "httpVersion", problems, r, out _);
                Pairs(req, "cookies", problems, r);
                Pairs(req, "headers", problems, r);
                Pairs(req, "queryString", problems, r);
                Num(req, "headersSize", problems, r);
                Num(req, "bodySize", problems, r);
                if (req.TryGetProperty("postData", out var post))
                {
                    Str(post, "mimeType", problems, r + ".postData", out _);
                }
            }

            if (Obj(e, "response", problems, at, out var res))
            {
                var r = at + ".response";
                Num(res, "status", problems, r);
                Str(res, "statusText", problems, r, out _);
                Str(res, "httpVersion", problems, r, out _);
                Pairs(res, "cookies", problems, r);
                Pairs(res, "headers", problems, r);
                if (Obj(res, "content", problems, r, out var content))
                {
                    Num(content, "size", problems, r + ".content");
                    Str(content, "mimeType", problems, r + ".content", out _);
                }

                Str(res, "redirectURL", problems, r, out _);
                Num(res, "headersSize", problems, r);
                Num(res, "bodySize", problems, r);
            }

            Obj(e, "cache", problems, at, out _);
            if (Obj(e, "timings", problems, at, out var timings))
            {
                Num(timings, "send", problems, at + ".timings");
                Num(timings, "wait", problems, at + ".timings");
                Num(timings, "receive", problems, at + ".timings");
            }
        }

        return problems;
    }

    private static bool Obj(JsonElement parent, string name, List<string> problems, string at, out JsonElement value)
    {
        if (parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out value) && value.ValueKind == JsonValueKind.Object)
        {
            return true;
        }

        problems.Add(at + "." + name + " must be an object");
        value = default;
        return false;
    }

    private static bool Str(JsonElement parent, string name, List<string> problems, string at, out string? value)
    {
        if (parent.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String)
        {
            value = v.GetString();
            return true;
        }

        problems.Add(at + "." + name + " must be a string");
        value = null;
        return false;
    }

    private static void Num(JsonElement parent, string name, List<string> problems, string at)
    {
        if (!parent.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.Number)
        {
            problems.Add(at + "." + name + " must be a number");
        }
    }

    private static void Pairs(JsonElement parent, string name, List<string> problems, string at)
    {
        if (!parent.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.Array)
        {
            problems.Add(at + "." + name + " must be an array");
            return;
        }

        foreach (var p in v.EnumerateArray())
        {
            if (p.ValueKind != JsonValueKind.Object || !p.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String
                || !p.TryGetProperty("value", out var val) || val.ValueKind != JsonValueKind.String)
            {
                problems.Add(at + "." + name + " items must have string name and value");
            }
        }
    }
}
