using System.Globalization;

/// <summary>
/// CPU time (user + system) of this process and, when given, of a PostgreSQL server's process
/// tree, from /proc. On a shared machine the rate depends on what else runs; the CPU seconds one
/// span costs do much less, so the benchmark reports both (bench/README.md, "Backend").
/// </summary>
internal sealed class CpuMeter(int? serverPid)
{
    private static readonly double TicksPerSecond = 100; // USER_HZ on Linux

    public (double Process, double Server) Now() => (ProcessSeconds(Environment.ProcessId), serverPid is { } pid ? TreeSeconds(pid) : 0);

    private static double ProcessSeconds(int pid)
    {
        var fields = Stat(pid);
        return fields is null ? 0 : (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
    }

    // The postmaster and its children (backends, WAL writer, checkpointer, autovacuum).
    private static double TreeSeconds(int root)
    {
        double total = ProcessSeconds(root);
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out int pid) && Stat(pid) is { } fields && fields[1] == root.ToString(CultureInfo.InvariantCulture))
            {
                total += (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
            }
        }

        return total;
    }

    // Fields after the command (which may hold spaces): [0] state, [1] ppid, … [11] utime, [12] stime.
    private static string[]? Stat(int pid)
    {
        try
        {
            string text = File.ReadAllText($"/proc/{pid}/stat");
            return text[(text.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (IOException)
        {
            return null;
        }
    }
}
