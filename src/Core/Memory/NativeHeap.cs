using System.Runtime.InteropServices;

namespace SpIstio.Core.Memory;

/// <summary>
/// Hands freed native heap back to the OS. SQLite materialises a large value in one malloc'd
/// buffer while a reader steps over it; glibc raises its mmap threshold after such buffers are
/// freed, so later ones come from the heap, and the freed heap stays resident. After a burst of
/// large reads (the backend's read budget), <c>malloc_trim</c> returns it.
/// </summary>
public static class NativeHeap
{
    /// <summary>Trims glibc's heap; does nothing where there is no glibc (musl, macOS, Windows).</summary>
    public static void Trim()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            _ = MallocTrim(0);
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            // Not glibc: nothing to trim this way.
        }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int MallocTrim(nuint pad);
}
