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

        // Longest-path layering over the calls that close no cycle (a call back up a chain — found by a
        // depth-first walk — is drawn as a back edge instead of pushing every service of
        // the cycle one column further each round); bounded by the service count all the same.
        var forward = ForwardEdges(services, edges);
        var layer = services.ToDictionary(s => s, _ => 0, StringComparer.Ordinal);
        for (var round = 0; round < services.Count; round++)
        {
            var changed = false;
            foreach (var e in forward)
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

    /// <summary>The edges that close no cycle: a depth-first walk (entry services first, then by name) drops a call to a service still on the walk's path.</summary>
    private static List<ServiceEdge> ForwardEdges(SortedSet<string> services, IReadOnlyList<ServiceEdge> edges)
    {
        var outgoing = edges.Where(e => e.Caller != e.Callee).GroupBy(e => e.Caller, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.OrderBy(e => e.Callee, StringComparer.Ordinal).ToList(), StringComparer.Ordinal);
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 1: on the path, 2: done
        var forward = new List<ServiceEdge>();
        // Entry services (nobody calls them) first, so a cycle is broken at the call back to where traffic comes in.
        var called = edges.Where(e => e.Caller != e.Callee).Select(e => e.Callee).ToHashSet(StringComparer.Ordinal);
        foreach (var root in services.OrderBy(s => called.Contains(s) ? 1 : 0).ThenBy(s => s, StringComparer.Ordinal))
        {
            if (state.ContainsKey(root))
            {
                continue;
            }

            // Iterative, so a long call chain cannot overflow the stack.
            var stack = new Stack<(string Node, int Next)>();
            stack.Push((root, 0));
            state[root] = 1;
            while (stack.Count > 0)
            {
                var (node, next) = stack.Pop();
                var calls = outgoing.GetValueOrDefault(node);
                if (calls is null || next >= calls.Count)
                {
                    state[node] = 2;
                    continue;
                }

                stack.Push((node, next + 1));
                var edge = calls[next];
                switch (state.GetValueOrDefault(edge.Callee))
                {
                    case 0:
                        forward.Add(edge);
                        state[edge.Callee] = 1;
                        stack.Push((edge.Callee, 0));
                        break;
                    case 2:
                        forward.Add(edge);
                        break;
                }
            }
        }

        return forward;
    }

    /// <summary>Where a column's node boxes start (left edge) for a node centred at <paramref name="x"/>.</summary>
    private static int ColumnOf(double x) => (int)Math.Round((x - 40 - (NodeWidth / 2.0)) / ColumnWidth);

    private static double ColumnLeft(int column) => 40 + (column * ColumnWidth);

    private static double ColumnRight(int column) => ColumnLeft(column) + NodeWidth;

    /// <summary>
    /// The path of every edge, drawn so that none runs through a node: nodes sit in columns and the
    /// space between columns is empty, so an edge to the next column is one curve across that gap;
    /// an edge that skips columns crosses each column in between along a lane between two rows (or
    /// above or below them); an edge back to the same or an earlier column leaves through the gap
    /// right of its caller, runs below every node and comes up the gap left of its callee; a call to
    /// itself is a loop in the gap on the node's right. Each route has a label anchor on it.
    /// </summary>
    public static List<EdgeRoute> Route(IReadOnlyList<ServiceEdge> edges, IReadOnlyDictionary<string, (double X, double Y)> positions, out double bottom)
    {
        ArgumentNullException.ThrowIfNull(edges);
        ArgumentNullException.ThrowIfNull(positions);
        var rowsOf = positions.Values.GroupBy(p => ColumnOf(p.X)).ToDictionary(g => g.Key, g => g.Select(p => p.Y).Order().ToList());
        var lowest = positions.Count == 0 ? 0 : positions.Values.Max(p => p.Y) + (NodeHeight / 2.0);
        var gap = (RowHeight - NodeHeight) / 2.0;
        var routes = new List<EdgeRoute>(edges.Count);
        var back = 0;
        bottom = lowest;
        foreach (var e in edges)
        {
            var (x1, y1) = positions[e.Caller];
            var (x2, y2) = positions[e.Callee];
            int from = ColumnOf(x1), to = ColumnOf(x2);
            var sx = ColumnRight(from);
            var ex = ColumnLeft(to);
            var d = new System.Text.StringBuilder("M").Append(Css(sx)).Append(' ').Append(Css(y1));
            if (e.Caller == e.Callee)
            {
                d.Clear().Append("M").Append(Css(sx)).Append(' ').Append(Css(y1 - 10))
                    .Append(" C").Append(Css(sx + 40)).Append(' ').Append(Css(y1 - 36)).Append(' ').Append(Css(sx + 40)).Append(' ').Append(Css(y1 + 36))
                    .Append(' ').Append(Css(sx + 1)).Append(' ').Append(Css(y1 + 10));
                routes.Add(new EdgeRoute(d.ToString(), sx + 24, y1 - 30));
            }
            else if (to > from)
            {
                double px = sx, py = y1, labelX = (sx + ex) / 2, labelY = y1 + ((y2 - y1) * 0.5) - 6;
                for (var column = from + 1; column < to; column++)
                {
                    // The lane of this column nearest the straight line: above row 0, between two rows, or below the last.
                    var want = y1 + ((y2 - y1) * (column - from) / (to - from));
                    var rows = rowsOf.GetValueOrDefault(column) ?? [];
                    var lanes = rows.Count == 0 ? [want] : rows.Select(y => y - (NodeHeight / 2.0) - gap).Append(rows[^1] + (NodeHeight / 2.0) + gap).ToList();
                    var lane = lanes.MinBy(l => Math.Abs(l - want));
                    var left = ColumnLeft(column);
                    Curve(d, px, py, left, lane);
                    d.Append(" L").Append(Css(ColumnRight(column))).Append(' ').Append(Css(lane));
                    if (column == from + 1)
                    {
                        (labelX, labelY) = ((left + ColumnRight(column)) / 2, lane - 4);
                    }

                    (px, py) = (ColumnRight(column), lane);
                }

                Curve(d, px, py, ex, y2);
                routes.Add(new EdgeRoute(d.ToString(), labelX, labelY));
            }
            else
            {
                // Back to an earlier column (a call cycle): around, below everything.
                var offset = 14 + ((back % 4) * 6);
                var below = lowest + 24 + (back * 12);
                var right = sx + offset;
                var left = ex - offset;
                d.Append(" L").Append(Css(right)).Append(' ').Append(Css(y1))
                    .Append(" L").Append(Css(right)).Append(' ').Append(Css(below))
                    .Append(" L").Append(Css(left)).Append(' ').Append(Css(below))
                    .Append(" L").Append(Css(left)).Append(' ').Append(Css(y2))
                    .Append(" L").Append(Css(ex)).Append(' ').Append(Css(y2));
                routes.Add(new EdgeRoute(d.ToString(), (right + left) / 2, below - 4));
                bottom = Math.Max(bottom, below);
                back++;
            }
        }

        return routes;
    }

    private static void Curve(System.Text.StringBuilder d, double x1, double y1, double x2, double y2)
    {
        // Control points on the gap's middle line: the curve never leaves the gap between x1 and x2.
        var mid = (x1 + x2) / 2;
        d.Append(" C").Append(Css(mid)).Append(' ').Append(Css(y1)).Append(' ').Append(Css(mid)).Append(' ').Append(Css(y2))
            .Append(' ').Append(Css(x2)).Append(' ').Append(Css(y2));
    }

    private static string Css(double value) => Format.Css(value);

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

/// <summary>One edge's drawing: SVG path data and where its label sits (centre x, baseline y).</summary>
internal sealed record EdgeRoute(string Path, double LabelX, double LabelY);
