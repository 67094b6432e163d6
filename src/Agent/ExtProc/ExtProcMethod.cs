using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Routing;

namespace SpIstio.Agent.ExtProc;

/// <summary>
/// <c>envoy.service.ext_proc.v3.ExternalProcessor/Process</c> as the agent serves it: requests read
/// by <see cref="ProcessingRequestReader"/> instead of the generated parser, answers written as
/// <see cref="ExtProcAnswer"/>s (mostly bytes encoded once) instead of generated message graphs.
/// The service frames the messages of a call ASP.NET Core hosts itself (<see cref="ExtProcFrames"/>);
/// these marshallers serve the others (a call built in memory, compressed requests).
/// </summary>
internal static class ExtProcMethod
{
    /// <summary>The method, with the agent's marshallers; same service and method names as the proto.</summary>
    public static readonly Method<ExtProcRequest, ExtProcAnswer> Process = new(
        MethodType.DuplexStreaming,
        "envoy.service.ext_proc.v3.ExternalProcessor",
        "Process",
        Marshallers.Create(SerializeRequestNotSupported, static context => ProcessingRequestReader.Read(context.PayloadAsReadOnlySequence())),
        Marshallers.Create(SerializeAnswer, ReadAnswerNotSupported));

    // What the generated marshaller does for a message that writes to a buffer writer: no array per answer.
    private static void SerializeAnswer(ExtProcAnswer answer, SerializationContext context)
    {
        context.SetPayloadLength(answer.CalculateSize());
        answer.WriteTo(context.GetBufferWriter());
        context.Complete();
    }

    // The server only reads requests and writes answers; a client uses the generated ExternalProcessorClient.
    private static void SerializeRequestNotSupported(ExtProcRequest request, SerializationContext context) =>
        throw new NotSupportedException("ExtProcRequest is read from Envoy's bytes, never written.");

    private static ExtProcAnswer ReadAnswerNotSupported(DeserializationContext context) =>
        throw new NotSupportedException("ExtProcAnswer is written for Envoy, never read; a client reads ProcessingResponse.");

    /// <summary>Binds <see cref="ExtProcService.Process"/> to the method, without the generated service base.</summary>
    internal sealed class Provider : IServiceMethodProvider<ExtProcService>
    {
        // gRPC is POST only; the generated binder adds the same metadata.
        private static readonly List<object> _metadata = [new HttpMethodMetadata(["POST"])];

        public void OnServiceMethodDiscovery(ServiceMethodProviderContext<ExtProcService> context) =>
            context.AddDuplexStreamingMethod(Process, _metadata, static (service, requests, responses, call) => service.Process(requests, responses, call));
    }
}
