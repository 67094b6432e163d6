using System.Collections.Frozen;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Backend.Api;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Har;
using SpIstio.Backend.Mocks;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ui;

/// <summary>The Trace View: Razor components rendered on the server, its assets, sign-out and HAR downloads.</summary>
public static class UiEndpoints
{
    /// <summary>The most exchanges a whole-trace HAR holds (a HAR of a 10,000-span trace is not useful in any viewer).</summary>
    public const int MaxHarEntries = 1_000;

    private static readonly FrozenDictionary<string, Asset> _assets = LoadAssets();

    /// <summary>Registers the services of the UI.</summary>
    public static IServiceCollection AddTraceView(this IServiceCollection services, bool demo)
    {
        services.AddRazorComponents();
        // Only the forms' antiforgery tokens use data protection. Its keys live in the store (nothing in
        // the home folder), shared by every replica: a form served by one can be posted to another.
        services.AddDataProtection().SetApplicationName("sp-backend");
        // Stored as plain XML, on purpose and said so (docs/production.md): the store's own protection
        // covers them as it covers the captured data. Naming the null encryptor keeps data protection
        // from warning on every first start.
        services.AddOptions<KeyManagementOptions>().Configure<ISpanStore>((options, store) =>
        {
            options.XmlRepository = new StoreXmlRepository(store);
            options.XmlEncryptor = new Microsoft.AspNetCore.DataProtection.XmlEncryption.NullXmlEncryptor();
        });
        services.AddSingleton(new UiOptions(demo));
        return services;
    }

    /// <summary>
    /// Maps the UI's pages, assets and routes. Every page but sign-in, and every UI route but the
    /// assets, needs a Trace View session (<see cref="SpAuth.RequireTraceViewSession"/>); every
    /// form post needs the page's antiforgery token.
    /// </summary>
    public static WebApplication MapTraceView(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseAntiforgery();
        app.MapGet("/ui/assets/{name}", ServeAsset).ExcludeFromDescription();
        var forms = app.MapGroup("/ui").RequireTraceViewSession().WithAuthRefusal(TraceViewRefusal.SignInRedirect).ExcludeFromDescription();
        forms.MapPost("/signout", SignOutAsync);
        forms.MapPost("/mocks/{traceId}/{spanId}", UseAsMockAsync);
        var downloads = app.MapGroup("/ui/har").RequireTraceViewSession().WithAuthRefusal(TraceViewRefusal.Problem).ExcludeFromDescription();
        downloads.MapGet("/{traceId}/{spanId}", ExchangeHarAsync);
        downloads.MapGet("/{traceId}", TraceHarAsync);
        app.MapMockActions();
        app.MapReplayActions();
        app.MapRazorComponents<App>().Add(endpoint =>
        {
            // Every page needs a signed-in reader; sign-in itself only looks at the session (to say who is signed in).
            var page = endpoint.Metadata.OfType<Microsoft.AspNetCore.Components.Endpoints.ComponentTypeMetadata>().FirstOrDefault()?.Type;
            endpoint.Metadata.Add(new Microsoft.AspNetCore.Authorization.AuthorizeAttribute(
                page == typeof(Pages.SignIn) ? SpAuth.OptionalSessionPolicy : SpAuth.SessionPolicy(KeyScope.Read)));
            endpoint.Metadata.Add(TraceViewRefusal.SignInRedirect);
        });
        return app;
    }

    /// <summary>
    /// Refuses a form post without the page's antiforgery token (the session rides in a cookie, so
    /// a cross-site form could otherwise post with it): null when the token is valid, else a 400.
    /// </summary>
    internal static async Task<IResult?> RefuseWithoutTokenAsync(HttpContext context, IAntiforgery antiforgery) =>
        await antiforgery.IsRequestValidAsync(context).ConfigureAwait(false)
            ? null
            : Results.Problem(statusCode: 400, title: "Bad request", detail: "the form's antiforgery token is missing or invalid; reload the page and try again");

