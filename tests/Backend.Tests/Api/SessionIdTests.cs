using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Google.Protobuf;
using SpIstio.Backend.Tests.Infrastructure;
using SpIstio.Backend.Ui;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;

namespace SpIstio.Backend.Tests.Api;

/// <summary>Any session id ingest accepts can be opened: slashes, spaces, percent signs and non-ASCII text.</summary>
public sealed class SessionIdTests : IAsyncLifetime
{
    private BackendFixture _backend = null!;

    private static readonly string[] s_ids = ["tenant/42", "a/b/c", "with space", "50%off", "ünï/cødé", "x/har"];

    public static TheoryData<string> Ids => new(s_ids);

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync();
        var start = DateTimeOffset.UtcNow.AddMinutes(-1);
        var exchanges = s_ids.Select(id => new Exchange
        {
            ServiceName = "web",
            Direction = TrafficDirection.Inbound,
            Method = "GET",
            Authority = "web:8080",
            Path = "/",
            StatusCode = 200,
            TraceId = ActivityTraceId.CreateRandom(),
            SpanId = ActivitySpanId.CreateRandom(),
            StartTime = start,
            EndTime = start.AddMilliseconds(3),
            SessionId = id,
        }).ToList();
        using var response = await _backend.PostAsync("/v1/traces", _backend.AcmeKey, ExchangeSpanMapper.ToExportRequest(exchanges, null, "1").ToByteArray(), "application/x-protobuf");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Theory]
    [MemberData(nameof(Ids))]
    public async Task SessionApi_OpensTheId_WithSlashesKeptOrEscaped(string id)
    {
        // Escaped always works; slashes kept work too, except for an id ending in "/har" (that is the HAR route).
        string[] paths = id.EndsWith("/har", StringComparison.Ordinal)
            ? ["/api/sessions/" + Uri.EscapeDataString(id)]
            : ["/api" + UiLinks.Session(id), "/api/sessions/" + Uri.EscapeDataString(id)];
        foreach (var path in paths)
        {
            using var response = await _backend.GetAsync(path, _backend.AcmeKey);
            var body = await response.Content.ReadAsStringAsync();

            Assert.True(response.StatusCode == HttpStatusCode.OK, path + ": " + body);
            Assert.Equal(id, JsonDocument.Parse(body).RootElement.GetProperty("sessionId").GetString());
        }
    }

    [Theory]
    [MemberData(nameof(Ids))]
    public async Task SessionHar_OpensTheId(string id)
    {
        using var response = await _backend.GetAsync("/api/sessions/" + Uri.EscapeDataString(id) + "/har", _backend.AcmeKey);
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Single(JsonDocument.Parse(body).RootElement.GetProperty("log").GetProperty("entries").EnumerateArray());
        Assert.DoesNotContain("/", response.Content.Headers.ContentDisposition!.FileName!.Trim('"'), StringComparison.Ordinal);
    }
}
