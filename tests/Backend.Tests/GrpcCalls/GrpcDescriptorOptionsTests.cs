using SpIstio.Backend.GrpcCalls;
using SpIstio.Backend.Hosting;

namespace SpIstio.Backend.Tests.GrpcCalls;

/// <summary><c>--grpc-descriptor-sets</c>: files or folders read at start-up, every bad one named at once.</summary>
public sealed class GrpcDescriptorOptionsTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sp-descriptors-" + Guid.NewGuid().ToString("N"));

    public GrpcDescriptorOptionsTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Validate_EveryBadFile_IsListedAtOnce_EachByName()
    {
        var garbage = Write("garbage.pb", [0xFF, 0xFF, 0xFF, 0x01]);
        var alsoGarbage = Write("also.desc", [0x0A, 0x05, 0x01]);
        var missing = Path.Combine(_directory, "missing.pb");
        var emptyFolder = Directory.CreateDirectory(Path.Combine(_directory, "empty")).FullName;
        var options = new BackendOptions { GrpcDescriptorSets = [garbage, GrpcTestCalls.DescriptorSetPath, missing, alsoGarbage, emptyFolder] };

        var problems = options.Validate();

        Assert.Equal(4, problems.Count);
        Assert.Contains(problems, p => p.StartsWith("grpc-descriptor-sets: " + garbage + ": not a protobuf FileDescriptorSet", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("grpc-descriptor-sets: " + alsoGarbage + ": not a protobuf FileDescriptorSet", StringComparison.Ordinal));
        Assert.Contains("grpc-descriptor-sets: '" + missing + "' does not exist", problems);
        Assert.Contains(problems, p => p.StartsWith("grpc-descriptor-sets: folder '" + emptyFolder + "' holds no descriptor set", StringComparison.Ordinal));
    }

    [Fact]
    public async Task StartAsync_WithABadFile_RefusesToStart_NamingIt()
    {
        var garbage = Write("orders.pb", [0xFF, 0xFF, 0xFF, 0x01]);
        var options = new BackendOptions { Listen = "127.0.0.1:0", GrpcListen = null, Store = "sqlite:" + Path.Combine(_directory, "sp.db"), GrpcDescriptorSets = [garbage] };

        var error = await Assert.ThrowsAsync<BackendOptionsException>(() => BackendServer.StartAsync(options));

        var problem = Assert.Single(error.Problems);
        Assert.Contains(garbage, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_AFolder_ReadsItsDescriptorSets_AndSkipsOtherFiles()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_directory, "configmap")).FullName;
        File.Copy(GrpcTestCalls.DescriptorSetPath, Path.Combine(folder, "orders.protoset"));
        File.WriteAllText(Path.Combine(folder, "README"), "not a descriptor set");
        // A mounted ConfigMap also holds ..data links and timestamped folders: names starting with a dot.
        File.WriteAllBytes(Path.Combine(folder, "..hidden.pb"), [0xFF, 0xFF]);

        var (set, problems) = GrpcDescriptorFiles.Load([folder]);

        Assert.Empty(problems);
        Assert.NotNull(set!.FindMethod("/sp.test.grpc.Orders/Get"));
        Assert.NotNull(set.FindMessage("sp.test.grpc.Everything"));
    }

    [Fact]
    public void Split_CommaSeparatedPaths_TrimmedWithoutEmpties() =>
        Assert.Equal(["/a.pb", "/etc/sp/descriptors"], GrpcDescriptorFiles.Split(" /a.pb, ,/etc/sp/descriptors "));

    [Fact]
    public void Load_NoPaths_IsTheEmptySet()
    {
        var (set, problems) = GrpcDescriptorFiles.Load([]);

        Assert.Empty(problems);
        Assert.Equal(0, set!.ServiceCount);
    }

    private string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
