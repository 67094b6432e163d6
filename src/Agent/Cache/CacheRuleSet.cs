using System.Text.RegularExpressions;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Replay;
using SpIstio.Core.Rules;

namespace SpIstio.Agent.Cache;

/// <summary>
/// The compiled <c>cache.rules</c>: first match wins, an <c>exclude</c> match means "never cache",
/// no match means "not cached" (the cache is opt-in). Regexes are anchored and non-backtracking,
/// as for the collection rules.
/// </summary>
public sealed class CacheRuleSet
{
    private readonly CompiledCacheRule[] _rules;

    private CacheRuleSet(CompiledCacheRule[] rules, CacheMode mode)
    {
        _rules = rules;
        Mode = mode;
    }

    /// <summary><c>cache.mode</c>: the mode of rules without their own, and (replay_only) of requests no rule covers.</summary>
    public CacheMode Mode { get; }

    /// <summary>True when at least one rule can cache something.</summary>
    public bool IsEmpty
    {
        get
        {
            foreach (var rule in _rules)
            {
                if (!rule.Exclude)
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>Compiles the rules of <paramref name="options"/> (validated beforehand; an invalid regex throws here).</summary>
    public static CacheRuleSet Create(CacheOptions? options)
    {
        var mode = options?.Mode ?? CacheMode.Replay;
        var rules = new List<CompiledCacheRule>();
        foreach (var rule in options?.Rules ?? [])
        {
            rules.Add(new CompiledCacheRule(rule, rule.Mode ?? mode));
        }

        return new CacheRuleSet([.. rules], mode);
    }

    /// <summary>The rule that caches this request, or null (no rule, or an exclude rule matched first).</summary>
    public CompiledCacheRule? Match(string method, string authority, string path) => Match(method, authority, path, out _);

    /// <summary>The rule that caches this request, or null; <paramref name="excluded"/> tells an exclude rule's match from no match.</summary>
    public CompiledCacheRule? Match(string method, string authority, string path, out bool excluded)
    {
        var host = HostName.WithoutPort(authority);
        foreach (var rule in _rules)
        {
            if (rule.Matches(method, host, path))
            {
                excluded = rule.Exclude;
                return rule.Exclude ? null : rule;
            }
        }

        excluded = false;
        return null;
    }
}

/// <summary>One compiled <c>cache.rules[]</c> entry and its key function.</summary>
public sealed class CompiledCacheRule
{
    private readonly Regex? _host;
    private readonly Regex[] _paths;
    private readonly string[] _methods;
    private readonly int[] _statuses;

    internal CompiledCacheRule(CacheRule rule, CacheMode mode)
    {
        Mode = mode;
        _host = string.IsNullOrWhiteSpace(rule.Host) ? null : AnchoredRegex.Compile(rule.Host, ignoreCase: true);
        _paths = [.. (rule.Paths ?? []).Select(p => AnchoredRegex.Compile(p))];
        _methods = [.. (rule.Methods ?? []).Where(m => !string.IsNullOrWhiteSpace(m)).Select(m => m.Trim())];
        _statuses = [.. rule.Statuses ?? []];
        Exclude = rule.Exclude;
        Force = rule.Force;
        RemoteLookup = rule.RemoteLookup;
        Key = new ReplayKey(rule.IgnoreQueryParams ?? [], rule.IgnoreBodyFields ?? [], rule.VaryHeaders ?? []);
    }

    /// <summary>The rule's mode (its own, else <c>cache.mode</c>).</summary>
    public CacheMode Mode { get; }

    /// <summary>A match means: never cache.</summary>
    public bool Exclude { get; }

    /// <summary>Store even responses marked <c>Cache-Control: no-store</c> or <c>private</c>.</summary>
    public bool Force { get; }

    /// <summary>Ask the backend on a local miss.</summary>
    public bool RemoteLookup { get; }

    /// <summary>The rule's key function (its ignored parameters, fields and vary headers).</summary>
    public ReplayKey Key { get; }

    /// <summary>True when a response with <paramref name="status"/> may be stored (default: 2xx).</summary>
    public bool IsCacheableStatus(int status)
    {
        if (_statuses.Length == 0)
        {
            return status is >= 200 and < 300;
        }

        foreach (var allowed in _statuses)
        {
            if (allowed == status)
            {
                return true;
            }
        }

        return false;
    }

    internal bool Matches(string method, ReadOnlySpan<char> host, ReadOnlySpan<char> path)
    {
        if (_host is not null && !_host.IsMatch(host))
        {
            return false;
        }

        if (_paths.Length > 0)
        {
            var any = false;
            foreach (var pattern in _paths)
            {
                if (pattern.IsMatch(path))
                {
                    any = true;
                    break;
                }
            }

            if (!any)
            {
                return false;
            }
        }

        if (_methods.Length == 0)
        {
            return true;
        }

        foreach (var allowed in _methods)
        {
            if (string.Equals(allowed, method, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
