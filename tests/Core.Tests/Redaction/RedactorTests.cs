using System.Text;
using System.Text.Json.Nodes;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;

namespace SpIstio.Core.Tests.Redaction;

public sealed class RedactorTests
{
    private static readonly Redactor _default = Redactor.Create(new RedactionOptions());

    [Theory]
    [InlineData("authorization")]
    [InlineData("Authorization")]
    [InlineData("PROXY-AUTHORIZATION")]
    [InlineData("cookie")]
    [InlineData("Set-Cookie")]
    [InlineData("x-api-key")]
    [InlineData("X-Public-Key")]
    public void Redact_BuiltInHeader_IsMasked(string name)
    {
        var exchange = new Exchange();
        exchange.RequestHeaders.Add(name, "secret-value-123");
        exchange.RequestHeaders.Add("accept", "application/json");
        exchange.ResponseHeaders.Add(name, "other-secret");

        var count = _default.Redact(exchange);

        Assert.Equal(2, count);
        Assert.Equal(Redactor.MaskValue, exchange.RequestHeaders.Get(name));
        Assert.Equal(Redactor.MaskValue, exchange.ResponseHeaders.Get(name));
        Assert.Equal("application/json", exchange.RequestHeaders.Get("accept"));
        Assert.Equal("2", exchange.Attributes[Redactor.CountAttribute]);
    }

    [Fact]
    public void Redact_HeaderNamedLikeAToken_IsMasked()
    {
        var exchange = new Exchange();
        exchange.RequestHeaders.Add("x-auth-token", "abc");

        _default.Redact(exchange);

        Assert.Equal(Redactor.MaskValue, exchange.RequestHeaders.Get("x-auth-token"));
    }

    [Fact]
    public void Redact_AddedAndKeptHeaders_AreHonoured()
    {
        var redactor = Redactor.Create(new RedactionOptions { Headers = ["X-Tenant-Secret-Id"], KeepHeaders = ["cookie"] });
        var exchange = new Exchange();
        exchange.RequestHeaders.Add("x-tenant-secret-id", "t-42");
        exchange.RequestHeaders.Add("cookie", "theme=dark");
        exchange.RequestHeaders.Add("authorization", "Bearer abc");

        redactor.Redact(exchange);

        Assert.Equal(Redactor.MaskValue, exchange.RequestHeaders.Get("x-tenant-secret-id"));
        Assert.Equal("theme=dark", exchange.RequestHeaders.Get("cookie"));
        Assert.Equal(Redactor.MaskValue, exchange.RequestHeaders.Get("authorization"));
    }

    [Fact]
    public void Redact_NothingSensitive_ChangesNothingAndSetsNoCount()
    {
        var exchange = JsonExchange("""{"author":"Le Guin","tokenizer":"bpe","max_tokens":100,"company":"ACME"}""");
        exchange.RequestHeaders.Add("content-type", "application/json");
        var before = exchange.RequestBody;

        var count = _default.Redact(exchange);

        Assert.Equal(0, count);
        Assert.Same(before, exchange.RequestBody);
        Assert.False(exchange.Attributes.ContainsKey(Redactor.CountAttribute));
    }

