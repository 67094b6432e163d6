using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ui;

/// <summary>Where each service of the map sits: columns by call depth from the services nobody calls, rows in name order.</summary>
internal static class ServiceMapLayout
{
    public const int ColumnWidth = 380;
    public const int RowHeight = 110;
    public const int NodeWidth = 170;
    public const int NodeHeight = 44;

    public static Dictionary<string, (double X, double Y)> Place(IReadOnlyList<ServiceEdge> edges, out double width, out double height)
    {
        var services = new SortedSet<string>(StringComparer.Ordinal);
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
}
