using Google.Protobuf;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Routing;
using SpIstio.Agent.ExtProc.Proto;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// <c>envoy.service.ext_proc.v3.ExternalProcessor/Process</c> as the agent serves it: requests read
/// by <see cref="ProcessingRequestReader"/> instead of the generated parser, answers written by the
/// generated serializer (the answers are small and mostly shared instances).
/// </summary>
internal static class ExtProcMethod
{
    /// <summary>The method, with the agent's marshallers; same service and method names as the proto.</summary>
    public static readonly Method<ExtProcRequest, ProcessingResponse> Process = new(
        MethodType.DuplexStreaming,
        "envoy.service.ext_proc.v3.ExternalProcessor",
        "Process",
        Marshallers.Create(SerializeRequestNotSupported, static context => ProcessingRequestReader.Read(context.PayloadAsReadOnlySequence())),
        Marshallers.Create(SerializeResponse, static context => ProcessingResponse.Parser.ParseFrom(context.PayloadAsReadOnlySequence())));

    // What the generated marshaller does for a message that writes to a buffer writer: no array per answer.
    private static void SerializeResponse(ProcessingResponse response, SerializationContext context)
    {
        context.SetPayloadLength(response.CalculateSize());
        response.WriteTo(context.GetBufferWriter());
        context.Complete();
    }

    // The server only reads requests; a client uses the generated ExternalProcessorClient.
    private static void SerializeRequestNotSupported(ExtProcRequest request, SerializationContext context) =>
        throw new NotSupportedException("ExtProcRequest is read from Envoy's bytes, never written.");

    /// <summary>Binds <see cref="ExtProcService.Process"/> to the method, without the generated service base.</summary>
    internal sealed class Provider : IServiceMethodProvider<ExtProcService>
    {
        // gRPC is POST only; the generated binder adds the same metadata.
        private static readonly List<object> _metadata = [new HttpMethodMetadata(["POST"])];

        public void OnServiceMethodDiscovery(ServiceMethodProviderContext<ExtProcService> context) =>
            context.AddDuplexStreamingMethod(Process, _metadata, static (service, requests, responses, call) => service.Process(requests, responses, call));
    }
}
