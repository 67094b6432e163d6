using System.Buffers;

namespace SpIstio.Core.Redaction;

/// <summary>
/// Rewrites a byte span by replacing ranges in increasing order, copying everything between them
/// untouched. Allocates nothing until the first replacement, so a body with nothing to redact
/// costs no copy.
/// </summary>
internal ref struct Splicer
{
    private readonly ReadOnlySpan<byte> _source;
    private byte[]? _output;
    private int _written;
    private int _copied;

    public Splicer(ReadOnlySpan<byte> source)
    {
        _source = source;
    }

    /// <summary>Replaces <c>source[start..end]</c> with <paramref name="replacement"/>.</summary>
    public void Replace(int start, int end, scoped ReadOnlySpan<byte> replacement)
    {
        Append(_source[_copied..start]);
        Append(replacement);
        _copied = end;
    }

    /// <summary>Replaces <c>source[start..end]</c> with <paramref name="replacement"/> in double quotes.</summary>
    public void ReplaceQuoted(int start, int end, scoped ReadOnlySpan<byte> replacement)
    {
        Append(_source[_copied..start]);
        Append("\""u8);
        Append(replacement);
        Append("\""u8);
        _copied = end;
    }

    /// <summary>The rewritten bytes, or null when nothing was replaced. Returns the pooled buffer.</summary>
    public byte[]? Finish()
    {
        if (_output is null)
        {
            return null;
        }

        Append(_source[_copied..]);
        var result = _output.AsSpan(0, _written).ToArray();
        Release();
        return result;
    }

    /// <summary>Drops any output (the caller falls back to another strategy).</summary>
    public void Release()
    {
        if (_output is not null)
        {
            ArrayPool<byte>.Shared.Return(_output);
            _output = null;
        }
    }

    private void Append(scoped ReadOnlySpan<byte> data)
    {
        if (_output is null)
        {
            _output = ArrayPool<byte>.Shared.Rent(Math.Max(_source.Length + 64, data.Length));
        }
        else if (_written + data.Length > _output.Length)
        {
            var next = ArrayPool<byte>.Shared.Rent(Math.Max(_output.Length * 2, _written + data.Length));
            _output.AsSpan(0, _written).CopyTo(next);
            ArrayPool<byte>.Shared.Return(_output);
            _output = next;
        }

        data.CopyTo(_output.AsSpan(_written));
        _written += data.Length;
    }
}
