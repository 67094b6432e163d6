using System.Globalization;
using System.Text;
using BenchmarkDotNet.Attributes;
using SpIstio.Agent.Export;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;

namespace SpIstio.Micro.Benchmarks;

/// <summary>
/// <c>export.compression</c> chosen by measurement (issue 13): the exporter's whole encode
/// (<c>OtlpExporter.Encode</c>: OtlpSpanWriter streamed through the codec) of a 64-exchange batch,
/// per exchange, for none, gzip (Fastest) and zstd (level 1), with two JSON bodies of
/// <see cref="BodyBytes"/> each, and with incompressible bodies (base64 of random bytes, the
/// proxy bench's 64k-random cell). Setup prints each case's bytes on the wire per exchange, so
/// time per exported byte and the ratio can be read off together.
/// </summary>
[MemoryDiagnoser]
public class ExportCodecs
{
    private const int Batch = 64;

    private List<Exchange> _batch = null!;

    /// <summary>Size of each of the two bodies.</summary>
    [Params(2048, 65536)]
    public int BodyBytes { get; set; }

    /// <summary>json: the travel fixtures; random: base64 of random bytes.</summary>
    [Params("json", "random")]
    public string Bodies { get; set; } = "json";

    /// <summary>The codec.</summary>
    [Params(ExportCompression.None, ExportCompression.Gzip, ExportCompression.Zstd)]
    public ExportCompression Codec { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var redactor = Redactor.Create(new RedactionOptions());
        _batch = [];
        var random = new Random(42);
        for (var i = 0; i < Batch; i++)
        {
            var exchange = Fixtures.Exchange(BodyBytes, i * 7);
            if (Bodies == "random")
            {
                exchange.RequestBody = new CapturedBody(RandomBody(random), BodyBytes, false, BodyKind.Text, "application/json");
                exchange.ResponseBody = new CapturedBody(RandomBody(random), BodyBytes, false, BodyKind.Text, "application/json");
            }

            redactor.Redact(exchange);
            _batch.Add(exchange);
        }

        var plain = OtlpExporter.Encode(_batch, "bench", ExportCompression.None).Count;
        var wire = OtlpExporter.Encode(_batch, "bench", Codec).Count;
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"// {Codec} {Bodies} {BodyBytes}: {plain / Batch} B encoded, {wire / Batch} B on the wire per exchange ({(double)wire / plain:F3})"));
    }

    /// <summary>The exporter's encode of the batch, per exchange.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int Encode() => OtlpExporter.Encode(_batch, "bench", Codec).Count;

    // Base64 of random bytes, quoted as a JSON string, BodyBytes long.
    private byte[] RandomBody(Random random)
    {
        var raw = new byte[BodyBytes * 3 / 4];
        random.NextBytes(raw);
        var text = "\"" + Convert.ToBase64String(raw);
        return Encoding.ASCII.GetBytes(text[..(BodyBytes - 1)] + "\"");
    }
}