    [Fact]
    public void Redact_JsonFieldsAtDepthFiveInsideArrays_AreMaskedAndTheRestIsIdentical()
    {
        const string json = """
            {
              "trip": {"legs": [
                {"segments": [{"traveller": {"name": "Ada", "password": "hunter2", "loyalty": {"client_secret": {"nested": true}, "level": 3}}}]},
                {"segments": [{"traveller": {"name": "Bob", "accessToken": "eyJhbGci", "refresh_token": 12345, "Api-Key": null}}]}
              ]},
              "author": "kept",
              "note": "a \"quoted\" word"
            }
            """;
        var exchange = JsonExchange(json);

        var count = _default.Redact(exchange);

        var result = JsonNode.Parse(BodyText(exchange.RequestBody))!;
        var first = result["trip"]!["legs"]![0]!["segments"]![0]!["traveller"]!;
        var second = result["trip"]!["legs"]![1]!["segments"]![0]!["traveller"]!;
        Assert.Equal(5, count);
        Assert.Equal("[REDACTED]", (string?)first["password"]);
        Assert.Equal("[REDACTED]", (string?)first["loyalty"]!["client_secret"]);
        Assert.Equal("[REDACTED]", (string?)second["accessToken"]);
        Assert.Equal("[REDACTED]", (string?)second["refresh_token"]);
        Assert.Equal("[REDACTED]", (string?)second["Api-Key"]);

        // Put the originals back: the documents must then be equal, so nothing else changed.
        var original = JsonNode.Parse(json)!;
        var originalFirst = original["trip"]!["legs"]![0]!["segments"]![0]!["traveller"]!;
        var originalSecond = original["trip"]!["legs"]![1]!["segments"]![0]!["traveller"]!;
        first["password"] = originalFirst["password"]!.DeepClone();
        first["loyalty"]!["client_secret"] = originalFirst["loyalty"]!["client_secret"]!.DeepClone();
        second["accessToken"] = originalSecond["accessToken"]!.DeepClone();
        second["refresh_token"] = originalSecond["refresh_token"]!.DeepClone();
        second["Api-Key"] = null;
        Assert.True(JsonNode.DeepEquals(original, result), result.ToJsonString());
    }

    [Fact]
    public void Redact_Json_PreservesFormattingOutsideRedactedValues()
    {
        var exchange = JsonExchange("{ \"user\" : \"ada\",\n  \"password\" : \"p@ss\" }");

        _default.Redact(exchange);

        Assert.Equal("{ \"user\" : \"ada\",\n  \"password\" : \"[REDACTED]\" }", BodyText(exchange.RequestBody));
    }

