using System.Text;
using System.Text.Json;
using SpIstio.Core.Configuration;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;

namespace SpIstio.Core.Tests.Redaction;

/// <summary>
/// The redaction corpus: every planted secret or personal value, in every place traffic carries
/// it (request and response headers of any name, query, JSON, form, multipart, XML, plain text),
/// must be gone with the default options; every look-alike (order numbers, timestamps, UUIDs,
/// ISBNs, prices, ids) must come through untouched with nothing at all redacted.
/// </summary>
public sealed class RedactionCorpusTests
{
    private const string Pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----";

    private static readonly Redactor _default = Redactor.Create(new RedactionOptions());

    /// <summary>Planted values: the text placed, and the parts of it that must not survive.</summary>
    public static readonly (string Name, string Text, string[] Secrets)[] Planted =
    [
        ("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFkYSJ9.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", ["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"]),
        ("aws access key id", "AKIAIOSFODNN7EXAMPLE", ["AKIAIOSFODNN7EXAMPLE"]),
        ("aws session key id", "ASIAY34FZKBOKMUTVV7A", ["ASIAY34FZKBOKMUTVV7A"]),
        ("aws secret named", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]),
        ("github classic", "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", ["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"]),
        ("github fine-grained", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU", ["github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"]),
        ("slack", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", ["xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"]),
        ("stripe secret", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", ["sk_live_4eC39HqLyjWDarjtT1zdp7dc"]),
        ("stripe restricted", "rk_live_51H8x2bK9aQz7YtPq3LmNoPqRs", ["rk_live_51H8x2bK9aQz7YtPq3LmNoPqRs"]),
        ("google api key", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", ["AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"]),
        ("pem private key", Pem, ["MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"]),
        ("bearer", "Bearer 8f14e45fceea167a5a36dedd4bea2543", ["8f14e45fceea167a5a36dedd4bea2543"]),
        ("bearer lower", "sent with bearer mF_9.B5f-4.1JqM as usual", ["mF_9.B5f-4.1JqM"]),
        ("email", "ana.silva+trips@example.co.uk", ["ana.silva+trips@example.co.uk"]),
        ("email upper", "Contact: J.Doe@Mail.Example.COM today", ["J.Doe@Mail.Example.COM"]),
        ("e164", "+14155552671", ["4155552671"]),
        ("e164 spaced", "call +44 20 7946 0958 now", ["7946 0958"]),
        ("nanp", "(415) 555-2671", ["555-2671"]),
        ("nanp dashed", "415-555-2671", ["415-555-2671"]),
        ("uk national", "020 7946 0958", ["020 7946 0958"]),
        ("fr national", "06 12 34 56 78", ["06 12 34 56 78"]),
        ("card", "4111 1111 1111 1111", ["4111 1111 1111 1111"]),
    ];

    /// <summary>Values that look like the planted ones and must be kept.</summary>
    public static readonly string[] LookAlikes =
    [
        "ORD-2024-000123",
        "order 100234567",
        "1732612345678",
        "2024-11-26T10:15:30.123Z",
        "2024-11-26 10:15:30",
        "26.11.2024",
        "01.02.2024",
        "9f1c2d3e-4b5a-4c6d-8e7f-001122334455",
        "978-3-16-148410-0",
        "ISBN 0-306-40615-2",
        "1,299.00",
        "EUR 49.99",
        "R 1234-5678",
        "192.168.10.20",
        "k3J9fQ2LmN8pR7sT1vW4xY6zA0bC5dE2fG7hI9jK",
        "Asia/Tokyo",
        "the bearer of this letter",
        "@media screen",
        "v1.2.3",
        "4000-1234-5678",
        "ABCDEFGHIJ0123456789",
        "sku 42-1337",
    ];

    /// <summary>The places one value is put in: each builds an exchange holding the value once.</summary>
    public static readonly (string Name, Func<string, Exchange> Build)[] Places =
    [
        ("request header", v => WithHeader(v, response: false)),
        ("response header", v => WithHeader(v, response: true)),
        ("query", v => new Exchange { Method = "GET", Path = "/search", Query = "lang=en&note=" + Uri.EscapeDataString(v) + "&page=2" }),
        ("json request", v => WithBody(false, "application/json", "{\"trip\":{\"note\":" + JsonSerializer.Serialize("before " + v + " after") + ",\"seats\":2}}")),
        ("json response", v => WithBody(true, "application/json", "{\"items\":[{\"id\":7,\"text\":" + JsonSerializer.Serialize(v) + "}]}")),
        ("form", v => WithBody(false, "application/x-www-form-urlencoded", "city=lisbon&note=" + Uri.EscapeDataString(v).Replace("%20", "+", StringComparison.Ordinal))),
        ("multipart", v => WithBody(false, "multipart/form-data; boundary=XyZ", "--XyZ\r\nContent-Disposition: form-data; name=\"city\"\r\n\r\nlisbon\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n" + v + "\r\n--XyZ--\r\n")),
        ("xml", v => WithBody(true, "application/xml", "<booking><city>lisbon</city><note>" + v + "</note></booking>")),
        ("plain text request", v => WithBody(false, "text/plain", "2024-11-26 10:00:00 INFO user note: " + v + "\nnext line\n")),
        ("plain text response", v => WithBody(true, "text/plain; charset=utf-8", v)),
        ("grpc request message", v => WithGrpc(response: false, Protobuf.String(1, "before " + v + " after", Protobuf.Varint(2, 42)))),
        ("grpc nested response message", v => WithGrpc(response: true, Protobuf.Varint(2, 7, Protobuf.Message(3, Protobuf.String(1, v))))),
    ];

    public static TheoryData<string, string> PlantedCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var (name, _, _) in Planted)
        {
            foreach (var (place, _) in Places)
            {
                data.Add(name, place);
            }
        }

        return data;
    }

    public static TheoryData<string, string> LookAlikeCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var value in LookAlikes)
        {
            foreach (var (place, _) in Places)
            {
                data.Add(value, place);
            }
        }

