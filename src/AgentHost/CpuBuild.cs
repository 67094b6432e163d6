using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace SpIstio.Cli;

/// <summary>
/// Picks the <c>sp-agent</c> build compiled for this CPU. A linux-x64 publish holds two: <c>sp-agent</c>
/// for x86-64-v2 (runs on every x64 server CPU since 2009) and <see cref="V3Name"/> for x86-64-v3
/// (AVX2, BMI2, FMA: Intel since 2013, AMD since 2015). Started as <c>sp-agent</c> on a CPU that has
/// x86-64-v3, the process replaces itself (<c>execv</c>: same PID, arguments, environment and open
/// standard streams) with the v3 build before anything else runs.
/// </summary>
/// <remarks>
/// <para>
/// Native AOT fixes the instruction sets at publish: the v2 build has every AVX2 path compiled out
/// (<c>Avx2.IsSupported</c> is a constant false there, also on an AVX2 CPU), and a binary compiled for
/// v3 refuses to start on a CPU without it. Two binaries keep the image starting everywhere and give
/// the redaction pre-scan its 256-bit loop, and the BCL its wide vector paths, where the CPU has them
/// (bench/README.md, "x86-64-v3 build").
/// </para>
/// <para>
/// The CPU's features come from <c>/proc/cpuinfo</c>, the kernel's view: it lists AVX and AVX2 only
/// when the kernel also saves their registers, which CPUID alone does not say. <see cref="Variable"/>
/// set to <c>baseline</c> keeps the v2 build (an A/B, or a CPU the check misjudges).
/// </para>
/// <para>
/// The two files are one build only when installed together. A v3 file left beside a newer
/// <c>sp-agent</c> (an upgrade that copied one file, an image layer that kept the old one) would
/// otherwise run the old agent with nothing said. Both are compiled from the same IL assembly, so
/// they share its module version id (a hash of the IL under deterministic builds): the v2 build
/// passes its id in <see cref="LauncherVariable"/>, and a v3 build with another id goes back to the
/// v2 build, which then runs as <c>baseline</c> (with a warning naming both files).
/// </para>
/// </remarks>
internal static class CpuBuild
{
    /// <summary>The file name of the x86-64-v3 build, beside <c>sp-agent</c>.</summary>
    public const string V3Name = "sp-agent-x86-64-v3";

    /// <summary><c>auto</c> (the default) or <c>baseline</c>.</summary>
    public const string Variable = "SP_AGENT_CPU";

    /// <summary>
    /// Set by the v2 build for the v3 build it starts, which clears it: the build the v3 file must be,
    /// the launcher's <see cref="BuildId"/>.
    /// </summary>
    public const string LauncherVariable = "SP_AGENT_LAUNCHER_BUILD";

    // x86-64-v3 as /proc/cpuinfo spells it (LZCNT is "abm"); .NET's x86-64-v3 target needs each.
    private static readonly string[] _v3Flags = ["avx", "avx2", "bmi1", "bmi2", "fma", "movbe", "abm", "f16c", "xsave"];

    /// <summary>
    /// Replaces the process with the v3 build when this is the v2 build on linux-x64, the CPU has
    /// x86-64-v3 and the v3 build is there; returns (and this build runs) otherwise. Returns an error
    /// message when <see cref="Variable"/> holds something else than <c>auto</c> or <c>baseline</c>.
    /// </summary>
    public static string? ExecBest(string[] args)
    {
        var choice = Environment.GetEnvironmentVariable(Variable);
        if (choice is not (null or "" or "auto" or "baseline"))
        {
            return Variable + " must be 'auto' or 'baseline', not '" + choice + "'";
        }

        // Avx2.IsSupported is a constant in Native AOT: true in the v3 build, which must not start
        // itself again, only check that it is the launcher's build.
        if (Avx2.IsSupported)
        {
            return ReturnIfStale(args);
        }

        if (choice == "baseline" || !OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            return null;
        }

        var self = Environment.ProcessPath;
        var v3 = self is null ? null : Path.Combine(Path.GetDirectoryName(self) ?? ".", V3Name);
        if (v3 is null || !File.Exists(v3) || !HasV3(ReadCpuInfo()))
        {
            return null;
        }

        _ = SetEnv(LauncherVariable, BuildId, 1);
        Exec(v3, self!, args);

        // execv returned: the v3 build could not be started (permissions, a noexec mount); this one runs.
        _ = UnsetEnv(LauncherVariable);
        return null;
    }

