using System.Collections.Concurrent;
using System.Text;

namespace SpIstio.Deploy.Tests;

/// <summary>
/// A private copy of deploy/ with every <c>*.env.example</c> secret template filled in, the way an
/// operator prepares it before `kubectl apply -k` (secrets are never committed), and the
/// rendered output of each kustomization in it, cached per directory.
/// </summary>
internal static class DeployTree
{
    private static readonly Lazy<string> _copy = new(CreateCopy);
    private static readonly ConcurrentDictionary<string, Lazy<List<Manifest>>> _renders = new(StringComparer.Ordinal);

    public const string KubectlHint =
        "Install kubectl (it bundles kustomize v5): `apt-get install -y kubectl` from the Kubernetes apt repository " +
        "(https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/), or download the binary to /usr/local/bin/kubectl.";

    /// <summary>The top-level overlays (deploy/overlays/&lt;name&gt;), discovered from the folder.</summary>
    public static IEnumerable<string> Overlays =>
        Directory.GetDirectories(Path.Combine(RepoPaths.Deploy, "overlays"))
            .Where(d => File.Exists(Path.Combine(d, "kustomization.yaml")))
            .Select(Path.GetFileName)
            .OfType<string>()
            .Order(StringComparer.Ordinal);

    /// <summary>Every kustomization that is meant to render on its own: bases, overlays, observability.</summary>
    public static IEnumerable<string> RenderableDirectories =>
        Directory.GetDirectories(Path.Combine(RepoPaths.Deploy, "base")).Select(d => "base/" + Path.GetFileName(d))
            .Concat(Overlays.Select(o => "overlays/" + o))
            .Append("observability")
            .Order(StringComparer.Ordinal);

    /// <summary>The value the prepared copy puts into a secret template's key, unique per file.</summary>
    public static string FilledValue(string relativeEnvFile, string key) =>
        $"test-{key.ToLowerInvariant()}-{relativeEnvFile.Replace('/', '-').Replace(".env", "", StringComparison.Ordinal)}";

    /// <summary>Renders deploy/&lt;relativeDir&gt; with `kubectl kustomize`; fails with kubectl's error.</summary>
    public static List<Manifest> Render(string relativeDir) =>
        _renders.GetOrAdd(relativeDir, d => new Lazy<List<Manifest>>(() => RenderUncached(d))).Value;

    public static string RenderText(string relativeDir)
    {
        var dir = Path.Combine(_copy.Value, relativeDir);
        var result = ExternalTool.Run("kubectl", KubectlHint, "kustomize", dir);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"kubectl kustomize deploy/{relativeDir} failed ({result.ExitCode}):\n{result.StdErr}");
        }

        return result.StdOut;
    }

    private static List<Manifest> RenderUncached(string relativeDir) => Manifest.ParseAll(RenderText(relativeDir));

    private static string CreateCopy()
    {
        var scratch = Path.Combine(Path.GetTempPath(), "sp-deploy-tests-" + Guid.NewGuid().ToString("N"));
        var target = Path.Combine(scratch, "deploy");
        // The test host does not always run exit handlers, so earlier runs' copies are swept here too.
        foreach (var stale in Directory.GetDirectories(Path.GetTempPath(), "sp-deploy-tests-*"))
        {
            if (Directory.GetCreationTimeUtc(stale) < DateTime.UtcNow.AddHours(-1))
            {
                Directory.Delete(stale, recursive: true);
            }
        }

        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(scratch, recursive: true);
        foreach (var file in Directory.EnumerateFiles(RepoPaths.Deploy, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(RepoPaths.Deploy, file);
            // Real secret files an operator may have next to the templates are not test input.
            if (relative.EndsWith(".env", StringComparison.Ordinal))
            {
                continue;
            }

            var destination = Path.Combine(target, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
            if (relative.EndsWith(".env.example", StringComparison.Ordinal))
            {
                var envRelative = relative[..^".example".Length].Replace('\\', '/');
                File.WriteAllText(Path.Combine(target, envRelative), Fill(file, envRelative));
            }
        }

        return target;
    }

    private static string Fill(string template, string envRelative)
    {
        var output = new StringBuilder();
        foreach (var line in File.ReadAllLines(template))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (line.StartsWith('#') || eq <= 0)
            {
                continue;
            }

            var key = line[..eq];
            output.Append(key).Append('=').Append(FilledValue(envRelative, key)).Append('\n');
        }

        return output.ToString();
    }
}
