namespace SpIstio.Core.Capture;

/// <summary>Span-based reading of a content-type header value.</summary>
internal static class MediaType
{
    /// <summary>
    /// The media type of <paramref name="contentType"/> (trimmed, original case) and its
    /// <c>charset</c> parameter without quotes (empty when absent).
    /// </summary>
    public static ReadOnlySpan<char> Parse(string? contentType, out ReadOnlySpan<char> charset)
    {
        charset = default;
        if (string.IsNullOrEmpty(contentType))
        {
            return default;
        }

        var value = contentType.AsSpan();
        var semicolon = value.IndexOf(';');
        if (semicolon < 0)
        {
            return value.Trim();
        }

        var mediaType = value[..semicolon].Trim();
        var parameters = value[(semicolon + 1)..];
        while (!parameters.IsEmpty)
        {
            var next = parameters.IndexOf(';');
            var parameter = (next < 0 ? parameters : parameters[..next]).Trim();
            parameters = next < 0 ? default : parameters[(next + 1)..];
            var equals = parameter.IndexOf('=');
            if (equals > 0 && parameter[..equals].TrimEnd().Equals("charset", StringComparison.OrdinalIgnoreCase))
            {
                charset = parameter[(equals + 1)..].Trim().Trim('"').Trim();
                break;
            }
        }

        return mediaType;
    }

    /// <summary>True for media types that are text by definition.</summary>
    /// <remarks>
    /// multipart/* is deliberately absent: a form upload may carry a binary file, so it is sniffed.
    /// </remarks>
    public static bool IsTextual(ReadOnlySpan<char> mediaType) =>
        mediaType.StartsWith("text/", StringComparison.OrdinalIgnoreCase)
        || IsJson(mediaType)
        || mediaType.EndsWith("+xml", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/xml", StringComparison.OrdinalIgnoreCase)
        || IsForm(mediaType)
        || mediaType.Equals("application/javascript", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/ecmascript", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/graphql", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/x-ndjson", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/yaml", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/x-yaml", StringComparison.OrdinalIgnoreCase);

    /// <summary>application/json or any <c>+json</c> type (problem+json, ld+json, vnd.api+json, …).</summary>
    public static bool IsJson(ReadOnlySpan<char> mediaType) =>
        mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
        || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase);

    /// <summary>application/x-www-form-urlencoded.</summary>
    public static bool IsForm(ReadOnlySpan<char> mediaType) =>
        mediaType.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase);
}
