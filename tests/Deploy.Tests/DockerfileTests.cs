namespace SpIstio.Deploy.Tests;

/// <summary>The root Dockerfile builds the `sp` image the manifests run: multi-stage, pinned bases, non-root.</summary>
public sealed class DockerfileTests
{
    private static readonly string[] _lines = File.ReadAllLines(Path.Combine(RepoPaths.Root, "Dockerfile"))
        .Select(l => l.Trim())
        .Where(l => l.Length > 0 && !l.StartsWith('#'))
        .ToArray();

    private static List<string[]> Stages()
    {
        var stages = new List<List<string>>();
        foreach (var line in _lines)
        {
            if (line.StartsWith("FROM ", StringComparison.OrdinalIgnoreCase))
            {
                stages.Add([]);
            }

            if (stages.Count > 0)
            {
                stages[^1].Add(line);
            }
        }

        return stages.Select(s => s.ToArray()).ToList();
    }

    private static string BaseImage(string fromLine) =>
        fromLine.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).First(t => !t.StartsWith("--", StringComparison.Ordinal));

    [Fact]
    public void Dockerfile_BuildsWithTheSdkAndRunsOnTheAspNetRuntime()
    {
        var stages = Stages();

        Assert.True(stages.Count >= 2, "the Dockerfile should be multi-stage (SDK build, runtime)");
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:10.0", BaseImage(stages[0][0]));
        Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:10.0", BaseImage(stages[^1][0]));
        Assert.Contains(stages[0], l => l.StartsWith("RUN dotnet publish src/Cli/Cli.csproj", StringComparison.Ordinal) && l.Contains("-c Release", StringComparison.Ordinal));
        Assert.Contains(stages[^1], l => l.StartsWith("COPY --from=build", StringComparison.Ordinal));
    }

    // The agent containers run the Native AOT sp-agent (issue 13: the JIT runtime alone idled above
    // the 60 MiB target). Native AOT cannot cross-compile without the target's toolchain, so its
    // stage runs on the target platform (no --platform=$BUILDPLATFORM) and publishes for the
    // architecture it runs on.
    [Fact]
    public void TheAgentStage_PublishesTheNativeAotAgentOnTheTargetPlatform_AndTheImageCarriesIt()
    {
        var stages = Stages();
        var agent = stages.SingleOrDefault(s => s[0].EndsWith(" AS agent", StringComparison.OrdinalIgnoreCase));

        Assert.NotNull(agent);
        Assert.DoesNotContain("--platform", agent[0], StringComparison.Ordinal);
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:10.0", BaseImage(agent[0]));
        Assert.Contains(agent, l => l.Contains("apt-get install", StringComparison.Ordinal) && l.Contains("clang", StringComparison.Ordinal));
        Assert.Contains(agent, l => l.StartsWith("RUN dotnet publish src/AgentHost/AgentHost.csproj", StringComparison.Ordinal)
            && l.Contains("-c Release", StringComparison.Ordinal) && l.Contains(" -r linux-", StringComparison.Ordinal));
        // sp-agent and, on x64, the x86-64-v3 build sp-agent starts in its place where the CPU has it.
        Assert.Contains(stages[^1], l => l.StartsWith("COPY --from=agent", StringComparison.Ordinal) && l.Contains("/agent/sp-agent* ", StringComparison.Ordinal));
    }

    // The backend's store compresses every value with libzstd where it loads (NativeZstd): the
    // chiseled runtime has none, so the target platform's stage copies its own (dereferenced, so the
    // file and not a dangling link) to /app, where the backend looks first.
    [Fact]
    public void TheImage_CarriesLibzstdForTheBackend_FromTheStageThatRunsOnTheTargetPlatform()
    {
        var stages = Stages();
        var agent = stages.Single(s => s[0].EndsWith(" AS agent", StringComparison.OrdinalIgnoreCase));

        Assert.Contains(agent, l => l.Contains("apt-get install", StringComparison.Ordinal) && l.Contains(" libzstd1", StringComparison.Ordinal));
        Assert.Contains(agent, l => l.StartsWith("RUN cp -L ", StringComparison.Ordinal) && l.Contains("-linux-gnu/libzstd.so.1\" /agent/libzstd.so.1", StringComparison.Ordinal));
        Assert.Contains(stages[^1], l => l == "WORKDIR /app");
        Assert.Contains(stages[^1], l => l.StartsWith("COPY --from=agent", StringComparison.Ordinal) && l.EndsWith(" /agent/libzstd.so.1 ./", StringComparison.Ordinal));
    }

    [Fact]
    public void EveryBaseImage_HasAPinnedTag()
    {
        Assert.All(Stages(), s => Assert.True(ImageReference.HasPinnedTag(BaseImage(s[0])), $"'{s[0]}' has no tag or uses latest"));
    }

    [Fact]
    public void FinalStage_RunsAsANonRootUserWithTheSpEntrypoint()
    {
        var final = Stages()[^1];
        var user = final.LastOrDefault(l => l.StartsWith("USER ", StringComparison.OrdinalIgnoreCase));

        Assert.NotNull(user);
        var who = user["USER ".Length..].Trim();
        Assert.DoesNotContain(who.Split(':')[0], new[] { "root", "0" });
        Assert.Contains(final, l => l == "ENTRYPOINT [\"dotnet\", \"/app/sp.dll\"]");
    }

    [Fact]
    public void DockerIgnore_KeepsBuildOutputAndNonSourceFoldersOutOfTheContext()
    {
        var ignored = File.ReadAllLines(Path.Combine(RepoPaths.Root, ".dockerignore")).Select(l => l.Trim()).ToHashSet(StringComparer.Ordinal);

        Assert.Superset(new HashSet<string>(["**/bin/", "**/obj/", ".git/", "tests/", "deploy/"]), ignored);
    }
}
