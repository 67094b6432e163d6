using System.Text;
using System.Text.Json.Nodes;
using SpIstio.Backend.Replay;

namespace SpIstio.Backend.Tests.Replay;

public class JsonDiffTests
{
    private static IReadOnlyList<JsonDifference> Diff(string expected, string actual, params string[] ignore) =>
        new JsonDiff(ignore).Compare(JsonNode.Parse(expected), JsonNode.Parse(actual));

    [Fact]
    public void Compare_KeyOrderAndNumberSpelling_AreNotDifferences()
    {
        Assert.Empty(Diff("""{"a":1,"b":[1,2],"c":{"x":1.0}}""", """{"c":{"x":1},"b":[1,2],"a":1}"""));
    }

    [Fact]
    public void Compare_ReportsChangedAddedAndRemovedFieldsWithPaths()
    {
        var differences = Diff("""{"a":1,"items":[{"p":2},{"p":3}],"gone":true}""", """{"a":2,"items":[{"p":2}],"new":"x"}""");

        Assert.Equal(
            [
                new JsonDifference("$.a", "1", "2"),
                new JsonDifference("$.items[1]", """{"p":3}""", null),
                new JsonDifference("$.gone", "true", null),
                new JsonDifference("$.new", null, "\"x\""),
            ],
            differences);
    }

    [Fact]
    public void Compare_IgnoreRules_PathsWildcardsAndFieldNamesAtAnyDepth()
    {
        const string Expected = """{"meta":{"id":"1","at":"t1"},"items":[{"id":1,"updatedAt":"t1","v":1}],"v":1}""";
        const string Actual = """{"meta":{"id":"2","at":"t2"},"items":[{"id":1,"updatedAt":"t2","v":1}],"v":1}""";

        Assert.Equal(3, Diff(Expected, Actual).Count);
        Assert.Empty(Diff(Expected, Actual, "$.meta", "$.items[*].updatedAt"));
        Assert.Empty(Diff(Expected, Actual, "id", "at", "updatedAt"));
        Assert.Single(Diff(Expected, Actual, "$.meta.id", "updatedAt"));
    }

    [Fact]
    public void LearnNoise_FieldsDifferingBetweenRecordingsOfOneRequest_AreNoise()
    {
        using var http = new HttpClient { BaseAddress = new Uri("http://127.0.0.1:1/") };
        var runner = new ReplayRunner(http, new ReplayOptions());
        RecordedExchange Recording(string path, string body) => new()
        {
            TraceId = "t",
            SpanId = "s",
            Method = "GET",
            Path = path,
            Status = 200,
            ResponseBody = Encoding.UTF8.GetBytes(body),
        };

        var noise = runner.LearnNoise(
        [
            Recording("/a", """{"v":1,"at":"t1"}"""),
            Recording("/a", """{"v":1,"at":"t2"}"""),
            Recording("/b", """{"v":1,"at":"t3"}"""),
        ]);

        var paths = Assert.Single(noise).Value;
        Assert.Equal(["$.at"], paths);
    }
}
