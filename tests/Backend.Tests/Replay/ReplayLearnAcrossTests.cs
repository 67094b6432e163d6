using System.Globalization;
using System.Text;
using SpIstio.Backend.Replay;

namespace SpIstio.Backend.Tests.Replay;

/// <summary>
/// Bindings and noise learned from several recordings of one journey: a binding every recording
/// carries is sure, one only the replayed recording carries is a coincidence and is not carried,
/// and a field the same request answered differently is noise whatever its shape.
/// </summary>
public sealed class ReplayLearnAcrossTests
{
    private static readonly DateTimeOffset RecordedAt = new(2026, 1, 5, 10, 0, 0, TimeSpan.Zero);

    // The replayed recording: its order total (1250) happens to equal the max its client later sent.
    private static readonly List<RecordedExchange> Replayed = Journey("ORDAAAA1", total: "1250", greeting: "Good morning", etag: "\"e-aaaa\"", ifMatch: "\"e-aaaa\"");

    [Fact]
    public void Learn_FromOneRecording_TakesTheCoincidenceForABinding()
    {
        var learned = SessionValues.Learn(Replayed, [], []);

        Assert.Equal(
            [
                "$.order.id of step 1 → path segment 3 of step 2",
                "$.order.total of step 1 → query max of step 2",
                "header:etag of step 1 → header if-match of step 2",
            ],
            learned.Bindings.Select(b => b.ToString()));
        Assert.Equal(1, learned.Recordings);
        // The greeting is a sentence: one recording cannot tell it is noise.
        Assert.DoesNotContain("$.order.greeting", learned.Fresh[1]);
    }

    [Fact]
    public void Learn_AcrossRecordings_CountsSupport_DropsTheCoincidence_AndLearnsNoise()
    {
        var others = new List<JourneyRecording>
        {
            new("s-b", Journey("ORDBBBB2", total: "990", greeting: "Good afternoon", etag: "\"e-bbbb\"", ifMatch: "\"e-bbbb\"")),
            // This client sent an If-Match of its own, not the ETag it was given.
            new("s-c", Journey("ORDCCCC3", total: "1100", greeting: "Good morning", etag: "\"e-cccc\"", ifMatch: "\"e-zzzz\"")),
            // Another order (another sku): its answer differs because its request did.
            new("s-d", Journey("ORDDDDD4", total: "1300", greeting: "Good evening", etag: "\"e-dddd\"", ifMatch: "\"e-dddd\"", sku: "B-2", price: "12.00")),
        };

        var learned = SessionValues.Learn(Replayed, others, [], []);

        Assert.Empty(learned.Problems);
        Assert.Equal(4, learned.Recordings);
        Assert.Equal(
            [
                "$.order.id of step 1 → path segment 3 of step 2 (seen in 4 of 4 recordings)",
                "header:etag of step 1 → header if-match of step 2 (seen in 3 of 4 recordings: weak)",
            ],
            learned.Bindings.Select(b => b.ToString()));
        Assert.False(learned.Bindings[0].Weak);
        Assert.True(learned.Bindings[1].Weak);
        var coincidence = Assert.Single(learned.NotCarried);
        Assert.Equal("$.order.total", coincidence.Source);
        Assert.Equal(1, coincidence.Recordings);

        // The same request (s-b, s-c) got another greeting, total and id: noise. The price differs
        // only in s-d, whose request differed: data, still compared.
        Assert.Equal(["$.order.greeting", "$.order.id", "$.order.total"], learned.NoiseAcross[1].Order(StringComparer.Ordinal));
        Assert.Contains("$.order.greeting", learned.Fresh[1]);
        Assert.DoesNotContain("$.order.price", learned.Fresh[1]);
        // Step 2's answers differ only by the id step 1 issued (carried, not noise).
        Assert.False(learned.NoiseAcross.ContainsKey(2));
    }

    [Fact]
    public void Learn_ARecordingOfAnotherJourney_IsNamedAndNotLearnedFrom()
    {
        var longer = Journey("ORDEEEE5", "1250", "Good morning", "\"e-eeee\"", "\"e-eeee\"");
        longer.Add(longer[1] with { SpanId = "extra" });
        var elsewhere = Journey("ORDFFFF6", "1250", "Good morning", "\"e-ffff\"", "\"e-ffff\"");
        elsewhere[1] = elsewhere[1] with { Path = "/api/carts/ORDFFFF6" };

        var learned = SessionValues.Learn(Replayed, [new("s-e", longer), new("s-f", elsewhere)], [], []);

        Assert.Equal(
            [
                "session s-e is not a recording of the same journey: it has 3 steps, the replayed session 2",
                "session s-f is not a recording of the same journey: its step 2 is GET /api/carts/ORDFFFF6, the replayed session's is GET /api/orders/ORDAAAA1",
            ],
            learned.Problems);
        Assert.Equal(1, learned.Recordings);
        Assert.Equal(3, learned.Bindings.Count);
    }

    [Fact]
    public void TextReport_ListsSupportAndWhatIsNotCarried()
    {
        var learned = SessionValues.Learn(Replayed, [new("s-b", Journey("ORDBBBB2", "990", "Good afternoon", "\"e-bbbb\"", "\"e-bbbb\""))], [], []);
        var report = new ReplayReport { SessionId = "s-a", Target = "http://127.0.0.1:1/", Bindings = learned.Bindings, NotCarried = learned.NotCarried, Recordings = learned.Recordings };
        using var text = new StringWriter(CultureInfo.InvariantCulture);

        ReplayReports.WriteText(report, text);

        Assert.Contains("  $.order.id of step 1 → path segment 3 of step 2 (seen in 2 of 2 recordings)", text.ToString(), StringComparison.Ordinal);
        Assert.Contains("not carried (the other recordings of the journey did not send these values back: equal by coincidence):", text.ToString(), StringComparison.Ordinal);
        Assert.Contains("  $.order.total of step 1 → query max of step 2 (seen in 1 of 2 recordings: weak)", text.ToString(), StringComparison.Ordinal);
    }

    /// <summary>Create an order, then read it with the id and ETag it was given and a max the client always sends.</summary>
    private static List<RecordedExchange> Journey(string id, string total, string greeting, string etag, string ifMatch, string sku = "A-1", string price = "10.00") =>
    [
        new RecordedExchange
        {
            TraceId = "t1", SpanId = "s1", Method = "POST", Path = "/api/orders", StartTime = RecordedAt,
            RequestHeaders = [new("content-type", "application/json"), new("x-session-id", id + "-session")],
            RequestBody = Encoding.UTF8.GetBytes("{\"sku\":\"" + sku + "\"}"),
            Status = 201,
            ResponseHeaders = [new("content-type", "application/json"), new("etag", etag)],
            ResponseBody = Encoding.UTF8.GetBytes("{\"order\":{\"id\":\"" + id + "\",\"total\":\"" + total + "\",\"greeting\":\"" + greeting + "\",\"price\":\"" + price + "\"}}"),
        },
        new RecordedExchange
        {
            TraceId = "t2", SpanId = "s2", Method = "GET", Path = "/api/orders/" + id, Query = "max=1250", StartTime = RecordedAt.AddSeconds(1),
            RequestHeaders = [new("if-match", ifMatch)],
            Status = 200,
            ResponseHeaders = [new("content-type", "application/json")],
            ResponseBody = Encoding.UTF8.GetBytes("{\"order\":{\"id\":\"" + id + "\",\"status\":\"open\"}}"),
        },
    ];
}