    private static async Task<IResult> SignOutAsync(HttpContext context, IAntiforgery antiforgery, TraceViewSessions sessions)
    {
        if (await RefuseWithoutTokenAsync(context, antiforgery).ConfigureAwait(false) is { } refused)
        {
            return refused;
        }

        await sessions.SignOutAsync(context).ConfigureAwait(false);
        return Results.Redirect("/signin");
    }

    /// <summary>The URL of an embedded asset with its content hash, so it can be cached for good.</summary>
    internal static string AssetUrl(string name) =>
        _assets.TryGetValue(name, out var asset) ? "/ui/assets/" + name + "?v=" + asset.ETag.Trim('"') : "/ui/assets/" + name;

    private static IResult ServeAsset(string name, HttpContext context)
    {
        if (!_assets.TryGetValue(name, out var asset))
        {
            return Results.NotFound();
        }

        context.Response.Headers.CacheControl = "public, max-age=3600";
        context.Response.Headers.ETag = asset.ETag;
        if (string.Equals(context.Request.Headers.IfNoneMatch.ToString(), asset.ETag, StringComparison.Ordinal))
        {
            return Results.StatusCode(StatusCodes.Status304NotModified);
        }

        return Results.Bytes(asset.Content, asset.ContentType);
    }

    private static async Task<IResult> ExchangeHarAsync(string traceId, string spanId, HttpContext context, ISpanQueryStore store, ReadBudget budget)
    {
        var tenant = TenantContext.Of(context).TenantId;
        if (!QueryParameters.TryHexId(traceId, 32, out var tid) || !QueryParameters.TryHexId(spanId, 16, out var sid))
        {
            return Results.Problem(statusCode: 400, title: "Bad request", detail: "trace id must be 32 and span id 16 hexadecimal digits");
        }

        using var lease = await budget.AcquireForSpansAsync(store, tenant, [(tid, sid)], HarBuilder.ReadFactor, context.RequestAborted).ConfigureAwait(false);
        if (lease is null)
        {
            return ReadBudget.Busy(context);
        }

        var span = await store.GetSpanAsync(tenant, tid, sid, context.RequestAborted).ConfigureAwait(false);
        if (span is null || !span.IsExchange)
        {
            return Results.Problem(statusCode: 404, title: "Not found", detail: "no exchange " + sid + " in trace " + tid);
        }

        var document = HarBuilder.Build([span], "exchange " + sid + " of trace " + tid, context.RequestServices.GetRequiredService<GrpcCalls.GrpcCallDecoder>());
        await HarBuilder.WriteAsync(context.Response, document, "exchange-" + sid + ".har").ConfigureAwait(false);
        return Results.Empty;
    }

    /// <summary>
    /// The exchange page's "Use as mock": needs the signed-in key to have the admin scope (checked
    /// here rather than by policy, so that a reader sees why on the page instead of a 403), makes the
    /// mock the way the API does, and opens the new mock's page (to edit it); when no mock could be
    /// made it returns to the exchange page, which explains why from <c>?mock=</c> (an outcome code, never free text).
    /// </summary>
    private static async Task<IResult> UseAsMockAsync(
        string traceId, string spanId, HttpContext context, ISpanQueryStore spans, IMockStore mocks, IAntiforgery antiforgery, TimeProvider time)
    {
        if (await RefuseWithoutTokenAsync(context, antiforgery).ConfigureAwait(false) is { } refused)
        {
            return refused;
        }

        if (!QueryParameters.TryHexId(traceId, 32, out var tid) || !QueryParameters.TryHexId(spanId, 16, out var sid))
        {
            return Results.Problem(statusCode: 400, title: "Bad request", detail: "trace id must be 32 and span id 16 hexadecimal digits");
        }

        var page = "/traces/" + tid + "/spans/" + sid;
        var tenant = TenantContext.Of(context);
        if (!tenant.Allows(KeyScope.Admin))
        {
            return Results.Redirect(page + "?mock=" + ExchangeMockOutcome.NeedsAdmin);
        }

        var created = await MockService.CreateFromSpanAsync(
            spans, mocks, tenant.TenantId, tid, sid, new MockFromOptions { Description = "from the Trace View" }, time.GetUtcNow(), context.RequestAborted).ConfigureAwait(false);
        if (created.Mock is { } mock)
        {
            // The new mock's page, where its matcher and response can be edited right away.
            return Results.Redirect(MockActions.Page(mock.Id) + "?saved=from-exchange");
        }

        var outcome = created.Error switch
        {
            MockFromSpanError.TruncatedBody => ExchangeMockOutcome.Truncated,
            MockFromSpanError.NotFound => ExchangeMockOutcome.NotFound,
            _ => ExchangeMockOutcome.NotAnExchange,
        };
        return Results.Redirect(page + "?mock=" + outcome);
    }

