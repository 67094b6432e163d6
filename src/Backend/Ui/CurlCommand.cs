using System.Text;
using System.Text.Json;
using SpIstio.Backend.Api;
using SpIstio.Backend.Har;

namespace SpIstio.Backend.Ui;

/// <summary>"Copy as curl": the captured request as a POSIX shell command.</summary>
internal static class CurlCommand
{
    public static string Build(SpanDetailDto detail)
    {
        var span = detail.Span;
        var sb = new StringBuilder(256);
        var body = detail.RequestBody;
        var binary = body is not null && body.Encoding == "base64";
        if (binary)
        {
            // Binary bytes cannot sit in a shell argument: decode them from base64 on stdin.
            sb.Append("printf '%s' ").Append(Quote(body!.Content)).Append(" | base64 -d | ");
        }

        sb.Append("curl -X ").Append(span.Method ?? "GET").Append(' ')
          .Append(Quote(HarBuilder.Url(detail.Scheme, span.Authority, span.Path, detail.Query)));
        if (detail.RequestHeaders is { ValueKind: JsonValueKind.Array } headers)
        {
            foreach (var pair in headers.EnumerateArray())
            {
                var name = pair[0].GetString() ?? "";
                if (name.Length == 0 || name[0] == ':' || name is "host" or "content-length")
                {
                    continue;
                }

                sb.Append(" \\\n  -H ").Append(Quote(name + ": " + pair[1].GetString()));
            }
        }

        if (body is not null)
        {
            sb.Append(" \\\n  --data-binary ").Append(binary ? "@-" : Quote(body.Content));
        }

        return sb.ToString();
    }

    /// <summary>Single-quotes for a POSIX shell: nothing inside is special except the quote itself.</summary>
    public static string Quote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
