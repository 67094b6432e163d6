namespace SpIstio.Deploy.Tests;

/// <summary>Secrets are generated from *.env files the operator creates; only empty templates are committed.</summary>
public sealed class SecretTemplateTests
{
    [Fact]
    public void EverySecretGeneratorFile_HasACommittedTemplateWithEmptyValues()
    {
        var kustomizations = Directory.EnumerateFiles(RepoPaths.Deploy, "kustomization.yaml", SearchOption.AllDirectories).ToList();
        var envFiles = new List<string>();
        foreach (var path in kustomizations)
        {
            var lines = File.ReadAllLines(path);
            envFiles.AddRange(lines.Select(l => l.Trim())
                .Where(l => l.StartsWith("- ", StringComparison.Ordinal) && l.EndsWith(".env", StringComparison.Ordinal))
                .Select(l => Path.Combine(Path.GetDirectoryName(path)!, l[2..].Trim())));
        }

        Assert.NotEmpty(envFiles);
        foreach (var env in envFiles)
        {
            var template = env + ".example";
            Assert.True(File.Exists(template), $"{Path.GetRelativePath(RepoPaths.Root, env)} has no committed .example template");
            var assignments = File.ReadAllLines(template).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
            Assert.NotEmpty(assignments);
            // A key or password in git would be a leak; the template only names the keys.
            Assert.All(assignments, a => Assert.EndsWith("=", a));
        }
    }
}
