using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ui;

/// <summary>One arrow of the sequence view: a call from one participant to another.</summary>
internal sealed record SequenceMessage(int From, int To, SpanSummary Span);

/// <summary>
/// The service-to-service calls of a session for the sequence view. An outbound exchange is a
/// call from its service to the service that received it (its inbound child) or, when that one
/// was not captured, to the host it called. An inbound exchange whose caller was captured is the
/// same call seen from the other side and is not drawn twice.
/// </summary>
internal sealed class SequenceDiagram
{
    /// <summary>The most arrows drawn; a longer session is cut, and says so.</summary>
    public const int MaxMessages = 300;

    private SequenceDiagram(List<string> participants, List<SequenceMessage> messages, bool cut)
    {
        Participants = participants;
        Messages = messages;
        Cut = cut;
    }

    /// <summary>Services and external hosts, in order of first appearance.</summary>
    public List<string> Participants { get; }

    /// <summary>Calls in time order.</summary>
    public List<SequenceMessage> Messages { get; }

    /// <summary>True when there were more than <see cref="MaxMessages"/> calls.</summary>
    public bool Cut { get; }

    public static SequenceDiagram Build(IReadOnlyList<SpanSummary> spans)
    {
        var byId = new Dictionary<string, SpanSummary>(StringComparer.Ordinal);
        var inboundChild = new Dictionary<string, SpanSummary>(StringComparer.Ordinal);
        foreach (var s in spans)
        {
            byId.TryAdd(s.TraceId + s.SpanId, s);
        }

        foreach (var s in spans)
        {
            if (s.IsExchange && IsInbound(s) && s.ParentSpanId is not null)
            {
                inboundChild.TryAdd(s.TraceId + s.ParentSpanId, s);
            }
        }

        var participants = new List<string>();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        int Of(string name)
        {
            if (!index.TryGetValue(name, out var i))
            {
                index[name] = i = participants.Count;
                participants.Add(name);
            }

            return i;
        }

        var messages = new List<SequenceMessage>();
        var cut = false;
        foreach (var s in spans)
        {
            if (!s.IsExchange)
            {
                continue;
            }

            string from, to;
            if (IsInbound(s))
            {
                var parent = s.ParentSpanId is null ? null : byId.GetValueOrDefault(s.TraceId + s.ParentSpanId);
                if (parent is { IsExchange: true } && !IsInbound(parent))
                {
                    continue;
                }

                from = parent?.ServiceName is { } caller && caller != s.ServiceName ? caller : "client";
                to = s.ServiceName;
            }
            else
            {
                from = s.ServiceName;
                to = inboundChild.TryGetValue(s.TraceId + s.SpanId, out var callee) ? callee.ServiceName : s.Authority ?? "upstream";
            }

            if (messages.Count == MaxMessages)
            {
                cut = true;
                break;
            }

            messages.Add(new SequenceMessage(Of(from), Of(to), s));
        }

        return new SequenceDiagram(participants, messages, cut);
    }

    private static bool IsInbound(SpanSummary s) =>
        string.Equals(s.Direction, "inbound", StringComparison.Ordinal) || (s.Direction is null && s.Kind == 2);
}
