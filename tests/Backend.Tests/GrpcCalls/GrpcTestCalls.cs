using System.Buffers.Binary;
using System.Diagnostics;
using Google.Protobuf;
using SpIstio.Core.GrpcMessages;
using SpIstio.Core.Model;

namespace SpIstio.Backend.Tests.GrpcCalls;

/// <summary>gRPC calls as the agent captures them: framed messages split by the real frame reader, attributes by the span contract.</summary>
internal static class GrpcTestCalls
{
    /// <summary>The descriptor set protoc wrote from the test proto during the build (see the csproj).</summary>
    public static string DescriptorSetPath => Path.Combine(AppContext.BaseDirectory, "grpc_capture_test.pb");

    /// <summary>One length-prefixed gRPC message, uncompressed.</summary>
    public static byte[] Frame(IMessage message)
    {
        var payload = message.ToByteArray();
        var frame = new byte[5 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)payload.Length);
        payload.CopyTo(frame, 5);
        return frame;
    }

    /// <summary>The messages attribute of one direction, as the agent writes it: each message read by <see cref="GrpcFrameReader"/> at its offset.</summary>
    public static string Messages(params (byte[] Frame, double OffsetMs)[] frames) => Messages(GrpcCaptureLimits.Default, frames);

    public static string Messages(GrpcCaptureLimits limits, params (byte[] Frame, double OffsetMs)[] frames)
    {
        using var reader = new GrpcFrameReader(limits, null);
        foreach (var (frame, offset) in frames)
        {
            reader.Append(frame, TimeSpan.FromMilliseconds(offset));
        }

        reader.Complete();
        return GrpcSpanAttributes.EncodeMessages(reader);
    }

    /// <summary>One direction's message list as the agent's capture hands it over (bytes, before the span): <paramref name="frames"/> read by <see cref="GrpcFrameReader"/>.</summary>
    public static GrpcMessageList List(byte[] frames) => List(frames, GrpcCaptureLimits.Default);

    /// <summary>The message list the capture makes of <paramref name="frames"/> under <paramref name="limits"/>.</summary>
    public static GrpcMessageList List(byte[] frames, GrpcCaptureLimits limits)
    {
        using var reader = new GrpcFrameReader(limits, null);
        reader.Append(frames, TimeSpan.FromMilliseconds(1));
        reader.Complete();
        return new GrpcMessageList(reader.MessageCount, reader.Truncated, [.. reader.Messages]);
    }

    /// <summary>A finished unary call to <c>/sp.test.grpc.Orders/Get</c> with the given status, as the capture proxy records it.</summary>
    public static Exchange Call(ActivityTraceId trace, string session, DateTimeOffset start, int status, string? message, string requestMessages, string? responseMessages)
    {
        var exchange = new Exchange
        {
            ServiceName = "orders",
            Direction = TrafficDirection.Inbound,
            Method = "POST",
            Authority = "orders:5001",
            Path = "/sp.test.grpc.Orders/Get",
            StatusCode = 200,
            TraceId = trace,
            SpanId = ActivitySpanId.CreateRandom(),
            StartTime = start,
            EndTime = start.AddMilliseconds(12),
            SessionId = session,
        };
        exchange.RequestHeaders.Add("content-type", "application/grpc");
        exchange.RequestHeaders.Add("x-tenant-hint", "blue");
        exchange.ResponseHeaders.Add("content-type", "application/grpc");
        exchange.ResponseHeaders.Add("grpc-status", status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        exchange.Attributes[GrpcSpanAttributes.RpcSystem] = "grpc";
        exchange.Attributes[GrpcSpanAttributes.RpcService] = "sp.test.grpc.Orders";
        exchange.Attributes[GrpcSpanAttributes.RpcMethod] = "Get";
        // The agent of this round writes the code as a string; ints are read too (GrpcCallDecoder.StatusCodeOf).
        exchange.Attributes[GrpcSpanAttributes.RpcStatusCode] = status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        exchange.Attributes[GrpcSpanAttributes.StatusName] = GrpcCallStatus.NameOf(status);
        if (message is not null)
        {
            exchange.ResponseHeaders.Add("grpc-message", Uri.EscapeDataString(message));
            exchange.Attributes[GrpcSpanAttributes.StatusMessage] = message;
        }

        exchange.Attributes[GrpcSpanAttributes.RequestMessages] = requestMessages;
        if (responseMessages is not null)
        {
            exchange.Attributes[GrpcSpanAttributes.ResponseMessages] = responseMessages;
        }

        return exchange;
    }
}
