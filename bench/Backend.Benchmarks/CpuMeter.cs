using System.Globalization;
using System.Runtime.InteropServices;

/// <summary>
/// CPU time (user + system) of this process and, when given, of a PostgreSQL server's process
/// tree, from /proc. On a shared machine the rate depends on what else runs; the CPU seconds one
/// span costs do much less, so the benchmark reports both (bench/README.md, "Backend").
/// </summary>
internal sealed class CpuMeter(int? serverPid)
{
    private static readonly double TicksPerSecond = 100; // USER_HZ on Linux

    public (double Process, double Server) Now() => (ProcessSeconds(Environment.ProcessId), serverPid is { } pid ? TreeSeconds(pid) : 0);

    /// <summary>
    /// CPU seconds the calling thread has used (CLOCK_THREAD_CPUTIME_ID, nanosecond resolution): what
    /// synchronous work on this thread cost, apart from what other threads did meanwhile.
    /// </summary>
    public static double ThreadSeconds() => ClockGetTime(ThreadCpuClock, out var now) == 0 ? now.Seconds + (now.Nanoseconds / 1e9) : 0;

    /// <summary>
    /// CPU seconds the runtime's tiered-compilation thread has used since this meter was made: it
    /// compiles hot methods again at their optimised tier in the background. The runtime ends that
    /// thread when it has been idle a while and starts another later, so each one is followed by
    /// its id and <see cref="Sample()"/> is called often (every batch): only what a thread did after
    /// its last sample and before it ended is missed.
    /// </summary>
    internal sealed class TieredCompilation
    {
        private readonly Dictionary<string, (double First, double Last)> _threads = [];

        public TieredCompilation() => Sample(firstSeen: true);

        public double Seconds => _threads.Values.Sum(t => t.Last - t.First);

        public void Sample() => Sample(firstSeen: false);

        private void Sample(bool firstSeen)
        {
            foreach (string task in Directory.EnumerateDirectories("/proc/self/task"))
            {
                string comm;
                try
                {
                    comm = File.ReadAllText(Path.Combine(task, "comm"));
                }
                catch (IOException)
                {
                    continue;
                }

                if (comm.StartsWith(".NET Tiered", StringComparison.Ordinal) && Stat(Path.Combine(task, "stat")) is { } fields)
                {
                    string id = Path.GetFileName(task);
                    double now = Seconds(fields);
                    // A thread started after the meter was made counts from zero.
                    _threads[id] = (_threads.TryGetValue(id, out var seen) ? seen.First : firstSeen ? now : 0, now);
                }
            }
        }
    }

    private const int ThreadCpuClock = 3;

    [DllImport("libc", EntryPoint = "clock_gettime")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    private static double ProcessSeconds(int pid) => Stat($"/proc/{pid}/stat") is { } fields ? Seconds(fields) : 0;

    private static double Seconds(string[] fields) => (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;

    // The postmaster and its children (backends, WAL writer, checkpointer, autovacuum).
    private static double TreeSeconds(int root)
    {
        double total = ProcessSeconds(root);
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out _) && Stat(Path.Combine(dir, "stat")) is { } fields && fields[1] == root.ToString(CultureInfo.InvariantCulture))
            {
                total += Seconds(fields);
            }
        }

        return total;
    }

    // Fields after the command (which may hold spaces): [0] state, [1] ppid, … [11] utime, [12] stime.
    private static string[]? Stat(string path)
    {
        try
        {
            string text = File.ReadAllText(path);
            return text[(text.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (IOException)
        {
            return null;
        }
    }
}