    /// <summary>This build's identity: its assembly's module version id, the same in the v2 and v3 files of one publish.</summary>
    public static string BuildId { get; } = typeof(CpuBuild).Module.ModuleVersionId.ToString("N");

    // In the v3 build: started by a v2 build of another publish, go back to that one as baseline.
    private static string? ReturnIfStale(string[] args)
    {
        var launcher = Environment.GetEnvironmentVariable(LauncherVariable);
        if (string.IsNullOrEmpty(launcher))
        {
            // Started directly (or by a v2 build from before this check): nothing to compare with.
            return null;
        }

        // Not the agent's: neither its configuration nor a process it starts sees it.
        Environment.SetEnvironmentVariable(LauncherVariable, null);
        _ = UnsetEnv(LauncherVariable);
        if (launcher == BuildId)
        {
            return null;
        }

        // argv[0] is the path the v2 build was started as, which it passed on (Exec).
        var v2 = ReadArgv0();
        if (string.IsNullOrEmpty(v2))
        {
            return Environment.ProcessPath + " is from another build than the sp-agent that started it, whose path is unknown: install both files of one publish together";
        }

        Console.Error.WriteLine($"warning: {Environment.ProcessPath} is from another build than {v2} (build {BuildId}, not {launcher}); running {v2} as {Variable}=baseline. Install both files of one publish together.");
        _ = SetEnv(Variable, "baseline", 1);
        Exec(v2, v2, args);
        return "could not start " + v2 + " (" + Marshal.GetLastPInvokeErrorMessage() + ") after finding " + Environment.ProcessPath + " from another build";
    }

    private static string? ReadArgv0()
    {
        try
        {
            var cmdline = File.ReadAllText("/proc/self/cmdline");
            return cmdline[..Math.Max(0, cmdline.IndexOf('\0'))];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>True when the first <c>flags</c> line of <paramref name="cpuinfo"/> (a <c>/proc/cpuinfo</c>) lists every x86-64-v3 feature.</summary>
    public static bool HasV3(string? cpuinfo)
    {
        if (cpuinfo is null)
        {
            return false;
        }

        foreach (var line in cpuinfo.AsSpan().EnumerateLines())
        {
            var colon = line.IndexOf(':');
            if (colon < 0 || !line[..colon].Trim().SequenceEqual("flags"))
            {
                continue;
            }

            var flags = new HashSet<string>(line[(colon + 1)..].ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);
            return _v3Flags.All(flags.Contains);
        }

        return false;
    }

    private static string? ReadCpuInfo()
    {
        try
        {
            return File.ReadAllText("/proc/cpuinfo");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    // argv[0] stays the path the process was started as, so ps and /proc/PID/cmdline read as before.
    private static void Exec(string path, string argv0, string[] args)
    {
        var argv = new nint[args.Length + 2];
        try
        {
            argv[0] = Marshal.StringToCoTaskMemUTF8(argv0);
            for (var i = 0; i < args.Length; i++)
            {
                argv[i + 1] = Marshal.StringToCoTaskMemUTF8(args[i]);
            }

            var file = Marshal.StringToCoTaskMemUTF8(path);
            try
            {
                _ = ExecV(file, argv);
            }
            finally
            {
                Marshal.FreeCoTaskMem(file);
            }
        }
        finally
        {
            foreach (var pointer in argv)
            {
                Marshal.FreeCoTaskMem(pointer);
            }
        }
    }

    [DllImport("libc", EntryPoint = "setenv", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int SetEnv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    [DllImport("libc", EntryPoint = "unsetenv", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int UnsetEnv([MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    // The argument vector ends with a null pointer (the array's last element).
    [DllImport("libc", EntryPoint = "execv", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int ExecV(nint path, nint[] argv);
}
