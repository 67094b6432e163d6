using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace SpIstio.Deploy.Tests;

/// <summary>
/// Every agent container the overlays render keeps its disk export buffer on a dedicated
/// emptyDir whose sizeLimit is above the buffer's bound: a full buffer deletes its oldest batches
/// itself instead of getting the pod evicted for exceeding its ephemeral storage.
/// </summary>
public sealed class AgentBufferTests
{
    // The agent's default export.buffer_max_bytes (ExportOptions.DefaultBufferMaxBytes).
    private const long DefaultBufferMaxBytes = 128L * 1024 * 1024;

    public static TheoryData<string> Overlays => new(DeployTree.Overlays);

    [Theory]
    [MemberData(nameof(Overlays))]
    public void EveryAgent_HasItsExportBufferOnADedicatedEmptyDirSizedAboveTheBound(string overlay)
    {
        var problems = new List<string>();
        var agents = 0;
        foreach (var workload in DeployTree.Render("overlays/" + overlay).Where(o => o.PodSpec is not null))
        {
            foreach (var container in workload.Containers.Where(c => Manifest.Strings(c, "args").FirstOrDefault() == "agent"))
            {
                agents++;
                var where = $"{workload.Id} container {Manifest.Scalar(container, "name")}";
                var env = Manifest.Maps(container, "env").ToDictionary(e => Manifest.Scalar(e, "name") ?? "", e => Manifest.Scalar(e, "value"));
                if (!env.TryGetValue("SP_EXPORT__BUFFER_PATH", out var path) || string.IsNullOrEmpty(path))
                {
                    problems.Add($"{where}: no SP_EXPORT__BUFFER_PATH");
                    continue;
                }

                var bound = env.TryGetValue("SP_EXPORT__BUFFER_MAX_BYTES", out var max) && max is not null
                    ? long.Parse(max, CultureInfo.InvariantCulture)
                    : DefaultBufferMaxBytes;
                var mount = Manifest.Maps(container, "volumeMounts").SingleOrDefault(m => Manifest.Scalar(m, "mountPath") == path);
                if (mount is null)
                {
                    problems.Add($"{where}: nothing is mounted at the buffer path {path}");
                    continue;
                }

                var volumeName = Manifest.Scalar(mount, "name");
                var volume = Manifest.Maps(workload.PodSpec, "volumes").SingleOrDefault(v => Manifest.Scalar(v, "name") == volumeName);
                var sizeLimit = Manifest.Scalar(volume, "emptyDir", "sizeLimit");
                if (sizeLimit is null)
                {
                    problems.Add($"{where}: the buffer volume {volumeName} is not an emptyDir with a sizeLimit");
                    continue;
                }

                if (Quantity(sizeLimit) <= bound)
                {
                    problems.Add($"{where}: emptyDir sizeLimit {sizeLimit} is not above the buffer bound {bound} bytes");
                }

                var sharers = workload.Containers.SelectMany(c => Manifest.Maps(c, "volumeMounts")).Count(m => Manifest.Scalar(m, "name") == volumeName);
                if (sharers != 1)
                {
                    problems.Add($"{where}: the buffer volume {volumeName} is mounted {sharers} times; it must be the buffer's own");
                }
            }
        }

        Assert.Empty(problems);

        // The shared agent (global) and the in-pod sidecar are the two ways the agent is deployed.
        if (overlay is "global" or "in-pod")
        {
            Assert.True(agents > 0, overlay + " renders no agent container");
        }
    }

    // The runtime settings live in eng/RuntimeSettings.props (sp.runtimeconfig.json for `sp`,
    // compiled into the Native AOT sp-agent), the one source the image, the manifests and the
    // benches share; a DOTNET_* variable would silently override them.
    [Theory]
    [MemberData(nameof(Overlays))]
    public void NoAgent_OverridesTheRuntimeSettingsOfSpRuntimeconfig(string overlay)
    {
        var overrides = AgentContainers(overlay)
            .SelectMany(a => Manifest.Maps(a.Container, "env")
                .Select(e => Manifest.Scalar(e, "name") ?? "")
                .Where(name => name.StartsWith("DOTNET_", StringComparison.Ordinal))
                .Select(name => a.Where + ": " + name))
            .ToList();

        Assert.Empty(overrides);
    }

    // The agent containers an overlay renders (those whose arguments start with "agent"), named for messages.
    private static IEnumerable<(string Where, YamlMappingNode Container)> AgentContainers(string overlay) =>
        DeployTree.Render("overlays/" + overlay)
            .Where(o => o.PodSpec is not null)
            .SelectMany(w => w.Containers
                .Where(c => Manifest.Strings(c, "args").FirstOrDefault() == "agent")
                .Select(c => ($"{w.Id} container {Manifest.Scalar(c, "name")}", c)));

