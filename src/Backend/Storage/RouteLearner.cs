namespace SpIstio.Backend.Storage;

/// <summary>
/// Learns route templates from the paths a service has served, as APM products do: at one position
/// under a common prefix (same service and method), more than <see cref="MaxLiteralValues"/> distinct
/// segments mean the position is a parameter, whatever the ids look like (<c>SP123-XK9</c>, <c>ord-abc</c>,
/// slugs), so <c>/flights/SP1-A/holds</c>, <c>/flights/SP2-B/holds</c>, … become <c>/flights/{id}/holds</c>.
/// Paths an instrumentation already templated (<c>http.route</c>, <see cref="RouteTemplate"/>) keep their
/// placeholders, and the ids below a learned parameter are merged so deeper positions are learned too.
/// A frequent word-like segment beside the ids (<c>/flights/search</c>) stays a literal route.
/// </summary>
internal sealed class RouteLearner
{
    /// <summary>Distinct values at one position beyond which it is a parameter (ten literal siblings are a real API's size; more are ids).</summary>
    public const int MaxLiteralValues = 10;

    private readonly Dictionary<string, Node> _scopes = new(StringComparer.Ordinal);
    private bool _learned;

    /// <summary>Records one served request of <paramref name="route"/> in <paramref name="scope"/> (service and method).</summary>
    public void Observe(string scope, string route)
    {
        if (!_scopes.TryGetValue(scope, out var node))
        {
            _scopes[scope] = node = new Node();
        }

        node.Count++;
        foreach (var range in route.AsSpan().Split('/'))
        {
            var segment = route[range];
            if (!node.Children.TryGetValue(segment, out var child))
            {
                node.Children[segment] = child = new Node();
            }

            child.Count++;
            node = child;
        }
    }

    /// <summary>The learned template of an observed <paramref name="route"/>.</summary>
    public string Template(string scope, string route)
    {
        if (!_learned)
        {
            foreach (var root in _scopes.Values)
            {
                root.Learn();
            }

            _learned = true;
        }

        if (!_scopes.TryGetValue(scope, out var node))
        {
            return route;
        }

        var builder = new System.Text.StringBuilder(route.Length);
        bool first = true;
        foreach (var range in route.AsSpan().Split('/'))
        {
            var segment = route[range];
            if (!first)
            {
                builder.Append('/');
            }

            first = false;
            if (node is not null && node.Children.TryGetValue(segment, out var exact))
            {
                builder.Append(segment);
                node = exact;
            }
            else if (node?.Parameter is { } parameter)
            {
                builder.Append(parameter);
                node = node.Children[parameter];
            }
            else
            {
                builder.Append(segment);
                node = null;
            }
        }

        return builder.ToString();
    }

    private sealed class Node
    {
        public long Count { get; set; }

        public Dictionary<string, Node> Children { get; } = new(StringComparer.Ordinal);

        /// <summary>The placeholder child's name once learned (<c>{id}</c>, or the instrumentation's own <c>{orderId}</c>).</summary>
        public string? Parameter { get; private set; }

        public void Learn()
        {
            if (Children.Count > MaxLiteralValues)
            {
                string name = RouteTemplate.IdPlaceholder;
                foreach (var key in Children.Keys)
                {
                    if (RouteTemplate.IsPlaceholder(key))
                    {
                        name = key;
                        break;
                    }
                }

                var merged = new Node();
                foreach (var (key, child) in Children.ToList())
                {
                    if (!string.Equals(key, name, StringComparison.Ordinal) && IsFrequentWord(key, child.Count))
                    {
                        continue;
                    }

                    merged.Absorb(child);
                    Children.Remove(key);
                }

                Children[name] = merged;
                Parameter = name;
            }

            foreach (var child in Children.Values)
            {
                child.Learn();
            }
        }

        private void Absorb(Node other)
        {
            Count += other.Count;
            foreach (var (key, child) in other.Children)
            {
                if (Children.TryGetValue(key, out var mine))
                {
                    mine.Absorb(child);
                }
                else
                {
                    Children[key] = child;
                }
            }
        }

        // A resource name beside the ids: letters only, and a real share of the traffic.
        private bool IsFrequentWord(string segment, long count) =>
            segment.Length > 0
            && !segment.AsSpan().ContainsAnyExcept(WordChars)
            && count >= Math.Max(2, Count / 20);
    }

    private static readonly System.Buffers.SearchValues<char> WordChars =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyz_-");
}
