using SpIstio.Core.GrpcMessages;

namespace SpIstio.Backend.GrpcCalls;

/// <summary>
/// Reads the descriptor sets the backend decodes captured gRPC messages with
/// (<c>--grpc-descriptor-sets</c> / <c>SP_GRPC_DESCRIPTOR_SETS</c>): files made by
/// <c>protoc --descriptor_set_out=FILE --include_imports</c>, or folders of them (a mounted
/// ConfigMap), read once at start-up.
/// </summary>
public static class GrpcDescriptorFiles
{
    /// <summary>The environment variable read when the option is not given.</summary>
    public const string EnvironmentVariable = "SP_GRPC_DESCRIPTOR_SETS";

    /// <summary>The file names a folder is searched for: the extensions protoc users give descriptor sets.</summary>
    public static readonly IReadOnlyList<string> FolderExtensions = [".pb", ".desc", ".protoset", ".binpb"];

    // A descriptor set of a whole API with its imports is a few hundred KiB; anything near this is
    // not one, and start-up should not read a mistaken multi-gigabyte path into memory.
    private const long MaxFileBytes = 64L * 1024 * 1024;

    /// <summary>Splits the option's value (comma-separated paths) into paths; empty entries are dropped.</summary>
    public static IReadOnlyList<string> Split(string? value) =>
        string.IsNullOrWhiteSpace(value) ? [] : value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// Loads every set the paths name. Every bad path and file is reported, each naming itself
    /// (missing, unreadable, too large, not a descriptor set); only when each file reads on its own
    /// are they combined, which can still fail on an import none of them holds.
    /// </summary>
    /// <returns>The combined set (<see cref="GrpcDescriptorSet.Empty"/> when no paths are given) and the problems; the set is null when there are problems.</returns>
    public static (GrpcDescriptorSet? Set, IReadOnlyList<string> Problems) Load(IReadOnlyList<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (paths.Count == 0)
        {
            return (GrpcDescriptorSet.Empty, []);
        }

        var problems = new List<string>();
        var sets = new List<(string Source, byte[] Bytes)>();
        foreach (var path in paths)
        {
            if (Directory.Exists(path))
            {
                var files = Directory.EnumerateFiles(path)
                    .Where(f => !Path.GetFileName(f).StartsWith('.') && FolderExtensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
                    .Order(StringComparer.Ordinal)
                    .ToList();
                if (files.Count == 0)
                {
                    problems.Add("grpc-descriptor-sets: folder '" + path + "' holds no descriptor set (" + string.Join(", ", FolderExtensions) + ")");
                }

                foreach (var file in files)
                {
                    Read(file, sets, problems);
                }
            }
            else if (File.Exists(path))
            {
                Read(path, sets, problems);
            }
            else
            {
                problems.Add("grpc-descriptor-sets: '" + path + "' does not exist");
            }
        }

        if (problems.Count > 0)
        {
            return (null, problems);
        }

        try
        {
            return (GrpcDescriptorSet.Load(sets), []);
        }
        catch (InvalidDataException ex)
        {
            return (null, ["grpc-descriptor-sets: " + ex.Message]);
        }
    }

    private static void Read(string file, List<(string Source, byte[] Bytes)> sets, List<string> problems)
    {
        byte[] bytes;
        try
        {
            var length = new FileInfo(file).Length;
            if (length > MaxFileBytes)
            {
                problems.Add("grpc-descriptor-sets: '" + file + "' is " + length + " bytes, more than a descriptor set (at most 64 MiB)");
                return;
            }

            bytes = File.ReadAllBytes(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            problems.Add("grpc-descriptor-sets: '" + file + "' cannot be read (" + ex.Message + ")");
            return;
        }

        // Each file alone first, so every bad one is named, not only the first the combined load meets.
        try
        {
            GrpcDescriptorSet.Load([(file, bytes)]);
        }
        catch (InvalidDataException ex) when (ex.InnerException is Google.Protobuf.InvalidProtocolBufferException)
        {
            problems.Add("grpc-descriptor-sets: " + ex.Message);
            return;
        }
        catch (InvalidDataException)
        {
            // Its imports may be in another file: the combined load decides.
        }

        sets.Add((file, bytes));
    }
}