        return data;
    }

    [Fact]
    public void Corpus_HasAtLeast150PlantedValuesAndAsManyLookAlikes()
    {
        Assert.True(Planted.Length * Places.Length >= 150, $"{Planted.Length * Places.Length} planted");
        Assert.True(LookAlikes.Length * Places.Length >= Planted.Length * Places.Length);
    }

    [Theory]
    [MemberData(nameof(PlantedCases))]
    public void PlantedValue_IsGoneFromEveryPlace(string name, string place)
    {
        var (_, text, secrets) = Planted.Single(p => p.Name == name);
        var exchange = Build(place, place.Contains("header", StringComparison.Ordinal) ? text.Replace('\n', ' ') : text);

        var count = _default.Redact(exchange);

        var all = Serialise(exchange);
        Assert.True(count > 0, $"nothing redacted: {all}");
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(secret, all, StringComparison.Ordinal);
            Assert.DoesNotContain(Uri.EscapeDataString(secret), all, StringComparison.Ordinal);
        }

        Assert.Contains(Redactor.Marker, all, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(LookAlikeCases))]
    public void LookAlike_IsKeptEverywhereAndNothingIsRedacted(string value, string place)
    {
        var exchange = Build(place, value);
        var before = Serialise(exchange);

        var count = _default.Redact(exchange);

        Assert.Equal(0, count);
        Assert.Equal(before, Serialise(exchange));
    }

    [Fact]
    public void PhoneField_AnyShape_IsMaskedAndAFlagUnderItIsKept()
    {
        var exchange = WithBody(false, "application/json", """{"mobile":"5551234","phoneVerified":true,"contact":{"tel":4155552671},"Phone-Number":"n/a"}""");

        _default.Redact(exchange);

        Assert.Equal("""{"mobile":"[REDACTED]","phoneVerified":true,"contact":{"tel":"[REDACTED]"},"Phone-Number":"[REDACTED]"}""", Encoding.UTF8.GetString(exchange.RequestBody.Content.Span));
    }

    [Fact]
    public void PiiKeep_LeavesAddressesAndPhonesButStillMasksSecrets()
    {
        var redactor = Redactor.Create(new RedactionOptions { Pii = PiiMode.Keep });
        var exchange = WithBody(false, "text/plain", "ana@example.com +14155552671 AKIAIOSFODNN7EXAMPLE");

        redactor.Redact(exchange);

        Assert.Equal("ana@example.com +14155552671 [REDACTED]", Encoding.UTF8.GetString(exchange.RequestBody.Content.Span));
    }

    [Fact]
    public void PiiHash_SameAddressGivesTheSameTokenAcrossExchangesAndCase()
    {
        var redactor = Redactor.Create(new RedactionOptions { Pii = PiiMode.Hash, HashKey = "k-0123456789" });
        var first = WithBody(false, "application/json", """{"note":"from Ana@Example.com"}""");
        var second = WithBody(true, "text/plain", "reply to ana@example.com");
        var other = WithBody(true, "text/plain", "reply to bob@example.com");

        redactor.Redact(first);
        redactor.Redact(second);
        redactor.Redact(other);

        var token = TokenIn(Encoding.UTF8.GetString(first.RequestBody.Content.Span));
        Assert.StartsWith("[REDACTED:hmac-sha256:", token, StringComparison.Ordinal);
        Assert.Equal(token, TokenIn(Encoding.UTF8.GetString(second.ResponseBody.Content.Span)));
        Assert.NotEqual(token, TokenIn(Encoding.UTF8.GetString(other.ResponseBody.Content.Span)));
    }

    [Fact]
    public void PiiHash_WithoutKey_IsRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => Redactor.Create(new RedactionOptions { Pii = PiiMode.Hash }));

        Assert.Contains("redaction.pii is hash", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OperatorPatternsAndPiiFields_AreRedactedEverywhere()
    {
        var redactor = Redactor.Create(new RedactionOptions { Patterns = ["INT-[0-9]{6}"], PiiFields = ["passport_number"] });
        var exchange = WithBody(false, "application/json", """{"ref":"see INT-123456","passport_number":"X1234567","id":"INT-12"}""");
        exchange.RequestHeaders.Add("x-ticket", "INT-654321");

        redactor.Redact(exchange);

        Assert.Equal("""{"ref":"see [REDACTED]","passport_number":"[REDACTED]","id":"INT-12"}""", Encoding.UTF8.GetString(exchange.RequestBody.Content.Span));
        Assert.Equal(Redactor.MaskValue, exchange.RequestHeaders.Get("x-ticket"));
    }

    [Fact]
    public void Xml_SensitiveElementsAndAttributesAreMasked()
    {
        var exchange = WithBody(true, "text/xml", """<Credentials><AccessKeyId>kept-id</AccessKeyId><SecretAccessKey>abc/def+ghi</SecretAccessKey><user password="p@ss" name="ana"/><Pwd><![CDATA[x<y]]></Pwd></Credentials>""");

        _default.Redact(exchange);

        Assert.Equal("""<Credentials><AccessKeyId>kept-id</AccessKeyId><SecretAccessKey>[REDACTED]</SecretAccessKey><user password="[REDACTED]" name="ana"/><Pwd><![CDATA[[REDACTED]]]></Pwd></Credentials>""", Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
    }

    [Fact]
    public void Multipart_SensitivePartIsMaskedAndABinaryPartIsLeftAlone()
    {
        const string body = "--b1\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--b1\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\nana@example.com\r\n--b1--\r\n";
        var exchange = WithBody(false, "multipart/form-data; boundary=b1", body);

        _default.Redact(exchange);

        Assert.Equal(body.Replace("hunter2", "[REDACTED]", StringComparison.Ordinal), Encoding.UTF8.GetString(exchange.RequestBody.Content.Span));
    }

    [Fact]
    public void UrlHeaders_HaveTheirQueryRedactedLikeTheRequestQuery()
    {
        var exchange = new Exchange();
        exchange.RequestHeaders.Add(":path", "/cb?code=ok&access_token=abc123&email=ana%40example.com");
        exchange.RequestHeaders.Add("referer", "https://shop.example/pay?token=t-1");

        _default.Redact(exchange);

        Assert.Equal("/cb?code=ok&access_token=[REDACTED]&email=[REDACTED]", exchange.RequestHeaders.Get(":path"));
        Assert.Equal("https://shop.example/pay?token=[REDACTED]", exchange.RequestHeaders.Get("referer"));
    }

    private static string TokenIn(string text)
    {
        var start = text.IndexOf(Redactor.Marker, StringComparison.Ordinal);
        Assert.True(start >= 0, text);
        return text[start..(text.IndexOf(']', start) + 1)];
    }

    private static Exchange Build(string place, string value) => Places.Single(p => p.Name == place).Build(value);

    private static Exchange WithHeader(string value, bool response)
    {
        var exchange = new Exchange { Method = "GET", Path = "/" };
        var headers = response ? exchange.ResponseHeaders : exchange.RequestHeaders;
        headers.Add("accept", "application/json");
        headers.Add("x-custom-info", value);
        return exchange;
    }

    private static Exchange WithBody(bool response, string contentType, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var body = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, contentType);
        var exchange = new Exchange { Method = "POST", Path = "/api/notes" };
        if (response)
        {
            exchange.ResponseBody = body;
        }
        else
        {
            exchange.RequestBody = body;
        }

        return exchange;
    }

    // A unary gRPC call as the agent's capture hands it to the redaction: the message lists still
    // bytes (Exchange.GrpcCall) beside the framed bodies holding the same messages.
    private static Exchange WithGrpc(bool response, byte[] message)
    {
        var framed = new byte[5 + message.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)message.Length);
        message.CopyTo(framed, 5);
        var empty = new byte[5];
        var exchange = new Exchange { Method = "POST", Path = "/corpus.Notes/Put" };
        exchange.RequestHeaders.Add("content-type", "application/grpc");
        exchange.ResponseHeaders.Add("content-type", "application/grpc");
        exchange.RequestBody = new CapturedBody(response ? empty : framed, response ? 5 : framed.Length, false, BodyKind.Binary, "application/grpc");
        exchange.ResponseBody = new CapturedBody(response ? framed : empty, response ? framed.Length : 5, false, BodyKind.Binary, "application/grpc");
        exchange.GrpcCall = new GrpcCallMessages(List(exchange.RequestBody), List(exchange.ResponseBody));
        return exchange;

        static GrpcMessageList List(CapturedBody body)
        {
            using var reader = new GrpcFrameReader(GrpcCaptureLimits.Default, null);
            reader.Append(body.Content.Span, TimeSpan.Zero);
            reader.Complete();
            return new GrpcMessageList(reader.MessageCount, reader.Truncated, [.. reader.Messages]);
        }
    }

    private static string Serialise(Exchange exchange)
    {
        var text = new StringBuilder();
        if (exchange.GrpcCall is { } call)
        {
            // What the span will carry: the messages as the attributes list them, read back as text.
            foreach (var message in call.Request.Messages.Concat(call.Response?.Messages ?? []))
            {
                text.Append(Encoding.UTF8.GetString(message.Payload.Span)).Append('\n');
            }
        }

        foreach (var (name, value) in exchange.RequestHeaders)
        {
            text.Append(name).Append(": ").Append(value).Append('\n');
        }

        foreach (var (name, value) in exchange.ResponseHeaders)
        {
            text.Append(name).Append(": ").Append(value).Append('\n');
        }

        text.Append(exchange.Query).Append('\n');
        text.Append(Encoding.UTF8.GetString(exchange.RequestBody.Content.Span)).Append('\n');
        text.Append(Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span));
        return text.ToString();
    }
}

/// <summary>Hand-built protobuf wire bytes for the corpus (field number, wire type, value).</summary>
internal static class Protobuf
{
    public static byte[] String(int field, string value, params byte[][] more) => Message(field, Encoding.UTF8.GetBytes(value), more);

    public static byte[] Message(int field, byte[] value, params byte[][] more) =>
        [.. Varint((ulong)((field << 3) | 2)), .. Varint((ulong)value.Length), .. value, .. more.SelectMany(m => m)];

    public static byte[] Varint(int field, ulong value, params byte[][] more) =>
        [.. Varint((ulong)(field << 3)), .. Varint(value), .. more.SelectMany(m => m)];

    private static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        while (value >= 0x80)
        {
            bytes.Add((byte)(value | 0x80));
            value >>= 7;
        }

        bytes.Add((byte)value);
        return [.. bytes];
    }
}
