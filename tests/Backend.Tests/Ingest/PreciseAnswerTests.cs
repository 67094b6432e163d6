using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using SpIstio.Backend.Hosting;
using SpIstio.Backend.Ingest;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Core.Otlp.Proto.Collector.Trace;
using static SpIstio.Backend.Tests.Infrastructure.OtlpRequests;

namespace SpIstio.Backend.Tests.Ingest;

/// <summary>
/// Ingest names what was wrong: malformed gRPC messages are INVALID_ARGUMENT (after the key is
/// checked, never before), refusals log one debug line without a stack trace, and spans whose
/// times cannot be placed are refused one by one in partial_success.
/// </summary>
public sealed class PreciseAnswerTests : IAsyncLifetime
{
    private static readonly Method<byte[], byte[]> _rawExport = new(
        MethodType.Unary, "opentelemetry.proto.collector.trace.v1.TraceService", "Export",
        Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));

    private readonly RecordingLoggerProvider _logs = new();
    private ILoggerFactory _loggerFactory = null!;
    private BackendFixture _backend = null!;
    private GrpcChannel _channel = null!;

    public async Task InitializeAsync()
    {
        _loggerFactory = LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Trace).AddProvider(_logs));
        _backend = await BackendFixture.StartAsync(loggerFactory: _loggerFactory);
        _channel = GrpcChannel.ForAddress(_backend.Server.GrpcAddress!);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _backend.DisposeAsync();
        _loggerFactory.Dispose();
    }

    [Fact]
    public async Task MalformedProtobuf_FromAnAuthenticatedCaller_IsInvalidArgument_LoggedAsOneDebugLine()
    {
        var trace = ActivityTraceId.CreateRandom();
        var bytes = Wrap("svc", GenericSpan(trace, ActivitySpanId.CreateRandom()), GenericSpan(trace, ActivitySpanId.CreateRandom())).ToByteArray();

        var error = await Assert.ThrowsAsync<RpcException>(() => SendRawAsync(bytes[..(bytes.Length - 9)], _backend.AcmeKey));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.StartsWith("the message is not a valid OTLP ExportTraceServiceRequest", error.Status.Detail, StringComparison.Ordinal);
        Assert.Empty(await _backend.Store.GetTraceAsync(_backend.AcmeId, trace.ToHexString(), CancellationToken.None));
        AssertRefusalLoggedOnce((int)StatusCode.InvalidArgument);
    }

    [Fact]
    public async Task MalformedProtobuf_WithoutAValidKey_IsUnauthenticated_BeforeAnythingIsParsed()
    {
        byte[] garbage = [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01];

        var none = await Assert.ThrowsAsync<RpcException>(() => SendRawAsync(garbage, key: null));
        var unknown = await Assert.ThrowsAsync<RpcException>(() => SendRawAsync(garbage, "sp_not_a_key"));

        Assert.Equal(StatusCode.Unauthenticated, none.StatusCode);
        Assert.Equal(StatusCode.Unauthenticated, unknown.StatusCode);
        Assert.Equal(2, _logs.Entries.Count(e => e.Level == LogLevel.Debug && e.Message.Contains("refused with 16", StringComparison.Ordinal)));
        Assert.DoesNotContain(_logs.Entries, e => e.Exception is not null || e.Level >= LogLevel.Information && e.Category.StartsWith("Grpc", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SpansWithImpossibleTimes_AreRefusedOneByOne_InPartialSuccess_OverHttpAndGrpc()
    {
        var trace = ActivityTraceId.CreateRandom();
        var good = GenericSpan(trace, ActivitySpanId.CreateRandom(), "good");
        var reversed = GenericSpan(trace, ActivitySpanId.CreateRandom(), "reversed");
        reversed.EndTimeUnixNano = reversed.StartTimeUnixNano - 1;
        var zero = GenericSpan(trace, ActivitySpanId.CreateRandom(), "zero");
        zero.StartTimeUnixNano = 0;
        var zeroEnd = GenericSpan(trace, ActivitySpanId.CreateRandom(), "zero end");
        zeroEnd.EndTimeUnixNano = 0;
        var future = GenericSpan(trace, ActivitySpanId.CreateRandom(), "year 2400");
        future.StartTimeUnixNano = Nanos(new DateTimeOffset(2400, 1, 1, 0, 0, 0, TimeSpan.Zero));
        future.EndTimeUnixNano = future.StartTimeUnixNano + 1000;
        var ancient = GenericSpan(trace, ActivitySpanId.CreateRandom(), "1971");
        ancient.StartTimeUnixNano = Nanos(new DateTimeOffset(1971, 1, 1, 0, 0, 0, TimeSpan.Zero));
        ancient.EndTimeUnixNano = ancient.StartTimeUnixNano + 1000;
        var request = Wrap("svc", good, reversed, zero, zeroEnd, future, ancient);

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, request.ToByteArray(), "application/x-protobuf");
        var grpc = await new TraceService.TraceServiceClient(_channel).ExportAsync(request, new Metadata { { "x-public-key", _backend.AcmeKey } });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var http = ExportTraceServiceResponse.Parser.ParseFrom(await response.Content.ReadAsByteArrayAsync());
        foreach (var answer in new[] { http, grpc })
        {
            Assert.Equal(5, answer.PartialSuccess.RejectedSpans);
            Assert.Equal(
                "5 span(s) rejected: start_time_unix_nano zero, end before start, or a time more than 366 days before or 1 day after the server's clock",
                answer.PartialSuccess.ErrorMessage);
        }

        var stored = await _backend.Store.GetTraceAsync(_backend.AcmeId, trace.ToHexString(), CancellationToken.None);
        Assert.Equal(["good"], stored.Select(s => s.Name));
    }

    [Fact]
    public async Task OversizedAttributes_AreTruncatedAndFlagged_AsTheAgentFlagsCutBodies()
    {
        const int cap = 1024 * 1024;
        var trace = ActivityTraceId.CreateRandom();
        var spanId = ActivitySpanId.CreateRandom();
        var huge = new string('x', 7 * 1024 * 1024);
        var exchange = new SpIstio.Core.Model.Exchange
        {
            Direction = SpIstio.Core.Model.TrafficDirection.Inbound,
            ServiceName = "flights",
            Method = "POST",
            Authority = "flights:80",
            Path = "/api/flights",
            StatusCode = 200,
            TraceId = trace,
            SpanId = spanId,
            StartTime = DateTimeOffset.UtcNow.AddSeconds(-3),
            EndTime = DateTimeOffset.UtcNow.AddSeconds(-2),
            RequestBody = new SpIstio.Core.Model.CapturedBody(System.Text.Encoding.UTF8.GetBytes(huge), huge.Length, false, SpIstio.Core.Model.BodyKind.Text, "text/plain", null, false),
        };
        exchange.Attributes["note"] = new string('n', 2 * cap);
        var request = SpIstio.Core.Otlp.ExchangeSpanMapper.ToExportRequest([exchange], null, "1.0");

        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, request.ToByteArray(), "application/x-protobuf");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var detailResponse = await _backend.GetAsync($"/api/spans/{trace.ToHexString()}/{spanId.ToHexString()}", _backend.AcmeKey);
        Assert.Equal(HttpStatusCode.OK, detailResponse.StatusCode);
        using var detail = JsonDocument.Parse(await detailResponse.Content.ReadAsStreamAsync());
        var body = detail.RootElement.GetProperty("requestBody");
        Assert.True(body.GetProperty("truncated").GetBoolean());
        Assert.Equal(cap, body.GetProperty("capturedBytes").GetInt32());
        Assert.Equal(huge.Length, body.GetProperty("originalSize").GetInt64());
        var attributes = detail.RootElement.GetProperty("attributes");
        Assert.Equal(cap, attributes.GetProperty("note").GetString()!.Length);
        Assert.Equal("note", attributes.GetProperty(SpanConverter.TruncatedAttributes).GetString());
    }

    [Fact]
    public async Task AGzipMessageInflatingPastTheBodyLimit_IsResourceExhausted_NamingTheLimit_LoggedAsOneDebugLine()
    {
        // 512 MiB of zeros: about half a megabyte gzipped, far inside the 16 MiB receive limit as sent.
        // (How much of it is inflated is bounded by the limit either way: Grpc.AspNetCore stops there
        // too, with its own message, an information log and a stack trace.)
        byte[] bomb = CompressedZeros(512L * 1024 * 1024, "gzip");
        Assert.True(bomb.Length < BackendOptions.DefaultMaxBodyBytes);

        var (status, message) = await SendRawExportFrameAsync(_backend.Server.GrpcAddress!, bomb, "gzip", _backend.AcmeKey);

        Assert.Equal(StatusCode.ResourceExhausted, status);
        Assert.Equal("the body exceeds the limit of 16777216 bytes (counted after decompression)", message);
        AssertRefusalLoggedOnce((int)StatusCode.ResourceExhausted);
    }

    [Fact]
    public async Task AMessageDeclaredPastTheBodyLimit_IsResourceExhausted_BeforeItIsRead()
    {
        // The length prefix says 17 MiB; four bytes follow. Nothing waits for the rest.
        var (status, message) = await SendRawExportFrameAsync(_backend.Server.GrpcAddress!, [1, 2, 3, 4], null, _backend.AcmeKey, declaredLength: 17 * 1024 * 1024);

        Assert.Equal(StatusCode.ResourceExhausted, status);
        Assert.Equal("the body exceeds the limit of 16777216 bytes (counted after decompression)", message);
        AssertRefusalLoggedOnce((int)StatusCode.ResourceExhausted);
    }

    private async Task SendRawAsync(byte[] payload, string? key)
    {
        var headers = new Metadata();
        if (key is not null)
        {
            headers.Add("x-public-key", key);
        }

        await _channel.CreateCallInvoker().AsyncUnaryCall(_rawExport, null, new CallOptions(headers), payload).ResponseAsync;
    }

    private void AssertRefusalLoggedOnce(int code)
    {
        var refusals = _logs.Entries.Where(e => e.Message.Contains("refused with " + code, StringComparison.Ordinal)).ToList();
        var refusal = Assert.Single(refusals);
        Assert.Equal(LogLevel.Debug, refusal.Level);
        Assert.Null(refusal.Exception);
        Assert.DoesNotContain('\n', refusal.Message);
        Assert.DoesNotContain(_logs.Entries, e => e.Exception is not null || e.Level >= LogLevel.Warning);
    }
}
