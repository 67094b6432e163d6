using System.Text;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;

namespace SpIstio.Core.Tests.Redaction;

/// <summary>
/// The pre-scan counts a field-name anchor only where a field name can be (a JSON name before its
/// <c>:</c>, an XML element or attribute name): every sensitive name in every such place is still
/// redacted, and names met by chance in values are not read as fields.
/// </summary>
public sealed class NameContextTests
{
    private static readonly Redactor _default = Redactor.Create(new RedactionOptions());

    [Theory]
    [InlineData("{\"password\":\"hunter2-x\"}")]
    [InlineData("{\"id\":1,\"note\":\"n\",\"apikey\":\"hunter2-x\"}")]
    [InlineData("{\"password\"\t\r\n :  \"hunter2-x\"}")]
    [InlineData("{\"a\":{\"b\":{\"c\":{\"client_secret\":\"hunter2-x\"}}}}")]
    [InlineData("[{\"token\":\"hunter2-x\"},{\"token\":\"hunter2-x\"},{\"sku\":\"A1\"}]")]
    [InlineData("{\"items\":[{\"sku\":\"A1\",\"card\":{\"cvv\":\"hunter2-x\"}}]}")]
    [InlineData("{\"x\\\"api_key\":\"hunter2-x\"}")]
    [InlineData("{\"api_key\\\\\":\"hunter2-x\"}")]
    [InlineData("{\"note\":\"a \\\"quoted\\\" key\",\"secret\":\"hunter2-x\"}")]
    [InlineData("{\"phone\":\"hunter2-x\"}")]
    [InlineData("{\"Tel\" : \"hunter2-x\"}")]
    public void JsonName_InEveryPlace_IsRedacted(string json)
    {
        var redacted = Redact(json, "application/json", out var count);

        Assert.DoesNotContain("hunter2-x", redacted, StringComparison.Ordinal);
        Assert.True(count > 0);
    }

    [Theory]
    [InlineData("log line \"password\": \"hunter2-x\" and more")]
    [InlineData("\"password\"   :\"hunter2-x\"")]
    [InlineData("cut {\"a\":1, \"secret\"\u00A0: \"hunter2-x\"")]
    [InlineData("trailing \"api_key\":\"hunter2-x")]
    public void PairInText_IsRedacted(string text)
    {
        var redacted = Redact(text, "text/plain", out _);

        Assert.DoesNotContain("hunter2-x", redacted, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("<user><password>hunter2-x</password></user>")]
    [InlineData("<login user=\"ana\" password=\"hunter2-x\"/>")]
    [InlineData("<login\n  secret = 'hunter2-x'></login>")]
    [InlineData("<s:Envelope><s:Body><ns:SecretAccessKey>hunter2-x</ns:SecretAccessKey></s:Body></s:Envelope>")]
    [InlineData("<r><Token>hunter2-x</Token></r>")]
    public void XmlName_IsRedacted(string xml)
    {
        var redacted = Redact(xml, "application/xml", out _);

        Assert.DoesNotContain("hunter2-x", redacted, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("password=hunter2-x")]
    [InlineData("a=1&b=2&api_key=hunter2-x")]
    [InlineData("a=1&card_number=hunter2-x&b=2")]
    public void FormName_IsRedacted(string form)
    {
        var redacted = Redact(form, "application/x-www-form-urlencoded", out _);

        Assert.DoesNotContain("hunter2-x", redacted, StringComparison.Ordinal);
    }

    [Fact]
    public void MultipartFieldName_IsRedacted()
    {
        var body = "--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nthe key\r\n"
            + "--b\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2-x\r\n--b--\r\n";

        var redacted = Redact(body, "multipart/form-data; boundary=b", out _);

        Assert.DoesNotContain("hunter2-x", redacted, StringComparison.Ordinal);
        Assert.Contains("the key", redacted, StringComparison.Ordinal);
    }

    [Fact]
    public void NameAnchorsInValues_LeaveTheBodyAsItIs()
    {
        // Name pieces by chance: in base64, in prose, in an XML-looking string of a JSON body.
        var random = new Random(3);
        var raw = new byte[3000];
        random.NextBytes(raw);
        var json = "{\"data\":\"" + Convert.ToBase64String(raw) + "keyTELpanFax\",\"note\":\"the key to the cell: a pan\",\"x\":\"<key>v</key>\"}";
        var bytes = Encoding.UTF8.GetBytes(json);
        var exchange = new Exchange { ResponseBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json") };

        var count = _default.Redact(exchange);

        Assert.Equal(0, count);
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(exchange.ResponseBody.Content, out var segment));
        Assert.Same(bytes, segment.Array);
    }

    [Fact]
    public void NameAfterManyChanceAnchorsInOneString_IsRedacted()
    {
        // The anchors in the long string share one quote search; the name after it is still judged.
        var json = "{\"data\":\"" + string.Concat(Enumerable.Repeat("xkeyx/telx+", 2000)) + "\",\"token\":\"hunter2-x\"}";

        var redacted = Redact(json, "application/json", out var count);

        Assert.DoesNotContain("hunter2-x", redacted, StringComparison.Ordinal);
        Assert.Equal(1, count);
    }

    private static string Redact(string text, string contentType, out int count)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var exchange = new Exchange { ResponseBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, contentType) };
        count = _default.Redact(exchange);
        return Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span);
    }
}
