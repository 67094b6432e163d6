using System.Text;
using SpIstio.Backend.Har;
using static SpIstio.Backend.Tests.Storage.TestSpans;

namespace SpIstio.Backend.Tests.Api;

/// <summary>Body texts longer than one write segment come out of a HAR export whole and read back the same.</summary>
public sealed class HarLargeBodyTests
{
    [Fact]
    public void A_large_body_with_quotes_and_a_surrogate_pair_on_a_segment_boundary_round_trips()
    {
        // Quotes and backslashes force escaping; the emoji (a surrogate pair) straddles the 8,192nd character.
        var text = new StringBuilder();
        text.Append("{\"items\":[");
        while (text.Length < 8_191)
        {
            text.Append("{\"city\":\"lisbon\\\\paris\"},");
        }

        text.Length = 8_191;
        text.Append("\U0001F600 tail ");
        while (text.Length < 100_000)
        {
            text.Append("{\"seat\":\"12A\",\"note\":\"<tag> & \u00e9\"},");
        }

        string body = text.ToString();
        var span = Exchange(1, 1) with
        {
            Method = "POST",
            RequestBody = Encoding.UTF8.GetBytes(body),
            ResponseBody = Encoding.UTF8.GetBytes(body),
            AttributesJson = "{}",
        };

        var document = HarBuilder.Parse(HarBuilder.Serialize(HarBuilder.Build([span])));

        var entry = Assert.Single(document.Log.Entries);
        Assert.Equal(body, entry.Request.PostData!.Text);
        Assert.Equal(body, entry.Response.Content.Text);
    }
}
