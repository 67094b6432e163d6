using System.Text;
using BenchmarkDotNet.Attributes;
using SpIstio.Core.Configuration;
using SpIstio.Core.Model;
using SpIstio.Core.Redaction;

namespace SpIstio.Micro.Benchmarks;

/// <summary>
/// The redaction pre-scan's cost per byte: <c>Redactor.Redact</c> on an exchange whose only part is
/// one response body with nothing to redact, so the pre-scan is (nearly) all the work. Divide by
/// the body's KiB for ns per KiB.
/// </summary>
[MemoryDiagnoser]
public class RedactionScan
{
    private Redactor _redactor = null!;
    private Exchange _exchange = null!;
    private CapturedBody _body = null!;

    /// <summary>
    /// json-2k / json-64k: the micro-benchmarks' JSON records (ids, prices, cities, references);
    /// items-64k: the ext_proc bench's body (<c>{"sku":"A1","qty":1}</c> items);
    /// random-64k: base64 of random bytes in one JSON string (the proxy bench's incompressible body).
    /// </summary>
    [Params("json-2k", "json-64k", "items-64k", "random-64k")]
    public string Body { get; set; } = "json-2k";

    [GlobalSetup]
    public void Setup()
    {
        _redactor = Redactor.Create(new RedactionOptions());
        var bytes = Body switch
        {
            "json-2k" => Fixtures.JsonBody(2048, 5, secret: false),
            "json-64k" => Fixtures.JsonBody(65536, 5, secret: false),
            "items-64k" => Items(65536),
            "random-64k" => RandomBase64(65536),
            _ => throw new ArgumentException("unknown body " + Body),
        };
        _body = new CapturedBody(bytes, bytes.Length, false, BodyKind.Text, "application/json");
        _exchange = new Exchange { Method = "POST", Path = "/orders" };
    }

    [Benchmark]
    public int Redact()
    {
        _exchange.ResponseBody = _body;
        _exchange.Attributes.Clear();
        return _redactor.Redact(_exchange);
    }

    private static byte[] Items(int size)
    {
        var text = new StringBuilder("{\"items\":[");
        for (var i = 0; text.Length < size - 40; i++)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"{{\"sku\":\"A{i}\",\"qty\":{i % 7}}},");
        }

        text.Append("{\"end\":true}]}");
        return Encoding.UTF8.GetBytes(text.ToString().PadRight(size));
    }

    private static byte[] RandomBase64(int size)
    {
        var random = new Random(17);
        var raw = new byte[(size - 12) / 4 * 3];
        random.NextBytes(raw);
        return Encoding.UTF8.GetBytes("{\"data\":\"" + Convert.ToBase64String(raw) + "\"}");
    }
}
