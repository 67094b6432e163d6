using System.Text;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.ExtProc.Proto.Core;
using BodySendMode = SpIstio.Agent.ExtProc.Proto.Filter.ProcessingMode.Types.BodySendMode;

namespace SpIstio.Agent.Tests.ExtProc;

/// <summary>One ext_proc stream driven the way Envoy drives it.</summary>
internal sealed class EnvoyStream(AsyncDuplexStreamingCall<ProcessingRequest, ProcessingResponse> call) : IDisposable
{
    public AsyncDuplexStreamingCall<ProcessingRequest, ProcessingResponse> Call { get; } = call;

    /// <summary>Sends a message and reads its answer (synchronous mode).</summary>
    public async Task<ProcessingResponse> SendAsync(ProcessingRequest request)
    {
        await Call.RequestStream.WriteAsync(request);
        var next = await NextAsync();
        Assert.NotNull(next);
        return next;
    }

    /// <summary>Sends without waiting for an answer (observability mode).</summary>
    public Task SendOnlyAsync(ProcessingRequest request) => Call.RequestStream.WriteAsync(request);

    /// <summary>The next answer, or null when the server ended the stream.</summary>
    public async Task<ProcessingResponse?> NextAsync(int seconds = 10)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        return await Call.ResponseStream.MoveNext(timeout.Token) ? Call.ResponseStream.Current : null;
    }

    /// <summary>Half-closes the request side, as Envoy does when the exchange is over.</summary>
    public Task CompleteAsync() => Call.RequestStream.CompleteAsync();

    public void Dispose() => Call.Dispose();
}

/// <summary>Builds ProcessingRequest messages as Envoy sends them: lower-case keys, values in raw_value only.</summary>
internal static class Envoy
{
    public const string FilterAttributes = "envoy.filters.http.ext_proc";

    public static ProcessingRequest RequestHeaders(
        string method,
        string path,
        bool endOfStream,
        params (string Name, string Value)[] headers) =>
        RequestHeaders(method, path, "shop.example", endOfStream, headers);

    public static ProcessingRequest RequestHeaders(
        string method,
        string path,
        string authority,
        bool endOfStream,
        params (string Name, string Value)[] headers)
    {
        var map = new HeaderMap();
        map.Headers.Add(Raw(":method", method));
        map.Headers.Add(Raw(":scheme", "http"));
        map.Headers.Add(Raw(":authority", authority));
        map.Headers.Add(Raw(":path", path));
        foreach (var (name, value) in headers)
        {
            map.Headers.Add(Raw(name, value));
        }

        return new ProcessingRequest { RequestHeaders = new HttpHeaders { Headers = map, EndOfStream = endOfStream } };
    }

    public static ProcessingRequest ResponseHeaders(int status, bool endOfStream, params (string Name, string Value)[] headers)
    {
        var map = new HeaderMap();
        map.Headers.Add(Raw(":status", status.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        foreach (var (name, value) in headers)
        {
            map.Headers.Add(Raw(name, value));
        }

        return new ProcessingRequest { ResponseHeaders = new HttpHeaders { Headers = map, EndOfStream = endOfStream } };
    }

    public static ProcessingRequest RequestBody(string text, bool endOfStream) => RequestBody(Encoding.UTF8.GetBytes(text), endOfStream);

    public static ProcessingRequest RequestBody(byte[] bytes, bool endOfStream) =>
        new() { RequestBody = new HttpBody { Body = ByteString.CopyFrom(bytes), EndOfStream = endOfStream } };

    public static ProcessingRequest ResponseBody(string text, bool endOfStream) => ResponseBody(Encoding.UTF8.GetBytes(text), endOfStream);

    public static ProcessingRequest ResponseBody(byte[] bytes, bool endOfStream) =>
        new() { ResponseBody = new HttpBody { Body = ByteString.CopyFrom(bytes), EndOfStream = endOfStream } };

    public static ProcessingRequest RequestTrailers(params (string Name, string Value)[] trailers) =>
        new() { RequestTrailers = new HttpTrailers { Trailers = Map(trailers) } };

    public static ProcessingRequest ResponseTrailers(params (string Name, string Value)[] trailers) =>
        new() { ResponseTrailers = new HttpTrailers { Trailers = Map(trailers) } };

    /// <summary>Marks a message as sent in observability mode.</summary>
    public static ProcessingRequest Observed(this ProcessingRequest request)
    {
        request.ObservabilityMode = true;
        return request;
    }

    /// <summary>Adds the filter's attributes (Envoy puts them on the first request-direction message).</summary>
    public static ProcessingRequest WithAttribute(this ProcessingRequest request, string name, string value)
    {
        if (!request.Attributes.TryGetValue(FilterAttributes, out var values))
        {
            values = new Struct();
            request.Attributes[FilterAttributes] = values;
        }

        values.Fields[name] = Value.ForString(value);
        return request;
    }

    /// <summary>Adds the protocol configuration Envoy sends on the first message.</summary>
    public static ProcessingRequest WithBodyModes(this ProcessingRequest request, BodySendMode requestMode, BodySendMode responseMode)
    {
        request.ProtocolConfig = new ProtocolConfiguration { RequestBodyMode = requestMode, ResponseBodyMode = responseMode };
        return request;
    }

    public static HeaderValue Raw(string name, string value) =>
        new() { Key = name, RawValue = ByteString.CopyFromUtf8(value) };

    private static HeaderMap Map((string Name, string Value)[] fields)
    {
        var map = new HeaderMap();
        foreach (var (name, value) in fields)
        {
            map.Headers.Add(Raw(name, value));
        }

        return map;
    }
}
