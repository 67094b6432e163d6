namespace SpIstio.Core.Configuration;

/// <summary>
/// The layered, flat key space every source writes into (file, then environment, then
/// <c>--set</c>), in the style of Microsoft.Extensions.Configuration: a key is its path of
/// segments (<c>collectionRules:http:client:0:host</c>), matched case-insensitively.
/// </summary>
internal sealed class ConfigLayers
{
    private readonly List<ConfigEntry> _entries = [];

    /// <summary>The entries in the order they were set, after later layers replaced earlier ones.</summary>
    public IReadOnlyList<ConfigEntry> Entries => _entries;

    /// <summary>
    /// Sets one key. A value set at a key replaces whatever an earlier layer put at or under it,
    /// and whatever scalar an earlier layer put at one of its ancestors: an environment variable
    /// <c>SP_EXEMPTIONRULES=</c> clears the file's rules rather than mixing with them, and a
    /// <c>--set collectionRules.http.client.0.host=…</c> edits the file's first rule in place.
    /// </summary>
    public void Set(IReadOnlyList<string> segments, string? value, string source)
    {
        _entries.RemoveAll(e => IsPrefix(segments, e.Segments) || (IsPrefix(e.Segments, segments) && e.Segments.Count < segments.Count));
        _entries.Add(new ConfigEntry(segments, value, source));
    }

    /// <summary>Builds the tree the binder walks.</summary>
    public ConfigNode BuildTree()
    {
        var root = new ConfigNode("");
        foreach (var entry in _entries)
        {
            var node = root;
            foreach (var segment in entry.Segments)
            {
                node = node.GetOrAddChild(segment);
            }

            node.HasValue = true;
            node.Value = entry.Value;
            node.Source = entry.Source;
        }

        return root;
    }

    private static bool IsPrefix(IReadOnlyList<string> prefix, IReadOnlyList<string> path)
    {
        if (prefix.Count > path.Count)
        {
            return false;
        }

        for (var i = 0; i < prefix.Count; i++)
        {
            if (!string.Equals(prefix[i], path[i], StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>One key set by one source. A null value is YAML/JSON null or an empty sequence or mapping.</summary>
internal sealed record ConfigEntry(IReadOnlyList<string> Segments, string? Value, string Source);

/// <summary>A node of the configuration tree: a scalar (<see cref="HasValue"/>), or a mapping or sequence (children).</summary>
internal sealed class ConfigNode(string name)
{
    private readonly Dictionary<string, ConfigNode> _children = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<ConfigNode> _ordered = [];

    /// <summary>The key segment as the user spelled it.</summary>
    public string Name { get; } = name;

    /// <summary>True when a source set a value (possibly null) at exactly this key.</summary>
    public bool HasValue { get; set; }

    /// <summary>The value set here; null for YAML null and for an empty sequence or mapping.</summary>
    public string? Value { get; set; }

    /// <summary>Where the value came from, for messages.</summary>
    public string? Source { get; set; }

    /// <summary>Children in the order first set.</summary>
    public IReadOnlyList<ConfigNode> Children => _ordered;

    /// <summary>The child of that name (case-insensitive), or null.</summary>
    public ConfigNode? Child(string name) => _children.GetValueOrDefault(name);

    /// <summary>The source of this node's value or, for a collection, of its first leaf.</summary>
    public string? FirstSource() => Source ?? (_ordered.Count > 0 ? _ordered[0].FirstSource() : null);

    /// <summary>Finds or creates a child.</summary>
    public ConfigNode GetOrAddChild(string name)
    {
        if (!_children.TryGetValue(name, out var child))
        {
            child = new ConfigNode(name);
            _children.Add(name, child);
            _ordered.Add(child);
        }

        return child;
    }
}
