using System.Text;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;

namespace SpIstio.Core.Tests.Redaction;

/// <summary>
/// The pre-scan's anchor search runs on the body's UTF-8 bytes 16 at a time with a three-byte
/// fingerprint: an anchor must be found at every offset across the blocks, in any ASCII case,
/// at the very end of a body, and among multi-byte UTF-8 characters.
/// </summary>
public sealed class AnchorScanTests
{
    // Multi-byte UTF-8 (2, 3 and 4 bytes) and letters that share nibbles with the anchors.
    private const string Filler = "héllo wörld ☃ 𝄞 Kaffee sku qty BEAR ey AKI gh_ xo sk_li -----BEGI ";

    private static readonly Redactor _default = Redactor.Create(new RedactionOptions());

    public static TheoryData<string, string> Planted => new()
    {
        { "AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE" },
        { "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", "wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx" },
        { "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGhIjKlMnOpQrStUvWx" },
        { "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc" },
        { "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "SyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe" },
        { "Bearer 8f14e45fceea167a5a36dedd4bea2543", "8f14e45fceea167a5a36dedd4bea2543" },
        { "BEARER 8f14e45fceea167a5a36dedd4bea2543", "8f14e45fceea167a5a36dedd4bea2543" },
        { "bearer 8f14e45fceea167a5a36dedd4bea2543", "8f14e45fceea167a5a36dedd4bea2543" },
        { "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFkYSJ9.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c" },
    };

    [Theory]
    [MemberData(nameof(Planted))]
    public void PlantedValue_AtEveryOffsetAndAtTheEnd_IsRedacted(string value, string secret)
    {
        for (var offset = 0; offset < 40; offset++)
        {
            var before = Prefix(offset) + Filler;
            foreach (var text in new[] { before + value + " " + Filler, before + value })
            {
                var redacted = RedactText(_default, text, "text/plain");

                Assert.DoesNotContain(secret, redacted, StringComparison.Ordinal);
                Assert.StartsWith(before, redacted, StringComparison.Ordinal);
            }
        }
    }

    public static TheoryData<string, string> PlantedPersonal => new()
    {
        { "4111 1111 1111 1111", "1111 1111" },
        { "5500-0000-0000-0004", "0000-0004" },
        { "+44 20 7946 0958", "7946 0958" },
        { "(415) 555-2671", "555-2671" },
        { "020 7946 0958", "7946 0958" },
        { "ana.silva@example.com", "ana.silva" },
    };

    // The one-pass pre-scan finds a run of seven digits or separators on two blocks' masks and the
    // single bytes ('@', the backslash of an escape) on the classification of the same loads.
    [Theory]
    [MemberData(nameof(PlantedPersonal))]
    public void PlantedPersonalValue_AtEveryOffsetAndAtTheEnd_IsRedacted(string value, string kept)
    {
        for (var offset = 0; offset < 40; offset++)
        {
            var before = Prefix(offset) + Filler;
            foreach (var text in new[] { before + value + " " + Filler, before + value, value })
            {
                var redacted = RedactText(_default, text, "text/plain");

                Assert.DoesNotContain(kept, redacted, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void EscapedName_AtEveryOffset_IsRedacted()
    {
        for (var offset = 0; offset < 40; offset++)
        {
            var json = "{\"note\":\"" + Prefix(offset) + Filler + "\",\"pass\\u0077ord\":\"hunter2-x\"}";

            var redacted = RedactText(_default, json, "application/json");

            Assert.DoesNotContain("hunter2-x", redacted, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("password")]
    [InlineData("PASSWORD")]
    [InlineData("PassWord")]
    [InlineData("Api_Key")]
    [InlineData("x-Auth-Token")]
    [InlineData("SECRET")]
    public void SensitiveField_InAnyCaseAtEveryOffset_IsRedacted(string name)
    {
        for (var offset = 0; offset < 40; offset++)
        {
            var json = "{\"note\":\"" + Prefix(offset) + Filler + "\",\"" + name + "\":\"hunter2-x\"}";

            var redacted = RedactText(_default, json, "application/json");

            Assert.DoesNotContain("hunter2-x", redacted, StringComparison.Ordinal);
            Assert.Contains(Filler, redacted, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("id", "ID")]
    [InlineData("q", "Q")]
    public void ConfiguredFieldShorterThanTheFingerprint_IsFoundUpToTheLastByte(string field, string written)
    {
        var redactor = Redactor.Create(new RedactionOptions { Fields = [field] });
        for (var offset = 0; offset < 40; offset++)
        {
            var json = "{\"note\":\"" + Prefix(offset) + Filler + "\",\"" + written + "\":\"v-42\"}";

            var redacted = RedactText(redactor, json, "application/json");

            Assert.DoesNotContain("v-42", redacted, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void CleanBodyFullOfAnchorPieces_IsLeftUntouched()
    {
        // Every anchor's first two bytes, none of them whole: the filter's candidates, all rejected.
        var text = string.Concat(Enumerable.Repeat(Filler + "ak as ag ai ar an ap ab ac gh gi xo sk rk -- be aw pa se ke au ca cc cv so to ss pw ph mo ms te ce fa ", 200));
        var bytes = Encoding.UTF8.GetBytes(text);
        var exchange = new Exchange { ResponseBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "text/plain") };

        var count = _default.Redact(exchange);

        Assert.Equal(0, count);
        Assert.Same(bytes, GetArray(exchange.ResponseBody));
    }

    // Each body holds a few anchors of three or four letters by chance (eyJ, xox, AKIA, …); none is
    // followed by its detector's shape, and neither are the look-alikes planted in it.
    [Fact]
    public void RandomBase64Body_WithChanceAnchorsAndLookAlikes_IsLeftUntouched()
    {
        string[] lookAlikes =
        [
            "eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9.", "EYJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36P",
            "AKIAIOSFODNN7EXAMPL", "akiaIOSFODNN7EXAMPLE", "AKIAIOSFODNN7example", "xoxb-short", "XOXB-1234567890-abcdefghij",
            "xox-1234567890", "ghp_short", "GHP_wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx", "AIzaShort", "aiza_SyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        ];
        var random = new Random(13);
        for (var seed = 0; seed < 40; seed++)
        {
            var raw = new byte[48 * 1024];
            random.NextBytes(raw);
            var text = Convert.ToBase64String(raw);
            foreach (var lookAlike in lookAlikes)
            {
                var at = random.Next(text.Length);
                text = text[..at] + "/" + lookAlike + "+" + text[at..];
            }

            var bytes = Encoding.UTF8.GetBytes("{\"data\":\"" + text + "\"}");
            var exchange = new Exchange { ResponseBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json") };

            var count = _default.Redact(exchange);

            Assert.Equal(0, count);
            Assert.Same(bytes, GetArray(exchange.ResponseBody));
        }
    }

    // The pre-scan checks a value's shape on the whole message, but the detector runs on the field:
    // the byte before a field (its length, 65 is 'A') and after it (the next tag, field 10 is 'R')
    // can be token characters there without hiding the value.
    [Theory]
    [InlineData("jwt")]
    [InlineData("aws")]
    public void ValueFilling_AProtobufField_BetweenTokenCharacters_IsRedacted(string kind)
    {
        var value = kind == "jwt"
            ? "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36P"
            : "AKIAIOSFODNN7EXAMPLE";
        var field = Encoding.ASCII.GetBytes(value);
        byte[] next = [0x52, 2, (byte)'o', (byte)'k'];
        byte[] message = [0x0A, (byte)field.Length, .. field, .. next];
        Assert.True(kind != "jwt" || message[1] == (byte)'A');

        var redacted = _default.RedactProtobuf(message, type: null, truncated: false, out var count);

        Assert.Equal(1, count);
        Assert.NotNull(redacted);
        var written = Encoding.ASCII.GetString(redacted);
        Assert.DoesNotContain(value[^12..], written, StringComparison.Ordinal);
        Assert.EndsWith("R\u0002ok", written, StringComparison.Ordinal);
    }

    // The first characters of the filler, never half of a surrogate pair.
    private static string Prefix(int length) =>
        Filler[..(length > 0 && char.IsHighSurrogate(Filler[length - 1]) ? length + 1 : length)];

    private static byte[]? GetArray(CapturedBody body) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(body.Content, out var segment) ? segment.Array : null;

    private static string RedactText(Redactor redactor, string text, string contentType)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var exchange = new Exchange { ResponseBody = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, contentType) };
        redactor.Redact(exchange);
        return Encoding.UTF8.GetString(exchange.ResponseBody.Content.Span);
    }
}
