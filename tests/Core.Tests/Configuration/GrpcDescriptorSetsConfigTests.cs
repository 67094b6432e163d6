using SpIstio.Core.Configuration;

namespace SpIstio.Core.Tests.Configuration;

public sealed class GrpcDescriptorSetsConfigTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sp-descriptors-").FullName;

    [Fact]
    public void DescriptorSets_EveryBadFileIsListed()
    {
        var missing = System.IO.Path.Combine(_folder, "missing.pb");
        var garbage = System.IO.Path.Combine(_folder, "garbage.pb");
        File.WriteAllBytes(garbage, [0xFF, 0xFF, 0xFF, 0xFF]);
        var options = new AgentOptions { PublicKey = "k" };
        options.Capture.Grpc.DescriptorSets = [missing, garbage];

        var problems = AgentOptionsValidator.Validate(options).Where(p => p.Severity == ProblemSeverity.Error).ToList();

        Assert.Equal(2, problems.Count);
        Assert.All(problems, p => Assert.Equal("capture.grpc.descriptor_sets", p.Key));
        Assert.Equal(missing, problems[0].Value);
        Assert.Contains("cannot be read", problems[0].Message, StringComparison.Ordinal);
        Assert.Equal(garbage, problems[1].Value);
        Assert.Contains("not a protobuf FileDescriptorSet", problems[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DescriptorSets_AFileWhoseImportsNoSetHolds_IsAnError()
    {
        // The test proto imports google/protobuf/*.proto and nothing of its own: write a file importing one no set has.
        var proto = new Google.Protobuf.Reflection.FileDescriptorProto { Name = "orders.proto", Dependency = { "shared/money.proto" } };
        var path = System.IO.Path.Combine(_folder, "orders.pb");
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(new Google.Protobuf.Reflection.FileDescriptorSet { File = { proto } }));
        var options = new AgentOptions { PublicKey = "k" };
        options.Capture.Grpc.DescriptorSets = [path];

        var problem = Assert.Single(AgentOptionsValidator.Validate(options), p => p.Severity == ProblemSeverity.Error);

        Assert.Equal("capture.grpc.descriptor_sets", problem.Key);
        Assert.Contains("shared/money.proto", problem.Message, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
