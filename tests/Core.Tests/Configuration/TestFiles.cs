namespace SpIstio.Core.Tests.Configuration;

/// <summary>Finds sample files in the source tree, so they need no copy step in the project file.</summary>
internal static class TestFiles
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Data(string name) => Path.Combine(RepoRoot, "tests", "Core.Tests", "TestData", name);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SpIstio.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("SpIstio.slnx not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A configuration file in the temp folder, deleted on dispose.</summary>
internal sealed class TempFile : IDisposable
{
    public TempFile(string text, string extension = ".yaml")
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sp-config-" + Guid.NewGuid().ToString("N") + extension);
        File.WriteAllText(Path, text);
    }

    public string Path { get; }

    public void Dispose() => File.Delete(Path);
}
