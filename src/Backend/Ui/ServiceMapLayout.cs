using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ui;

/// <summary>Where each service of the map sits: columns by call depth from the services nobody calls, rows in name order.</summary>
internal static class ServiceMapLayout
{
    public const int ColumnWidth = 380;
    public const int RowHeight = 110;
    public const int NodeWidth = 170;
    public const int NodeHeight = 44;

    /// <summary>Height of an edge label's box, and the gap kept between boxes.</summary>
    public const double LabelHeight = 16;

    /// <summary>Width of an edge label: 12 px text, about 6.6 px a character, plus padding.</summary>
    public static double LabelWidth(string text) => (text.Length * 6.6) + 8;

    /// <summary>Places every service, including services with no edges (they sit in the first column).</summary>
    public static Dictionary<string, (double X, double Y)> Place(IEnumerable<string> allServices, IReadOnlyList<ServiceEdge> edges, out double width, out double height)
    {
        var services = new SortedSet<string>(allServices, StringComparer.Ordinal);
        foreach (var e in edges)
        {
            services.Add(e.Caller);
            services.Add(e.Callee);
        }

        // Longest-path layering, bounded by the service count so a call cycle cannot loop forever.
        var layer = services.ToDictionary(s => s, _ => 0, StringComparer.Ordinal);
        for (var round = 0; round < services.Count; round++)
        {
            var changed = false;
            foreach (var e in edges)
            {
                if (e.Caller != e.Callee && layer[e.Callee] < layer[e.Caller] + 1 && layer[e.Caller] + 1 < services.Count)
                {
                    layer[e.Callee] = layer[e.Caller] + 1;
                    changed = true;
                }
            }

            if (!changed)
            {
                break;
            }
        }

        // Within a column, services sit in the order of their callers' rows (barycentre), which keeps most edges from crossing.
        var positions = new Dictionary<string, (double, double)>(StringComparer.Ordinal);
        var rowOf = new Dictionary<string, double>(StringComparer.Ordinal);
        var rows = new Dictionary<int, int>();
        foreach (var column in services.GroupBy(s => layer[s]).OrderBy(g => g.Key))
        {
            var ordered = column
                .Select(s => (Name: s, Key: edges.Where(e => e.Callee == s && rowOf.ContainsKey(e.Caller)).Select(e => rowOf[e.Caller]).DefaultIfEmpty(double.MaxValue).Average()))
                .OrderBy(x => x.Key)
                .ThenBy(x => x.Name, StringComparer.Ordinal);
            foreach (var (name, _) in ordered)
            {
                var row = rows.GetValueOrDefault(column.Key);
                rows[column.Key] = row + 1;
                rowOf[name] = row;
                positions[name] = (40 + column.Key * ColumnWidth + NodeWidth / 2.0, 40 + row * RowHeight + NodeHeight / 2.0);
            }
        }

        width = 80 + (rows.Count == 0 ? 0 : (rows.Keys.Max() * ColumnWidth) + NodeWidth);
        height = 80 + (rows.Count == 0 ? 0 : ((rows.Values.Max() - 1) * RowHeight) + NodeHeight);
        return positions;
    }

    /// <summary>
    /// Moves edge labels (centre x, baseline y, width) down in steps until no two boxes overlap and no
    /// box covers a node; returns each label's baseline. Greedy in the given order, bounded in steps.
    /// </summary>
    public static double[] SeparateLabels(IReadOnlyList<(double X, double Y, double Width)> labels, IEnumerable<(double X, double Y)> nodes)
    {
        var taken = new List<(double Left, double Top, double Right, double Bottom)>();
        foreach (var (x, y) in nodes)
        {
            taken.Add((x - (NodeWidth / 2.0) - 2, y - (NodeHeight / 2.0) - 2, x + (NodeWidth / 2.0) + 2, y + (NodeHeight / 2.0) + 2));
        }

        var result = new double[labels.Count];
        for (int i = 0; i < labels.Count; i++)
        {
            var (x, y, w) = labels[i];
            var baseline = y;
            for (int step = 0; step < 200; step++)
            {
                var box = (x - (w / 2), baseline - LabelHeight + 4, x + (w / 2), baseline + 4);
                if (!taken.Exists(t => box.Item1 < t.Right && t.Left < box.Item3 && box.Item2 < t.Bottom && t.Top < box.Item4))
                {
                    break;
                }

                // Further down each time: the map grows downwards, never above its top edge.
                baseline = y + ((step + 1) * (LabelHeight + 2));
            }

            taken.Add((x - (w / 2), baseline - LabelHeight + 4, x + (w / 2), baseline + 4));
            result[i] = baseline;
        }

        return result;
    }
}