    [Fact]
    public void Redact_EscapedJsonName_IsStillRecognised()
    {
        var exchange = JsonExchange("""{"pass\u0077ord":"x"}""");

        _default.Redact(exchange);

        Assert.DoesNotContain("\"x\"", BodyText(exchange.RequestBody), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("author")]
    [InlineData("tokenizer")]
    [InlineData("total_tokens")]
    [InlineData("token_type")]
    [InlineData("company")]
    [InlineData("className")]
    [InlineData("authority")]
    public void IsSensitiveField_Lookalike_IsKept(string name) =>
        Assert.False(_default.IsSensitiveField(name));

    [Theory]
    [InlineData("password")]
    [InlineData("newPassword")]
    [InlineData("accessToken")]
    [InlineData("refresh_token")]
    [InlineData("client_secret")]
    [InlineData("x-api-key")]
    [InlineData("apiKey")]
    [InlineData("Authorization")]
    [InlineData("auth")]
    [InlineData("card_number")]
    [InlineData("creditCard")]
    [InlineData("cvv")]
    [InlineData("CVC")]
    [InlineData("ssn")]
    [InlineData("customer_ssn")]
    [InlineData("pan")]
    [InlineData("social security number")]
    public void IsSensitiveField_SecretName_IsRedacted(string name) =>
        Assert.True(_default.IsSensitiveField(name));

    [Fact]
    public void Redact_AddedAndKeptFields_AreHonoured()
    {
        var redactor = Redactor.Create(new RedactionOptions { Fields = ["Date-Of-Birth"], KeepFields = ["csrf_token"] });
        var exchange = JsonExchange("""{"date_of_birth":"1970-01-01","csrfToken":"abc","password":"x"}""");

        redactor.Redact(exchange);

        var result = JsonNode.Parse(BodyText(exchange.RequestBody))!;
        Assert.Equal("[REDACTED]", (string?)result["date_of_birth"]);
        Assert.Equal("abc", (string?)result["csrfToken"]);
        Assert.Equal("[REDACTED]", (string?)result["password"]);
    }

    [Fact]
    public void Redact_FormBody_MasksSensitiveFields()
    {
        var exchange = new Exchange
        {
            RequestBody = TextBody("username=ada&password=hunter%202&remember=on&api_key=k+1", "application/x-www-form-urlencoded"),
        };

        _default.Redact(exchange);

        Assert.Equal("username=ada&password=[REDACTED]&remember=on&api_key=[REDACTED]", BodyText(exchange.RequestBody));
    }

    [Fact]
    public void Redact_QueryString_MasksSensitiveParameters()
    {
        var exchange = new Exchange();
        exchange.SetTarget("/search?q=lisbon&token=abc123&api%5Fkey=zzz&page=2");

        var count = _default.Redact(exchange);

        Assert.Equal(2, count);
        Assert.Equal("q=lisbon&token=[REDACTED]&api%5Fkey=[REDACTED]&page=2", exchange.Query);
    }

    [Fact]
    public void Redact_JsonCutInsideASecretByTheCaptureLimit_StillMasksIt()
    {
        var exchange = new Exchange
        {
            RequestBody = TextBody("""{"user":"ada","items":[1,2],"password":"hunter2-and-more""", "application/json", truncated: true),
        };

        _default.Redact(exchange);

        var text = BodyText(exchange.RequestBody);
        Assert.DoesNotContain("hunter2", text, StringComparison.Ordinal);
        Assert.Equal("{\"user\":\"ada\",\"items\":[1,2],\"password\":\"[REDACTED]\"", text);
        Assert.True(exchange.RequestBody.Truncated);
    }

    [Fact]
    public void Redact_JsonCutInsideASecretObject_StillMasksIt()
    {
        var exchange = new Exchange
        {
            RequestBody = TextBody("""{"a":1,"credentials":{"client_secret":"s3cr3t","x":[1,""", "application/json", truncated: true),
        };

        _default.Redact(exchange);

        Assert.DoesNotContain("s3cr3t", BodyText(exchange.RequestBody), StringComparison.Ordinal);
    }

    [Fact]
    public void Redact_JsonCutInsideAStringHoldingACard_MasksTheCard()
    {
        var exchange = new Exchange
        {
            RequestBody = TextBody("{\"note\":\"paid with 4111111111111111 and then some", "application/json", truncated: true),
        };

        var count = _default.Redact(exchange);

        Assert.Equal(1, count);
        Assert.Equal("{\"note\":\"paid with [REDACTED] and then some", BodyText(exchange.RequestBody));
    }

    [Fact]
    public void Redact_BrokenJson_FallsBackToThePatternScan()
    {
        var exchange = new Exchange
        {
            ResponseBody = TextBody("""{"ok":true,, "token": "abc.def", "apiKey": 9981, "secret": "unterminated""", "application/json"),
        };

        var count = _default.Redact(exchange);

        var text = BodyText(exchange.ResponseBody);
        Assert.Equal(3, count);
        Assert.Equal("{\"ok\":true,, \"token\": \"[REDACTED]\", \"apiKey\": \"[REDACTED]\", \"secret\": \"[REDACTED]\"", text);
    }

    [Fact]
    public void Redact_JsonInsidePlainTextLog_IsMasked()
    {
        var exchange = new Exchange
        {
            ResponseBody = TextBody("""login failed for {"user":"ada","password":"hunter2"} at 12:00""", "text/plain"),
        };

        _default.Redact(exchange);

        Assert.Equal("""login failed for {"user":"ada","password":"[REDACTED]"} at 12:00""", BodyText(exchange.ResponseBody));
    }

    [Theory]
    [InlineData("4111111111111111")]
    [InlineData("4111 1111 1111 1111")]
    [InlineData("4111-1111-1111-1111")]
    [InlineData("5555555555554444")]
    [InlineData("5555 5555 5555 4444")]
    [InlineData("378282246310005")]
    [InlineData("3782 822463 10005")]
    public void Redact_CardNumberInPlainText_IsMasked(string card)
    {
        var exchange = new Exchange { RequestBody = TextBody($"pay with {card} please", "text/plain") };

        _default.Redact(exchange);

        Assert.Equal("pay with [REDACTED] please", BodyText(exchange.RequestBody));
    }

    [Fact]
    public void Redact_CardNumbersInJsonStringsAndNumbers_AreMaskedAndJsonStaysValid()
    {
        var exchange = JsonExchange("""{"memo":"card 4111 1111 1111 1111 exp 12/29","raw":5555555555554444,"orderId":4111111111111112}""");

        var count = _default.Redact(exchange);

        var result = JsonNode.Parse(BodyText(exchange.RequestBody))!;
        Assert.Equal(2, count);
        Assert.Equal("card [REDACTED] exp 12/29", (string?)result["memo"]);
        Assert.Equal("[REDACTED]", (string?)result["raw"]);
        Assert.Equal(4111111111111112, (long)result["orderId"]!);
    }

    [Theory]
    [InlineData("order 4111111111111112 shipped")]
    [InlineData("ts=1700000000000 ms")]
    [InlineData("id 12345678901234567890123 end")]
    [InlineData("version v4111111111111111")]
    public void Redact_NumberThatIsNotACard_IsKept(string text)
    {
        var exchange = new Exchange { RequestBody = TextBody(text, "text/plain") };

        var count = _default.Redact(exchange);

        Assert.Equal(0, count);
        Assert.Equal(text, BodyText(exchange.RequestBody));
    }

    [Fact]
    public void Redact_CardFollowedByCvv_IsStillFound()
    {
        var exchange = new Exchange { RequestBody = TextBody("4111 1111 1111 1111 123", "text/plain") };

        _default.Redact(exchange);

        Assert.Equal("[REDACTED] 123", BodyText(exchange.RequestBody));
    }

    [Fact]
    public void Redact_CardNumbersOff_KeepsThem()
    {
        var redactor = Redactor.Create(new RedactionOptions { CardNumbers = false });
        var exchange = new Exchange { RequestBody = TextBody("4111111111111111", "text/plain") };

        redactor.Redact(exchange);

        Assert.Equal("4111111111111111", BodyText(exchange.RequestBody));
    }

    [Fact]
    public void Redact_HashMode_EqualValuesJoinDifferentValuesDoNot()
    {
        var redactor = Redactor.Create(new RedactionOptions { Mode = RedactionMode.Hash, HashKey = "k1" });
        var exchange = JsonExchange("""{"a":{"token":"alpha"},"b":{"token":"alpha"},"c":{"token":"beta"}}""");
        exchange.RequestHeaders.Add("x-api-key", "alpha");

        redactor.Redact(exchange);

        var result = JsonNode.Parse(BodyText(exchange.RequestBody))!;
        var a = (string)result["a"]!["token"]!;
        var b = (string)result["b"]!["token"]!;
        var c = (string)result["c"]!["token"]!;
        Assert.StartsWith(Redactor.Marker, a, StringComparison.Ordinal);
        Assert.Matches("^\\[REDACTED:hmac-sha256:[0-9a-f]{16}\\]$", a);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal(a, exchange.RequestHeaders.Get("x-api-key"));
        Assert.DoesNotContain("alpha", BodyText(exchange.RequestBody), StringComparison.Ordinal);
    }

    [Fact]
    public void Replacement_HashMode_DependsOnTheKey()
    {
        var one = Redactor.Create(new RedactionOptions { Mode = RedactionMode.Hash, HashKey = "key-one" });
        var two = Redactor.Create(new RedactionOptions { Mode = RedactionMode.Hash, HashKey = "key-two" });

        Assert.NotEqual(one.Replacement("s3cret"), two.Replacement("s3cret"));
        Assert.Equal(one.Replacement("s3cret"), one.Replacement("s3cret"));
    }

    [Fact]
    public void Redact_HashModeCard_JoinsWithAndWithoutSeparators()
    {
        var redactor = Redactor.Create(new RedactionOptions { Mode = RedactionMode.Hash, HashKey = "k" });
        var exchange = new Exchange { RequestBody = TextBody("4111111111111111 / 4111-1111-1111-1111", "text/plain") };

        redactor.Redact(exchange);

        var parts = BodyText(exchange.RequestBody).Split(" / ");
        Assert.StartsWith("[REDACTED:hmac-sha256:", parts[0], StringComparison.Ordinal);
        Assert.Equal(parts[0], parts[1]);
    }

    [Fact]
    public void Create_HashModeWithoutKey_Throws() =>
        Assert.Throws<ArgumentException>(() => Redactor.Create(new RedactionOptions { Mode = RedactionMode.Hash }));

    [Fact]
    public void Redact_Disabled_ChangesNothing()
    {
        var redactor = Redactor.Create(new RedactionOptions { Enabled = false });
        var exchange = JsonExchange("""{"password":"hunter2","card":"4111111111111111"}""");
        exchange.RequestHeaders.Add("authorization", "Bearer abc");
        exchange.SetTarget("/x?token=abc");

        var count = redactor.Redact(exchange);

        Assert.Equal(0, count);
        Assert.Equal("Bearer abc", exchange.RequestHeaders.Get("authorization"));
        Assert.Equal("token=abc", exchange.Query);
        Assert.Contains("hunter2", BodyText(exchange.RequestBody), StringComparison.Ordinal);
    }

    [Fact]
    public void Redact_TwiceOnTheSameExchange_DoesNotRedactOrCountAgain()
    {
        var redactor = Redactor.Create(new RedactionOptions { Mode = RedactionMode.Hash, HashKey = "k" });
        var exchange = JsonExchange("""{"password":"hunter2"}""");
        exchange.RequestHeaders.Add("cookie", "sid=1");

        redactor.Redact(exchange);
        var first = BodyText(exchange.RequestBody);
        var second = redactor.Redact(exchange);

        Assert.Equal(0, second);
        Assert.Equal(first, BodyText(exchange.RequestBody));
        Assert.Equal("2", exchange.Attributes[Redactor.CountAttribute]);
    }

    [Fact]
    public void Redact_Body_KeepsWireSizeAndTruncationFlags()
    {
        var body = new CapturedBody(Encoding.UTF8.GetBytes("""{"secret":"x"}"""), 9000, true, BodyKind.Text, "application/json");
        var exchange = new Exchange { ResponseBody = body };

        _default.Redact(exchange);

        Assert.Equal(9000, exchange.ResponseBody.OriginalSize);
        Assert.True(exchange.ResponseBody.Truncated);
        Assert.Equal("application/json", exchange.ResponseBody.ContentType);
    }

    [Fact]
    public void Redact_BinaryBody_IsLeftAlone()
    {
        var bytes = Encoding.ASCII.GetBytes("4111111111111111");
        var exchange = new Exchange { RequestBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Binary) };

        _default.Redact(exchange);

        Assert.Equal(bytes, exchange.RequestBody.Content.ToArray());
    }

