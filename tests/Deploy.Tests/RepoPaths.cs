namespace SpIstio.Deploy.Tests;

/// <summary>Where the repository and its deploy/ tree are, found from the test binary upwards.</summary>
internal static class RepoPaths
{
    private static readonly Lazy<string> _root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SpIstio.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"SpIstio.slnx not found above {AppContext.BaseDirectory}.");
    });

    public static string Root => _root.Value;

    public static string Deploy => Path.Combine(Root, "deploy");

    public static string Observability => Path.Combine(Deploy, "observability");
}