    [Fact]
    public void TheImage_LeavesTheRuntimeSettingsToSpRuntimeconfig()
    {
        var image = File.ReadAllLines(Path.Combine(RepoPaths.Root, "Dockerfile"))
            .Select(l => l.Trim())
            .Where(l => l.Contains("DOTNET_", StringComparison.Ordinal) && !l.StartsWith('#'));
        Assert.Empty(image);
        var settings = File.ReadAllText(Path.Combine(RepoPaths.Root, "eng", "RuntimeSettings.props"));
        Assert.Contains("<ServerGarbageCollection>false</ServerGarbageCollection>", settings, StringComparison.Ordinal);
        // sp.runtimeconfig.json and sp-agent get the agent's gen0 budget cap; the backend bench, the
        // backend's (the image's backend runs sp-backend.runtimeconfig.json, written by src/Cli).
        Assert.Contains("Include=\"System.GC.Gen0MaxBudget\" Value=\"$(SpAgentGen0MaxBudget)\" Condition=\"'$(SpRuntimeRole)' != 'backend'\"", settings, StringComparison.Ordinal);
        Assert.Contains("Include=\"System.GC.Gen0MaxBudget\" Value=\"$(SpBackendGen0MaxBudget)\" Condition=\"'$(SpRuntimeRole)' == 'backend'\"", settings, StringComparison.Ordinal);
        foreach (var (project, backend) in new[] { ("src/Cli/Cli.csproj", false), ("src/AgentHost/AgentHost.csproj", false), ("bench/Backend.Benchmarks/Backend.Benchmarks.csproj", true) })
        {
            var text = File.ReadAllText(Path.Combine(RepoPaths.Root, project));
            int import = text.IndexOf("<Import Project=\"$(RepoRoot)eng/RuntimeSettings.props\" />", StringComparison.Ordinal);
            Assert.True(import >= 0, project + " does not import eng/RuntimeSettings.props");
            // The role is read by the import's conditions, so it must come before it.
            int role = text.IndexOf("<SpRuntimeRole>backend</SpRuntimeRole>", StringComparison.Ordinal);
            Assert.True(backend == (role >= 0 && role < import), project + (backend ? " is not" : " is") + " the backend's role");
        }
    }

    // The backend runs the image's `sp` with the backend's runtime settings: the runtimeconfig
    // src/Cli writes beside sp.runtimeconfig.json, which differs in the gen0 budget cap alone.
    [Theory]
    [MemberData(nameof(Overlays))]
    public void TheBackend_RunsSpWithTheBackendRuntimeconfig(string overlay)
    {
        var objects = DeployTree.Render("overlays/" + overlay);
        var backends = objects
            .Where(o => o.PodSpec is not null)
            .SelectMany(w => w.Containers.Where(c => Manifest.Strings(c, "args").FirstOrDefault() == "backend"))
            .ToList();
        Assert.Equal(objects.Any(o => o.Kind == "Deployment" && o.Name == "sp-backend"), backends.Count > 0);
        Assert.All(backends, c => Assert.Equal(
            ["dotnet", "exec", "--runtimeconfig", "/app/sp-backend.runtimeconfig.json", "/app/sp.dll"],
            Manifest.Strings(c, "command")));
    }

    // Every agent container runs the image's Native AOT agent (about half the idle RSS of
    // `dotnet sp.dll agent …`), with the same arguments `sp agent` takes.
    [Theory]
    [MemberData(nameof(Overlays))]
    public void EveryAgent_RunsTheNativeAotAgentBinary(string overlay)
    {
        var problems = AgentContainers(overlay)
            .Select(a => (a.Where, Command: Manifest.Strings(a.Container, "command").ToList()))
            .Where(a => a.Command is not ["/app/sp-agent"])
            .Select(a => $"{a.Where}: command [{string.Join(", ", a.Command)}], expected [/app/sp-agent]")
            .ToList();

        Assert.Empty(problems);
        if (overlay is "global" or "in-pod")
        {
            Assert.NotEmpty(AgentContainers(overlay));
        }
    }

    // The backend stays on `sp` (the image's entrypoint): sp-agent has no backend command.
    [Theory]
    [MemberData(nameof(Overlays))]
    public void OnlyAgentContainers_RunTheAgentBinary(string overlay)
    {
        var misplaced = DeployTree.Render("overlays/" + overlay)
            .Where(o => o.PodSpec is not null)
            .SelectMany(w => w.Containers.Select(c => (Workload: w, Container: c)))
            .Where(x => Manifest.Strings(x.Container, "command").FirstOrDefault() == "/app/sp-agent"
                && Manifest.Strings(x.Container, "args").FirstOrDefault() != "agent")
            .Select(x => $"{x.Workload.Id} container {Manifest.Scalar(x.Container, "name")}")
            .ToList();

        Assert.Empty(misplaced);
    }

    [Theory]
    [InlineData("192Mi", 192L * 1024 * 1024)]
    [InlineData("1Gi", 1024L * 1024 * 1024)]
    [InlineData("500M", 500_000_000L)]
    [InlineData("4096", 4096L)]
    public void Quantity_ReadsKubernetesBinaryAndDecimalSuffixes(string text, long bytes) =>
        Assert.Equal(bytes, Quantity(text));

    private static long Quantity(string text)
    {
        (string Suffix, long Factor)[] suffixes =
        [
            ("Ki", 1L << 10), ("Mi", 1L << 20), ("Gi", 1L << 30), ("Ti", 1L << 40),
            ("k", 1_000L), ("M", 1_000_000L), ("G", 1_000_000_000L), ("T", 1_000_000_000_000L),
        ];
        foreach (var (suffix, factor) in suffixes)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal))
            {
                return long.Parse(text[..^suffix.Length], CultureInfo.InvariantCulture) * factor;
            }
        }

        return long.Parse(text, CultureInfo.InvariantCulture);
    }
}