    [Fact]
    public void Redact_CardOrPhoneAtAnyOffsetAmongBase64Digits_IsFoundWhereverItCrossesTheScanBlocks()
    {
        // The digit pre-scan reads 32 (or 16) bytes at a time: put each number at every offset across two
        // blocks, after filler whose scattered digits must not hide it or be taken for it.
        const string Filler = "Zk9vYmFy0x1Q2w3E4r5T6y7U8i9O0pAsDfGhJkLzXcVbNm1q2W3e4R5t6Y7u8I9o0P";
        foreach (var number in new[] { "4111 1111 1111 1111", "+44 20 7946 0958" })
        {
            for (var offset = 0; offset < 66; offset++)
            {
                var text = Filler[..offset] + "; " + number + " ;" + Filler;
                var exchange = new Exchange { ResponseBody = TextBody(text, "text/plain") };

                _default.Redact(exchange);

                var redacted = BodyText(exchange.ResponseBody);
                Assert.DoesNotContain(number, redacted, StringComparison.Ordinal);
                Assert.Contains(Filler, redacted, StringComparison.Ordinal);
            }
        }
    }

    private static Exchange JsonExchange(string json) =>
        new() { RequestBody = TextBody(json, "application/json") };

    private static CapturedBody TextBody(string text, string contentType, bool truncated = false)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        return new CapturedBody(bytes, truncated ? bytes.Length * 2 : bytes.Length, truncated, BodyKind.Text, contentType);
    }

    private static string BodyText(CapturedBody body) => Encoding.UTF8.GetString(body.Content.Span);
}
