using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using SpIstio.Backend.Hosting;
using SpIstio.Core.Model;
using SpIstio.Core.Otlp;

namespace SpIstio.Ui.Tests.Infrastructure;

/// <summary>Ingests exchanges into a running backend the way the agent exports them: OTLP/protobuf to its real <c>/v1/traces</c>.</summary>
public static class OtlpIngest
{
    /// <summary>Posts <paramref name="exchanges"/> as one export request with <paramref name="ingestKey"/>; fails the test unless it is accepted.</summary>
    public static async Task SendAsync(BackendServer server, string ingestKey, IReadOnlyList<Exchange> exchanges)
    {
        ArgumentNullException.ThrowIfNull(server);
        using var http = new HttpClient { BaseAddress = server.Address };
        using var content = new ByteArrayContent(ExchangeSpanMapper.ToExportRequest(exchanges, null, "test").ToByteArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = content };
        request.Headers.Add("x-public-key", ingestKey);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
