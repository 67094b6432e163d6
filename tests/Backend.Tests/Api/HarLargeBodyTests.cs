using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using SpIstio.Backend.GrpcCalls;
using SpIstio.Backend.Har;
using static SpIstio.Backend.Tests.Storage.TestSpans;

namespace SpIstio.Backend.Tests.Api;

/// <summary>
/// The HAR export writes body texts in segments, flushing between them (<c>HarWriter</c>): long
/// bodies come out whole, and the document is what the HAR model's serializer writes.
/// </summary>
public sealed class HarLargeBodyTests
{
    [Fact]
    public void A_large_body_with_quotes_and_a_surrogate_pair_on_a_segment_boundary_round_trips()
    {
        string body = LargeText();
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

    [Fact]
    public void The_streamed_document_is_byte_for_byte_what_the_HAR_models_serializer_writes()
    {
        // Every optional field set in one entry, none in the other: a property the writer names
        // differently, orders differently or writes when null shows up as a byte of difference.
        var full = new HarEntry
        {
            StartedDateTime = "2026-11-29T10:00:00.0000000+00:00",
            Time = 12.5,
            Request = new HarRequest
            {
                Method = "POST",
                Url = "http://flights/api/book?seat=12A",
                HttpVersion = "HTTP/2",
                Cookies = [new("session", "abc")],
                Headers = [new("content-type", "application/json"), new("x-quote", "say \"hi\" <now>")],
                QueryString = [new("seat", "12A")],
                PostData = new HarPostData { MimeType = "application/json", Text = LargeText(), Encoding = "base64", Comment = "truncated" },
                HeadersSize = -1,
                BodySize = 100_000,
                Comment = "request comment",
            },
            Response = new HarResponse
            {
                Status = 201,
                StatusText = "Created",
                HttpVersion = "HTTP/2",
                Cookies = [],
                Headers = [new("location", "/api/book/1")],
                Content = new HarContent { Size = 100_000, MimeType = "application/json", Text = LargeText(), Encoding = "base64", Comment = "content comment" },
                RedirectUrl = "/api/book/1",
                BodySize = 100_000,
                Comment = "response comment",
            },
            Timings = new HarTimings(0, 12.5, 0),
            Comment = "inbound flights",
            TraceId = "0af7651916cd43dd8448eb211c80319c",
            SpanId = "b7ad6b7169203331",
            Service = "flights",
            Direction = "inbound",
            SessionId = "s-1",
            WebSocketMessages = [new("send", 1_764_410_400.5, 1, "hello \u00e9"), new("receive", 1_764_410_401, 2, "AAEC")],
            Grpc = new GrpcCallDto("flights.v1.Booking", "Book", 5, "NOT_FOUND", "no such seat", [new GrpcStatusDetailDto("type.googleapis.com/google.rpc.ErrorInfo") { Json = JsonNode.Parse("{\"reason\":\"SEAT\"}") }],
                new GrpcMessagesDto(1, false, [new GrpcMessageDto(0, 0.25, 7, false, false) { Fields = JsonNode.Parse("[{\"field\":1,\"wire\":\"len\",\"string\":\"12A\"}]") }]),
                null) { Described = false, Note = "no descriptor set" },
        };
        var bare = new HarEntry
        {
            StartedDateTime = "2026-11-29T10:00:01.0000000+00:00",
            Request = new HarRequest { Method = "GET", Url = "http://flights/", HttpVersion = "HTTP/1.1", Cookies = [], Headers = [], QueryString = [] },
            Response = new HarResponse { StatusText = "", HttpVersion = "HTTP/1.1", Cookies = [], Headers = [], Content = new HarContent { MimeType = "" } },
            Timings = new HarTimings(-1, 0, -1),
        };

        foreach (var log in new[]
        {
            new HarLog { Creator = new HarCreator(HarBuilder.CreatorName, "1.2.3"), Entries = [full, bare], Comment = "Trace 0af7" },
            new HarLog { Creator = new HarCreator(HarBuilder.CreatorName, "1.2.3"), Entries = [] },
        })
        {
            var document = new HarDocument(log);
            string expected = Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(document, HarJsonContext.Default.HarDocument));
            Assert.Equal(expected, Encoding.UTF8.GetString(HarBuilder.Serialize(document)));
        }
    }

    [Fact]
    public async Task An_export_reaches_the_client_in_pieces_of_a_segment_not_a_whole_body_at_once()
    {
        // 2 MB of JSON in each body: written whole, each would be one write of over 2 MB to the
        // response (the serializer flushes only between values), from a buffer doubled to 4 MiB.
        var text = new StringBuilder();
        while (text.Length < 2_000_000)
        {
            text.Append("{\"seat\":\"12A\",\"note\":\"window\"},");
        }

        string body = text.ToString();
        var span = Exchange(1, 1) with
        {
            Method = "POST",
            RequestBody = Encoding.UTF8.GetBytes(body),
            ResponseBody = Encoding.UTF8.GetBytes(body),
            AttributesJson = "{}",
        };
        var context = new DefaultHttpContext();
        var sink = new WriteRecordingStream();
        context.Response.Body = sink;

        await HarBuilder.WriteAsync(context.Response, HarBuilder.Build([span]), "trace.har");
        await context.Response.BodyWriter.CompleteAsync();

        Assert.InRange(sink.LargestWrite, 1, 512 * 1024);
        var entry = Assert.Single(HarBuilder.Parse(sink.ToArray()).Log.Entries);
        Assert.Equal(body, entry.Request.PostData!.Text);
        Assert.Equal(body, entry.Response.Content.Text);
    }

    /// <summary>
    /// ~100,000 characters: quotes and backslashes force escaping, and an emoji (a surrogate pair)
    /// straddles the 8,192nd character, where the first segment ends.
    /// </summary>
    private static string LargeText()
    {
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

        return text.ToString();
    }

    /// <summary>Keeps what is written and the largest single write.</summary>
    private sealed class WriteRecordingStream : MemoryStream
    {
        public int LargestWrite { get; private set; }

        public override void Write(byte[] buffer, int offset, int count)
        {
            LargestWrite = Math.Max(LargestWrite, count);
            base.Write(buffer, offset, count);
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            LargestWrite = Math.Max(LargestWrite, buffer.Length);
            base.Write(buffer);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Write(buffer, offset, count);
            return Task.CompletedTask;
        }
    }
}
