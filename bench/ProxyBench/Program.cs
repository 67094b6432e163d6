using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

// bench/proxy/run.sh starts this twice:
//   ProxyBench upstream PORT   - answers GET /1k and GET /64k with fixed bytes (application/json)
//   ProxyBench receiver PORT   - accepts POST /v1/traces with 200 and discards the payload
if (args.Length != 2 || !int.TryParse(args[1], NumberStyles.None, CultureInfo.InvariantCulture, out var port))
{
    Console.Error.WriteLine("usage: ProxyBench upstream|receiver PORT");
    return 1;
}

var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
builder.WebHost.UseKestrel(k =>
{
    k.Listen(IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http1);
    k.AddServerHeader = false;
    k.Limits.MaxRequestBodySize = null;
});
var app = builder.Build();

switch (args[0])
{
    case "upstream":
        var small = Body(1024);
        var large = Body(64 * 1024);
        app.Run(context =>
        {
            var body = context.Request.Path.Value == "/64k" ? large : small;
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = body.Length;
            return context.Response.Body.WriteAsync(body, context.RequestAborted).AsTask();
        });
        break;
    case "receiver":
        app.Run(async context =>
        {
            await context.Request.Body.CopyToAsync(Stream.Null, context.RequestAborted);
            context.Response.StatusCode = StatusCodes.Status200OK;
        });
        break;
    default:
        Console.Error.WriteLine("unknown mode " + args[0]);
        return 1;
}

await app.RunAsync();
return 0;

// A JSON document of exactly `size` bytes, so capture sees text like a real API response.
static byte[] Body(int size)
{
    var bytes = new byte[size];
    bytes.AsSpan().Fill((byte)'a');
    "{\"data\":\""u8.CopyTo(bytes);
    "\"}"u8.CopyTo(bytes.AsSpan(size - 2));
    return bytes;
}