    private static async Task<IResult> TraceHarAsync(string traceId, HttpContext context, ISpanQueryStore store, ReadBudget budget)
    {
        var tenant = TenantContext.Of(context).TenantId;
        if (!QueryParameters.TryHexId(traceId, 32, out var tid))
        {
            return Results.Problem(statusCode: 400, title: "Bad request", detail: "trace id must be 32 hexadecimal digits");
        }

        var summaries = await store.GetTraceAsync(tenant, tid, context.RequestAborted).ConfigureAwait(false);
        if (summaries.Count == 0)
        {
            return Results.Problem(statusCode: 404, title: "Not found", detail: "no trace " + tid);
        }

        using var lease = await budget.AcquireForSpansAsync(
            store, tenant, summaries.Where(s => s.IsExchange).Take(MaxHarEntries).Select(s => (tid, s.SpanId)), HarBuilder.ReadFactor, context.RequestAborted).ConfigureAwait(false);
        if (lease is null)
        {
            return ReadBudget.Busy(context);
        }

        var spans = new List<StoredSpan>();
        foreach (var summary in summaries)
        {
            if (!summary.IsExchange)
            {
                continue;
            }

            if (spans.Count == MaxHarEntries)
            {
                break;
            }

            if (await store.GetSpanAsync(tenant, tid, summary.SpanId, context.RequestAborted).ConfigureAwait(false) is { } span)
            {
                spans.Add(span);
            }
        }

        var document = HarBuilder.Build(spans, string.Create(CultureInfo.InvariantCulture, $"trace {tid}: {spans.Count} exchange(s)"), context.RequestServices.GetRequiredService<GrpcCalls.GrpcCallDecoder>());
        await HarBuilder.WriteAsync(context.Response, document, "trace-" + tid + ".har").ConfigureAwait(false);
        return Results.Empty;
    }

    private static FrozenDictionary<string, Asset> LoadAssets()
    {
        const string Prefix = "SpIstio.Backend.Ui.Assets.";
        var assembly = typeof(UiEndpoints).Assembly;
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(Prefix, StringComparison.Ordinal))
            {
                continue;
            }

            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            var content = buffer.ToArray();
            var name = resource[Prefix.Length..];
            var type = name.EndsWith(".css", StringComparison.Ordinal) ? "text/css; charset=utf-8"
                : name.EndsWith(".js", StringComparison.Ordinal) ? "text/javascript; charset=utf-8"
                : name.EndsWith(".svg", StringComparison.Ordinal) ? "image/svg+xml"
                : "application/octet-stream";
            var etag = "\"" + Convert.ToHexStringLower(SHA256.HashData(content).AsSpan(0, 8)) + "\"";
            assets[name] = new Asset(content, type, etag);
        }

        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private sealed record Asset(byte[] Content, string ContentType, string ETag);
}

/// <summary>The outcome codes "Use as mock" returns to the exchange page in <c>?mock=</c> when it made no mock.</summary>
internal static class ExchangeMockOutcome
{
    /// <summary>The signed-in key has no admin scope.</summary>
    public const string NeedsAdmin = "needs-admin";

    /// <summary>The captured response body is truncated.</summary>
    public const string Truncated = "truncated";

    /// <summary>The exchange is gone (retention).</summary>
    public const string NotFound = "not-found";

    /// <summary>The span has no HTTP response.</summary>
    public const string NotAnExchange = "not-an-exchange";
}

/// <summary>UI settings the backend passes down.</summary>
/// <param name="Demo">Demo mode: the sign-in page shows the demo key.</param>
internal sealed record UiOptions(bool Demo);
