using System.Net;
using SpIstio.Core.Otlp;

namespace SpIstio.Agent.Export;

/// <summary>
/// An encoded export request sent from where its bytes are: the batch array's pieces and, in their
/// gaps, the large bodies from the exchanges' own arrays (<see cref="DeferredBytes"/>). The backend
/// gets the same bytes as from the whole array; the batch skips the body's copy into it.
/// </summary>
internal sealed class GatheredContent : HttpContent
{
    private readonly ArraySegment<byte> _request;
    private readonly DeferredBytes _deferred;

    /// <summary>The request encoded into <paramref name="request"/> with <paramref name="deferred"/>'s gaps (offsets in the same array).</summary>
    public GatheredContent(ArraySegment<byte> request, DeferredBytes deferred)
    {
        _request = request;
        _deferred = deferred;
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var array = _request.Array!;
        var position = _request.Offset;
        foreach (var gap in _deferred.Gaps)
        {
            await stream.WriteAsync(array.AsMemory(position, gap.Offset - position), cancellationToken).ConfigureAwait(false);
            await stream.WriteAsync(gap.Content, cancellationToken).ConfigureAwait(false);
            position = gap.Offset + gap.Content.Length;
        }

        await stream.WriteAsync(array.AsMemory(position, _request.Offset + _request.Count - position), cancellationToken).ConfigureAwait(false);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _request.Count;
        return true;
    }
}
