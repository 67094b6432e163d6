using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Frozen;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using SpIstio.Core.Model;

namespace SpIstio.Core.Replay;

/// <summary>
/// Computes the key under which a recorded response answers a request: a SHA-256 over the method,
/// the authority, the path, the normalised query (parameters sorted, ignored ones removed), a
/// digest of the body (JSON canonicalised: keys sorted, ignored fields removed at any depth,
/// whitespace gone; any other body byte-exact) and the configured vary headers. Built once per
/// cache rule (or <see cref="Default"/> for mocks); thread-safe.
/// </summary>
/// <remarks>
/// A full cryptographic digest, never a short checksum: two different requests sharing a key
/// would replay one's response to the other. Each component is length-prefixed in the hash input
/// so no two different component lists can produce the same byte stream.
/// </remarks>
public sealed class ReplayKey
{
    /// <summary>Length of a key: SHA-256 in lower-case hex.</summary>
    public const int KeyLength = 64;

    private static readonly JsonWriterOptions _writerOptions = new()
    {
        Indented = false,
        SkipValidation = true,
        // One fixed escaping for every string, so "é" and "\u00e9" canonicalise the same.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private static readonly JsonDocumentOptions _documentOptions = new() { MaxDepth = 128 };

    private readonly FrozenSet<string> _ignoreQuery;
    private readonly FrozenSet<string> _ignoreFields;
    private readonly string[] _varyHeaders;

    /// <summary>A key with no ignored parameters or fields and no vary headers (what mocks use).</summary>
    public static ReplayKey Default { get; } = new([], [], []);

    /// <summary>Builds a key function.</summary>
    /// <param name="ignoreQueryParams">Query parameter names left out (case-sensitive).</param>
    /// <param name="ignoreBodyFields">JSON property names left out at any depth (case-sensitive).</param>
    /// <param name="varyHeaders">Request header names whose values are part of the key (case-insensitive).</param>
    public ReplayKey(IEnumerable<string> ignoreQueryParams, IEnumerable<string> ignoreBodyFields, IEnumerable<string> varyHeaders)
    {
        ArgumentNullException.ThrowIfNull(ignoreQueryParams);
        ArgumentNullException.ThrowIfNull(ignoreBodyFields);
        ArgumentNullException.ThrowIfNull(varyHeaders);
        _ignoreQuery = ignoreQueryParams.ToFrozenSet(StringComparer.Ordinal);
        _ignoreFields = ignoreBodyFields.ToFrozenSet(StringComparer.Ordinal);
        _varyHeaders = [.. varyHeaders.Select(h => h.Trim().ToLowerInvariant()).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
    }

    /// <summary>The key of a request held in <paramref name="request"/> (its request side only).</summary>
    public string Compute(Exchange request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return Compute(request.Method, request.Authority, request.Path, request.Query, request.RequestBody.Content.Span, request.RequestHeaders);
    }

    /// <summary>The key of a request.</summary>
    /// <param name="method">HTTP method (compared upper-case).</param>
    /// <param name="authority">Host and optional port (compared lower-case).</param>
    /// <param name="path">The path, byte-exact, without the query.</param>
    /// <param name="query">The query without '?', or null.</param>
    /// <param name="body">The request body as captured (decoded).</param>
    /// <param name="headers">Request headers, read for the vary headers only.</param>
    public string Compute(string method, string authority, string path, string? query, ReadOnlySpan<byte> body, HeaderList? headers)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(authority);
        ArgumentNullException.ThrowIfNull(path);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AppendText(hash, (byte)'M', method.ToUpperInvariant());
        AppendText(hash, (byte)'A', authority.ToLowerInvariant());
        AppendText(hash, (byte)'P', path);
        AppendText(hash, (byte)'Q', NormaliseQuery(query));
        AppendBody(hash, body);
        foreach (var name in _varyHeaders)
        {
            AppendText(hash, (byte)'H', name);
            AppendText(hash, (byte)'V', JoinValues(headers, name));
        }

        Span<byte> digest = stackalloc byte[32];
        hash.GetHashAndReset(digest);
        return Convert.ToHexStringLower(digest);
    }

    /// <summary>
    /// The query as it enters the key: parameters (<c>name=value</c> as sent, not re-encoded)
    /// without the ignored names and empty segments, sorted ordinally, joined by '&amp;'.
    /// </summary>
    public string NormaliseQuery(string? query)
    {
        if (string.IsNullOrEmpty(query))
        {
            return "";
        }

        var parts = new List<string>();
        foreach (var range in query.AsSpan().Split('&'))
        {
            var part = query[range];
            if (part.Length == 0)
            {
                continue;
            }

            var eq = part.IndexOf('=', StringComparison.Ordinal);
            var name = eq < 0 ? part : part[..eq];
            if (!_ignoreQuery.Contains(name))
            {
                parts.Add(part);
            }
        }

        parts.Sort(StringComparer.Ordinal);
        return string.Join('&', parts);
    }

    /// <summary>
    /// The JSON canonical form of <paramref name="body"/> (UTF-8, keys sorted ordinally, ignored
    /// fields removed at any depth, no insignificant whitespace), or null when it is not JSON.
    /// </summary>
    public byte[]? CanonicalJson(ReadOnlySpan<byte> body)
    {
        if (!LooksLikeJson(body))
        {
            return null;
        }

        var rented = ArrayPool<byte>.Shared.Rent(body.Length);
        try
        {
            body.CopyTo(rented);
            using var document = JsonDocument.Parse(rented.AsMemory(0, body.Length), _documentOptions);
            var output = new ArrayBufferWriter<byte>(body.Length);
            using (var writer = new Utf8JsonWriter(output, _writerOptions))
            {
                WriteCanonical(writer, document.RootElement);
            }

            return output.WrittenSpan.ToArray();
        }
        catch (JsonException)
        {
            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private void AppendBody(IncrementalHash hash, ReadOnlySpan<byte> body)
    {
        var canonical = CanonicalJson(body);
        if (canonical is not null)
        {
            AppendBytes(hash, (byte)'J', canonical);
        }
        else
        {
            AppendBytes(hash, (byte)'B', body);
        }
    }

    private void WriteCanonical(Utf8JsonWriter writer, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var properties = new List<JsonProperty>();
                foreach (var property in element.EnumerateObject())
                {
                    if (!_ignoreFields.Contains(property.Name))
                    {
                        properties.Add(property);
                    }
                }

                // Stable, so duplicate names keep their relative order.
                var sorted = properties.OrderBy(p => p.Name, StringComparer.Ordinal);
                writer.WriteStartObject();
                foreach (var property in sorted)
                {
                    writer.WritePropertyName(property.Name);
                    WriteCanonical(writer, property.Value);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                {
                    WriteCanonical(writer, item);
                }

                writer.WriteEndArray();
                break;
            case JsonValueKind.String:
                writer.WriteStringValue(element.GetString());
                break;
            default:
                // Numbers, true, false, null: as written (1.0 and 1 stay different on purpose:
                // an API may well tell them apart).
                writer.WriteRawValue(element.GetRawText(), skipInputValidation: true);
                break;
        }
    }

    private static bool LooksLikeJson(ReadOnlySpan<byte> body)
    {
        var trimmed = body.TrimStart(" \t\r\n"u8);
        return !trimmed.IsEmpty && (trimmed[0] == (byte)'{' || trimmed[0] == (byte)'[');
    }

    private static string JoinValues(HeaderList? headers, string name)
    {
        if (headers is null)
        {
            return "";
        }

        string? single = null;
        StringBuilder? many = null;
        for (var i = 0; i < headers.Count; i++)
        {
            var (key, value) = headers[i];
            if (!string.Equals(key, name, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (single is null)
            {
                single = value.Trim();
            }
            else
            {
                many ??= new StringBuilder(single);
                many.Append(',').Append(value.Trim());
            }
        }

        return many?.ToString() ?? single ?? "";
    }

    private static void AppendText(IncrementalHash hash, byte tag, string text)
    {
        var max = Encoding.UTF8.GetMaxByteCount(text.Length);
        var rented = ArrayPool<byte>.Shared.Rent(max);
        try
        {
            var length = Encoding.UTF8.GetBytes(text, rented);
            AppendBytes(hash, tag, rented.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static void AppendBytes(IncrementalHash hash, byte tag, ReadOnlySpan<byte> bytes)
    {
        Span<byte> prefix = stackalloc byte[9];
        prefix[0] = tag;
        BinaryPrimitives.WriteInt64BigEndian(prefix[1..], bytes.Length);
        hash.AppendData(prefix);
        hash.AppendData(bytes);
    }
}
