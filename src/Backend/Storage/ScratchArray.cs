using System.Buffers;
using System.Runtime.CompilerServices;

namespace SpIstio.Backend.Storage;

/// <summary>
/// Temporary arrays of the body codec and of ingest: from the shared pool up to
/// <see cref="ScratchArray.MaxPooledBytes"/>, allocated and left to the collector above it. The
/// shared pool keeps a returned array until a gen-2 collection finds it unused for a minute, and a
/// backend gone quiet after a burst runs none: the arrays of one large span stored or read (tens of
/// MiB at a raised attribute cap, the split form's value list 16 bytes per body byte before this)
/// stayed resident for the rest of the process's life. Above the bound the collection that
/// <c>ReadBudget</c> runs once large reads are over hands them back.
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
internal static class ScratchArray<T>
    where T : unmanaged
{
    /// <summary>The longest array taken from and returned to the shared pool.</summary>
    public static readonly int MaxPooledLength = ScratchArray.MaxPooledBytes / Unsafe.SizeOf<T>();

    /// <summary>An array of at least <paramref name="length"/> elements, contents undefined.</summary>
    public static T[] Rent(int length) =>
        length <= MaxPooledLength ? ArrayPool<T>.Shared.Rent(length) : GC.AllocateUninitializedArray<T>(length);

    /// <summary>Gives back an array from <see cref="Rent"/>: pooled ones to the pool, larger ones to the collector.</summary>
    public static void Return(T[] array)
    {
        // Shared-pool arrays are powers of two, so a rented one is never just over the bound.
        if (array.Length <= MaxPooledLength)
        {
            ArrayPool<T>.Shared.Return(array);
        }
    }
}

/// <summary>The bound of <see cref="ScratchArray{T}"/>.</summary>
internal static class ScratchArray
{
    /// <summary>
    /// The largest scratch array (in bytes) kept in the shared pool: every array a stored span of
    /// ordinary size needs (a 64 KiB body's split form is ~200 KiB) stays pooled.
    /// </summary>
    public const int MaxPooledBytes = 1024 * 1024;
}
