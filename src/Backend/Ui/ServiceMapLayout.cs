using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ui;

/// <summary>Where each service of the map sits: columns by call depth from the services nobody calls, rows in name order.</summary>
internal static class ServiceMapLayout
{
    public const int ColumnWidth = 260;
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

        var positions = new Dictionary<string, (double, double)>(StringComparer.Ordinal);
        var rows = new Dictionary<int, int>();
        foreach (var s in services)
        {
            var column = layer[s];
            var row = rows.GetValueOrDefault(column);
            rows[column] = row + 1;
            positions[s] = (40 + column * ColumnWidth + NodeWidth / 2.0, 40 + row * RowHeight + NodeHeight / 2.0);
        }

        width = 80 + (rows.Count == 0 ? 0 : (rows.Keys.Max() * ColumnWidth) + NodeWidth);
        height = 80 + (rows.Count == 0 ? 0 : ((rows.Values.Max() - 1) * RowHeight) + NodeHeight);
        return positions;
    }
}
