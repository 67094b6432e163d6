using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace SpIstio.Examples.Travel;

/// <summary>
/// Where a travel service listens and whom it calls. Base URLs are plain configuration so a
/// capture proxy can be put in front of any service (point callers at the proxy), and
/// <see cref="OutboundProxy"/> routes every outgoing call through an HTTP proxy.
/// </summary>
public sealed record TravelServiceOptions
{
    /// <summary>
    /// Where to listen: <c>host:port</c> as <c>sp</c> takes it (<c>127.0.0.1:8080</c>, <c>[::1]:8080</c>,
    /// <c>0.0.0.0:8080</c>) or a Kestrel URL (<c>http://127.0.0.1:8080</c>); port 0 picks a free
    /// port (see <see cref="TravelHost.AddressOf"/>).
    /// </summary>
    public string Listen { get; init; } = "http://127.0.0.1:0";

    /// <summary>Base URL of the flights service (used by web).</summary>
    public Uri? FlightsUrl { get; init; }

    /// <summary>Base URL of the payments service (used by web).</summary>
    public Uri? PaymentsUrl { get; init; }

    /// <summary>Base URL of the notifications service (used by web and payments).</summary>
    public Uri? NotificationsUrl { get; init; }

    /// <summary>HTTP proxy for every outgoing call (the <c>TRAVEL_OUTBOUND_PROXY</c> variable); none when null.</summary>
    public Uri? OutboundProxy { get; init; }

    /// <summary>Logging for the service; none when null.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>
    /// Reads <c>TRAVEL_LISTEN</c>, <c>TRAVEL_FLIGHTS_URL</c>, <c>TRAVEL_PAYMENTS_URL</c>,
    /// <c>TRAVEL_NOTIFICATIONS_URL</c> and <c>TRAVEL_OUTBOUND_PROXY</c>.
    /// </summary>
    public static TravelServiceOptions FromEnvironment(string defaultListen) => new()
    {
        Listen = Environment.GetEnvironmentVariable("TRAVEL_LISTEN") ?? defaultListen,
        FlightsUrl = UriFromEnvironment("TRAVEL_FLIGHTS_URL") ?? new Uri("http://127.0.0.1:8081"),
        PaymentsUrl = UriFromEnvironment("TRAVEL_PAYMENTS_URL") ?? new Uri("http://127.0.0.1:8082"),
        NotificationsUrl = UriFromEnvironment("TRAVEL_NOTIFICATIONS_URL") ?? new Uri("http://127.0.0.1:8083"),
        OutboundProxy = UriFromEnvironment("TRAVEL_OUTBOUND_PROXY"),
    };

    internal Uri Require(Uri? url, string name) =>
        url ?? throw new InvalidOperationException("The " + name + " base URL is not configured.");

    private static Uri? UriFromEnvironment(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? new Uri(value, UriKind.Absolute) : null;
}

/// <summary>What every travel service shares: the web host and the outgoing HTTP client.</summary>
public static class TravelHost
{
    /// <summary>The W3C trace headers a service relays from its incoming request to the calls it makes.</summary>
    private static readonly string[] _relayedHeaders = ["traceparent", "tracestate"];

    /// <summary>A slim web application builder listening on <see cref="TravelServiceOptions.Listen"/>, logging only through the given factory.</summary>
    public static WebApplicationBuilder CreateBuilder(TravelServiceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        if (options.LoggerFactory is { } loggerFactory)
        {
            builder.Services.AddSingleton(loggerFactory);
        }

        builder.WebHost.UseUrls(ListenUrl(options.Listen));
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
        builder.Services.AddHttpContextAccessor();
        return builder;
    }

    /// <summary>
    /// The Kestrel URL for a listen setting: <c>host:port</c> becomes <c>http://host:port</c>, a URL
    /// stays as it is. Throws <see cref="FormatException"/> naming the value when it is neither.
    /// </summary>
    public static string ListenUrl(string listen)
    {
        ArgumentNullException.ThrowIfNull(listen);
        var value = listen.Trim();
        var url = value.Contains("://", StringComparison.Ordinal) ? value : "http://" + value;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var parsed)
            || (parsed.Scheme != Uri.UriSchemeHttp && parsed.Scheme != Uri.UriSchemeHttps)
            || parsed.Host.Length == 0
            || parsed.PathAndQuery != "/"
            || !HasExplicitPort(value))
        {
            throw new FormatException("listen address '" + listen + "' is not host:port (e.g. 127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080) or an http:// URL with a port");
        }

        return url;
    }

    // Uri fills in 80 for a URL without a port; a listen address must say which port.
    private static bool HasExplicitPort(string value)
    {
        var authority = value.Contains("://", StringComparison.Ordinal) ? value[(value.IndexOf("://", StringComparison.Ordinal) + 3)..] : value;
        authority = authority.TrimEnd('/');
        var colon = authority.LastIndexOf(':');
        return colon > authority.LastIndexOf(']') && colon < authority.Length - 1
            && int.TryParse(authority.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) && port <= 65535;
    }

    /// <summary>
    /// An HTTP client for calls to <paramref name="baseAddress"/> that relays the incoming
    /// request's <c>traceparent</c> and <c>tracestate</c> (as an OpenTelemetry-instrumented app
    /// would; the session id travels in tracestate) and goes through <paramref name="proxy"/>
    /// when one is given. The application disposes it when it stops.
    /// </summary>
    public static HttpClient CreateClient(WebApplication app, Uri baseAddress, Uri? proxy)
    {
        ArgumentNullException.ThrowIfNull(app);
        var handler = new SocketsHttpHandler
        {
            // .NET would otherwise write its own traceparent from Activity.Current; the relay below
            // forwards exactly what came in, so the capture proxy's parent span links up.
            ActivityHeadersPropagator = null,
            UseProxy = proxy is not null,
            Proxy = proxy is null ? null : new WebProxy(proxy) { BypassProxyOnLocal = false },
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
        };
        var relay = new TraceRelayHandler(app.Services.GetRequiredService<IHttpContextAccessor>()) { InnerHandler = handler };
        var client = new HttpClient(relay) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(15) };
        app.Lifetime.ApplicationStopped.Register(client.Dispose);
        return client;
    }

    /// <summary>The address a started application listens on, with the real port.</summary>
    public static Uri AddressOf(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
        var first = addresses?.FirstOrDefault() ?? throw new InvalidOperationException("The application is not listening; start it first.");
        return new Uri(first);
    }

    /// <summary>Maps <c>GET /healthz</c>.</summary>
    public static void MapHealth(WebApplication app) => app.MapGet("/healthz", () => Results.Text("ok\n"));

    /// <summary>An RFC 9457-style problem answer with a machine-readable code.</summary>
    public static IResult Problem(int status, string code, string title, string detail) =>
        Results.Json(new ApiError("https://travel.example/errors/" + code, title, status, code, detail), statusCode: status, contentType: "application/problem+json");

    private sealed class TraceRelayHandler(IHttpContextAccessor accessor) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (accessor.HttpContext?.Request.Headers is { } incoming)
            {
                foreach (var name in _relayedHeaders)
                {
                    var value = incoming[name];
                    if (value.Count > 0 && !request.Headers.Contains(name))
                    {
                        request.Headers.TryAddWithoutValidation(name, (string?)value);
                    }
                }
            }

            return base.SendAsync(request, cancellationToken);
        }
    }
}
