namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// What decoding captured (untrusted) protobuf bytes may cost: a nesting depth and a number of
/// fields, shared by every message one viewer decodes. A few bytes can encode many tiny fields,
/// each a JSON node of its own, so the field count, not the byte count, bounds the memory a view
/// takes; a decode that would pass either limit gives up (the viewer then shows the bytes).
/// </summary>
public sealed class ProtobufDecodeBudget
{
    private long _fieldsLeft;

    /// <summary>Creates a budget.</summary>
    /// <param name="maxDepth">Nested messages decoded this deep; deeper is a failed decode.</param>
    /// <param name="maxFields">Fields (and packed elements) decoded in all, over every message that shares the budget.</param>
    public ProtobufDecodeBudget(int maxDepth, long maxFields)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxDepth);
        ArgumentOutOfRangeException.ThrowIfNegative(maxFields);
        MaxDepth = maxDepth;
        MaxFields = maxFields;
        _fieldsLeft = maxFields;
    }

    /// <summary>Nested messages are decoded this deep.</summary>
    public int MaxDepth { get; }

    /// <summary>Fields decoded in all.</summary>
    public long MaxFields { get; }

    /// <summary>True once a decode was refused because the fields ran out.</summary>
    public bool Exhausted { get; private set; }

    /// <summary>Fields still allowed.</summary>
    public long FieldsLeft => _fieldsLeft;

    /// <summary>An unbounded budget for trusted input (tests, tools).</summary>
    internal static ProtobufDecodeBudget Unbounded() => new(int.MaxValue, long.MaxValue);

    /// <summary>Takes one field from the budget; false (and <see cref="Exhausted"/>) when none is left.</summary>
    internal bool TrySpend()
    {
        if (_fieldsLeft <= 0)
        {
            Exhausted = true;
            return false;
        }

        _fieldsLeft--;
        return true;
    }
}
