using System.Collections.Frozen;
using System.Text.RegularExpressions;
using SpIstio.Core.Capture;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Core.Rules;

/// <summary>
/// The capture decision for one request: exemption rules, framework prefetches, static files and
/// the <c>collectionRules</c> of the original plugin. Built once from <see cref="AgentOptions"/>
/// (every regex compiled there, anchored and non-backtracking through <see cref="AnchoredRegex"/>),
/// then evaluated per request without allocating.
/// </summary>
/// <remarks>
/// Order: exemptions, then prefetch, then static resources, then the direction's collection rules.
/// Exemptions come first because they protect the agent itself (its own OTLP exports must never be
/// captured, whatever a collection rule says). Empty collection rules capture everything.
/// </remarks>
public sealed class CaptureRules
{
    /// <summary>
    /// File extensions of static resources: scripts, style sheets, source maps, images, fonts and
    /// media. They are served from disk or a CDN, carry no business data, and a single page load
    /// fetches dozens of them, so capturing them would bury a session's API calls. Documents
    /// (.html) and data (.json, .xml) are deliberately absent: those are often the API itself.
    /// </summary>
    public static IReadOnlyCollection<string> StaticExtensions => _staticExtensions;

    private static readonly FrozenSet<string> _staticExtensions = FrozenSet.Create(
        StringComparer.OrdinalIgnoreCase,
        ".js", ".css", ".map",
        ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".webp", ".avif",
        ".woff", ".woff2", ".ttf", ".otf", ".eot",
        ".mp4", ".webm", ".mp3");

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> _staticExtensionLookup =
        _staticExtensions.GetAlternateLookup<ReadOnlySpan<char>>();

    private readonly Regex[] _serverPaths;
    private readonly ClientMatcher[] _clientRules;
    private readonly bool _clientHasIncludeRule;
    private readonly ExemptionMatcher[] _exemptions;
    private readonly bool _skipStaticResources;
    private readonly bool _skipPrefetch;

    private CaptureRules(
        Regex[] serverPaths,
        ClientMatcher[] clientRules,
        ExemptionMatcher[] exemptions,
        bool skipStaticResources,
        bool skipPrefetch)
    {
        _serverPaths = serverPaths;
        _clientRules = clientRules;
        _exemptions = exemptions;
        _skipStaticResources = skipStaticResources;
        _skipPrefetch = skipPrefetch;
        foreach (var rule in clientRules)
        {
            _clientHasIncludeRule |= !rule.Exclude;
        }
    }

    /// <summary>
    /// Compiles the rules of <paramref name="options"/>. Configuration validation reports bad
    /// regexes with their key beforehand; here an invalid one throws.
    /// </summary>
    /// <exception cref="ArgumentException">A pattern is not a valid regex for the non-backtracking engine.</exception>
    public static CaptureRules Create(AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var http = options.CollectionRules?.Http ?? new HttpCollectionRules();

        var serverPaths = new List<Regex>();
        foreach (var rule in http.Server ?? [])
        {
            serverPaths.Add(AnchoredRegex.Compile(rule.Path ?? ""));
        }

        var clientRules = new List<ClientMatcher>();
        foreach (var rule in http.Client ?? [])
        {
            // A blank host means "any host", the same as the documented default '.*': an anchored
            // empty pattern would otherwise match only an empty host, which no request has.
            var host = string.IsNullOrWhiteSpace(rule.Host) ? null : CompileHost(rule.Host);
            var methods = new List<string>();
            foreach (var method in rule.Methods ?? [])
            {
                if (!string.IsNullOrWhiteSpace(method))
                {
                    methods.Add(method.Trim());
                }
            }

            clientRules.Add(new ClientMatcher(host, CompileAll(rule.Paths, ignoreCase: false), [.. methods], rule.Exclude));
        }

        var exemptions = new List<ExemptionMatcher>();
        foreach (var rule in options.ExemptionRules ?? [])
        {
            exemptions.Add(new ExemptionMatcher(
                CompileAll(rule.HostPatterns, ignoreCase: true),
                CompileAll(rule.PathPatterns, ignoreCase: false)));
        }

        var capture = options.Capture ?? new CaptureOptions();
        return new CaptureRules(
            [.. serverPaths],
            [.. clientRules],
            [.. exemptions],
            capture.SkipStaticResources,
            capture.SkipPrefetch);
    }

