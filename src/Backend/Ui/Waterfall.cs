using SpIstio.Backend.Api;

namespace SpIstio.Backend.Ui;

/// <summary>One waterfall row: the span and its nesting depth in display order.</summary>
internal readonly record struct WaterfallRow(WaterfallSpanDto Item, int Depth);

/// <summary>
/// Orders a trace's spans for the waterfall: each span directly under its parent (children in
/// start order), depth-first, in O(n) — the API's rows are in start order, where a late child of
/// an early span would land far from its parent.
/// </summary>
internal static class Waterfall
{
    public static List<WaterfallRow> Order(TraceViewDto view)
    {
        var spans = view.Spans;
        var byId = new Dictionary<string, int>(spans.Count, StringComparer.Ordinal);
        for (var i = 0; i < spans.Count; i++)
        {
            byId.TryAdd(spans[i].Span.SpanId, i);
        }

        var children = new Dictionary<int, List<int>>();
        var roots = new List<int>();
        for (var i = 0; i < spans.Count; i++)
        {
            var parent = spans[i].Span.ParentSpanId;
            if (parent is not null && byId.TryGetValue(parent, out var p) && p != i)
            {
                if (!children.TryGetValue(p, out var list))
                {
                    children[p] = list = [];
                }

                list.Add(i);
            }
            else
            {
                roots.Add(i);
            }
        }

        var rows = new List<WaterfallRow>(spans.Count);
        var visited = new bool[spans.Count];
        var stack = new Stack<(int Index, int Depth)>();
        void Walk(int root)
        {
            stack.Push((root, 0));
            while (stack.Count > 0)
            {
                var (index, depth) = stack.Pop();
                if (visited[index])
                {
                    continue;
                }

                visited[index] = true;
                rows.Add(new WaterfallRow(spans[index], depth));
                if (children.TryGetValue(index, out var list))
                {
                    // Pushed in reverse so the earliest child is shown first.
                    for (var c = list.Count - 1; c >= 0; c--)
                    {
                        stack.Push((list[c], depth + 1));
                    }
                }
            }
        }

        foreach (var root in roots)
        {
            Walk(root);
        }

        // Spans on a parent cycle have no root; they are still shown, at the top level.
        for (var i = 0; i < spans.Count; i++)
        {
            if (!visited[i])
            {
                Walk(i);
            }
        }

        return rows;
    }
}
