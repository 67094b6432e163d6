using System.Buffers;
using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;
using SpIstio.Agent.ExtProc;
using SpIstio.Agent.ExtProc.Proto;
using SpIstio.Agent.Metrics;
using SpIstio.Agent.Pipeline;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;

namespace SpIstio.Agent.Benchmarks;

/// <summary>
/// The capture path alone, in this process, without transport: <see cref="ExtProcService"/> fed
/// from memory. Gives bytes allocated per exchange (GC.GetTotalAllocatedBytes over every thread)
/// and exact per-message server time (message bytes handed over → answer written).
/// </summary>
internal static class InProcessRun
{
    public static async Task<(double BytesPerExchange, double P50Us, double P99Us)> RunAsync(ExchangeScript script, int exchanges)
    {
        var metrics = new AgentMetrics();
        var pipeline = new CapturePipeline(new AgentOptions(), new DiscardingExporter(), metrics, NullLogger<CapturePipeline>.Instance);
        var service = new ExtProcService(pipeline, new ExtProcOptions(), NullLogger<ExtProcService>.Instance);
        var context = new BenchCallContext();
        var reader = new ScriptReader(script.Messages);
        var writer = new TimingWriter(reader, exchanges * script.Messages.Length);

        // Warm-up: tiered JIT and pools settle before anything is counted.
        for (var i = 0; i < Math.Min(20_000, exchanges); i++)
        {
            reader.Reset();
            await service.Process(reader, writer, context);
        }

        writer.Clear();
        var before = GC.GetTotalAllocatedBytes(precise: true);
        for (var i = 0; i < exchanges; i++)
        {
            reader.Reset();
            await service.Process(reader, writer, context);
        }

        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        var times = writer.Times();
        Array.Sort(times);
        double P(double q) => times.Length == 0 ? double.NaN : times[Math.Min(times.Length - 1, (int)(q * times.Length))];
        return ((double)allocated / exchanges, P(0.50), P(0.99));
    }

    private sealed class DiscardingExporter : IExchangeExporter
    {
        // As OtlpExporter does once a queued exchange is encoded: its bodies' rented arrays go back.
        public bool TryEnqueue(Exchange exchange)
        {
            exchange.ReturnBodyArrays();
            return true;
        }
    }

    // Hands over each message as the gRPC server does: read from its serialized bytes by the
    // agent's marshaller, so the read is part of the measured work.
    private sealed class ScriptReader(ProcessingRequest[] messages) : IAsyncStreamReader<ExtProcRequest>
    {
        private static readonly Task<bool> _true = Task.FromResult(true);
        private static readonly Task<bool> _false = Task.FromResult(false);
        private readonly byte[][] _serialized = Array.ConvertAll(messages, message => message.ToByteArray());
        private int _index = -1;

        public ExtProcRequest Current { get; private set; } = null!;

        public long HandedOut { get; private set; }

        public void Reset() => _index = -1;

        public Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (++_index < _serialized.Length)
            {
                HandedOut = Stopwatch.GetTimestamp();
                Current = ProcessingRequestReader.Read(_serialized[_index]);
                return _true;
            }

            return _false;
        }
    }

    // Writes each answer's bytes as the gRPC marshaller does (into a buffer reused across answers),
    // then takes the time: the answer's encoding is part of the server's work.
    private sealed class TimingWriter(ScriptReader reader, int capacity) : IServerStreamWriter<ExtProcAnswer>
    {
        private readonly double[] _times = new double[capacity];
        private readonly ArrayBufferWriter<byte> _output = new(4096);
        private int _count;

        public WriteOptions? WriteOptions { get; set; }

        public Task WriteAsync(ExtProcAnswer message, CancellationToken cancellationToken) => WriteAsync(message);

        public Task WriteAsync(ExtProcAnswer message)
        {
            _output.ResetWrittenCount();
            message.WriteTo(_output);
            if (_count < _times.Length)
            {
                _times[_count++] = Stopwatch.GetElapsedTime(reader.HandedOut).TotalMicroseconds;
            }

            return Task.CompletedTask;
        }

        public void Clear() => _count = 0;

        public double[] Times() => _times.AsSpan(0, _count).ToArray();
    }

    private sealed class BenchCallContext : ServerCallContext
    {
        private static readonly Metadata _headers = [];

        protected override string MethodCore => "/envoy.service.ext_proc.v3.ExternalProcessor/Process";

        protected override string HostCore => "127.0.0.1";

        protected override string PeerCore => "ipv4:127.0.0.1:1";

        protected override DateTime DeadlineCore => DateTime.MaxValue;

        protected override Metadata RequestHeadersCore => _headers;

        protected override CancellationToken CancellationTokenCore => CancellationToken.None;

        protected override Metadata ResponseTrailersCore { get; } = [];

        protected override Status StatusCore { get; set; }

        protected override WriteOptions? WriteOptionsCore { get; set; }

        protected override AuthContext AuthContextCore { get; } = new(null, []);

        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();

        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}