    /// <summary>
    /// Decides whether one request is captured. <paramref name="host"/> may carry a port
    /// (<c>api.example.com:8443</c>, <c>[::1]:80</c>); <paramref name="path"/> may carry a query
    /// string, which no rule sees (rules are written against paths, as in the original plugin).
    /// </summary>
    public CaptureDecision Evaluate(
        TrafficDirection direction,
        string method,
        string host,
        string path,
        HeaderList requestHeaders)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(requestHeaders);

        var hostOnly = HostName.WithoutPort(host);
        var pathOnly = PathWithoutQuery(path);

        if (IsExempt(hostOnly, pathOnly))
        {
            return CaptureDecision.Exempt;
        }

        if (_skipPrefetch && IsPrefetch(requestHeaders))
        {
            return CaptureDecision.Prefetch;
        }

        if (_skipStaticResources && IsStaticPath(pathOnly))
        {
            return CaptureDecision.StaticResource;
        }

        return direction == TrafficDirection.Inbound
            ? EvaluateServer(pathOnly)
            : EvaluateClient(method, hostOnly, pathOnly);
    }

    /// <summary>
    /// True for the content types of static resources (<c>image/*</c>, <c>font/*</c>,
    /// <c>video/*</c>, <c>audio/*</c>, <c>text/css</c>, <c>application/javascript</c>,
    /// <c>text/javascript</c>, <c>application/wasm</c>), parameters ignored. Used on the response
    /// side, where a path without an extension (<c>/avatar/42</c>) still turns out to be an image.
    /// </summary>
    public static bool IsStaticContentType(string? contentType)
    {
        var media = MediaType.Parse(contentType, out _);
        return media.StartsWith("image/", StringComparison.OrdinalIgnoreCase)
            || media.StartsWith("font/", StringComparison.OrdinalIgnoreCase)
            || media.StartsWith("video/", StringComparison.OrdinalIgnoreCase)
            || media.StartsWith("audio/", StringComparison.OrdinalIgnoreCase)
            || media.Equals("text/css", StringComparison.OrdinalIgnoreCase)
            || media.Equals("application/javascript", StringComparison.OrdinalIgnoreCase)
            || media.Equals("text/javascript", StringComparison.OrdinalIgnoreCase)
            || media.Equals("application/wasm", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>True when the last path segment ends in one of <see cref="StaticExtensions"/> (case-insensitive).</summary>
    public static bool IsStaticPath(ReadOnlySpan<char> path)
    {
        var lastSlash = path.LastIndexOf('/');
        var segment = path[(lastSlash + 1)..];
        var dot = segment.LastIndexOf('.');
        return dot >= 0 && _staticExtensionLookup.Contains(segment[dot..]);
    }

    /// <summary>
    /// True for speculative requests a browser or framework makes before the user asks for the
    /// page: Next.js router prefetches (<c>Next-Router-Prefetch</c>) and React Server Component
    /// payload fetches (<c>RSC: 1</c>, which Next.js also sends on client-side navigations),
    /// <c>Purpose: prefetch</c> / <c>Sec-Purpose: prefetch</c> (Chrome, Safari, and Firefox's
    /// speculation rules) and Firefox's older <c>X-Moz: prefetch</c>. They duplicate what the real
    /// navigation captures, or are never shown to the user.
    /// </summary>
    public static bool IsPrefetch(HeaderList requestHeaders)
    {
        ArgumentNullException.ThrowIfNull(requestHeaders);
        for (var i = 0; i < requestHeaders.Count; i++)
        {
            var (name, value) = requestHeaders[i];
            if (string.Equals(name, "next-router-prefetch", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }

            if (string.Equals(name, "rsc", StringComparison.OrdinalIgnoreCase))
            {
                if (value.AsSpan().Trim().SequenceEqual("1"))
                {
                    return true;
                }
            }
            else if (string.Equals(name, "purpose", StringComparison.OrdinalIgnoreCase)
                || string.Equals(name, "sec-purpose", StringComparison.OrdinalIgnoreCase)
                || string.Equals(name, "x-moz", StringComparison.OrdinalIgnoreCase))
            {
                if (FirstTokenIsPrefetch(value))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static bool FirstTokenIsPrefetch(string value)
    {
        // Sec-Purpose is a structured-field list: "prefetch", "prefetch;prerender",
        // "prefetch;anonymous-client-ip". Only the item before the parameters matters.
        var span = value.AsSpan();
        var end = span.IndexOfAny(';', ',');
        if (end >= 0)
        {
            span = span[..end];
        }

        return span.Trim().Equals("prefetch", StringComparison.OrdinalIgnoreCase);
    }

    private static ReadOnlySpan<char> PathWithoutQuery(string path)
    {
        var span = path.AsSpan();
        var end = span.IndexOfAny('?', '#');
        return end < 0 ? span : span[..end];
    }

    private static Regex CompileHost(string pattern) =>
        // Host names are case-insensitive (RFC 3986 §3.2.2), so API.Example.com matches a rule
        // written in lower case.
        AnchoredRegex.Compile(pattern, ignoreCase: true);

    // One anchored alternation of a rule's patterns (each in its own group, so an inline option
    // stays within its pattern): matching any of them is one pass of one automaton over the input
    // instead of one a pattern (the default exemptions' three paths were ~1 % of the capture
    // proxy's CPU at 1 KiB, issue 13). Validation compiles each pattern alone, to name a bad one;
    // patterns the engine takes one by one but not together (too many for one automaton) stay apart.
    private static Regex[] CompileAll(List<string>? patterns, bool ignoreCase)
    {
        if (patterns is null || patterns.Count == 0)
        {
            return [];
        }

        var alternatives = new string[patterns.Count];
        for (var i = 0; i < patterns.Count; i++)
        {
            alternatives[i] = string.Concat("(?:", patterns[i] ?? "", ")");
        }

        if (AnchoredRegex.TryCompile(string.Join('|', alternatives), out var combined, out _, ignoreCase))
        {
            return [combined!];
        }

        var compiled = new Regex[patterns.Count];
        for (var i = 0; i < patterns.Count; i++)
        {
            compiled[i] = AnchoredRegex.Compile(patterns[i] ?? "", ignoreCase);
        }

        return compiled;
    }

    private static bool AnyMatchOrEmpty(Regex[] patterns, ReadOnlySpan<char> input)
    {
        if (patterns.Length == 0)
        {
            return true;
        }

        foreach (var pattern in patterns)
        {
            if (pattern.IsMatch(input))
            {
                return true;
            }
        }

        return false;
    }

    private bool IsExempt(ReadOnlySpan<char> host, ReadOnlySpan<char> path)
    {
        foreach (var rule in _exemptions)
        {
            if (AnyMatchOrEmpty(rule.Hosts, host) && AnyMatchOrEmpty(rule.Paths, path))
            {
                return true;
            }
        }

        return false;
    }

    private CaptureDecision EvaluateServer(ReadOnlySpan<char> path) =>
        AnyMatchOrEmpty(_serverPaths, path) ? CaptureDecision.Capture : CaptureDecision.NotMatched;

    private CaptureDecision EvaluateClient(string method, ReadOnlySpan<char> host, ReadOnlySpan<char> path)
    {
        foreach (var rule in _clientRules)
        {
            if (rule.Matches(method, host, path))
            {
                return rule.Exclude ? CaptureDecision.Excluded : CaptureDecision.Capture;
            }
        }

        // With at least one capturing rule the list is an allow-list; a list of exclude rules
        // alone means "everything except these" (and an empty list captures everything).
        return _clientHasIncludeRule ? CaptureDecision.NotMatched : CaptureDecision.Capture;
    }

    private sealed class ClientMatcher(Regex? host, Regex[] paths, string[] methods, bool exclude)
    {
        public bool Exclude { get; } = exclude;

        public bool Matches(string method, ReadOnlySpan<char> requestHost, ReadOnlySpan<char> requestPath)
        {
            if (host is not null && !host.IsMatch(requestHost))
            {
                return false;
            }

            if (!AnyMatchOrEmpty(paths, requestPath))
            {
                return false;
            }

            if (methods.Length == 0)
            {
                return true;
            }

            foreach (var allowed in methods)
            {
                if (string.Equals(allowed, method, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }

            return false;
        }
    }

    private sealed class ExemptionMatcher(Regex[] hosts, Regex[] paths)
    {
        public Regex[] Hosts { get; } = hosts;

        public Regex[] Paths { get; } = paths;
    }
}
