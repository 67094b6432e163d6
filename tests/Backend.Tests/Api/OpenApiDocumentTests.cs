using System.Net;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using SpIstio.Backend.Tests.Infrastructure;

namespace SpIstio.Backend.Tests.Api;

/// <summary>
/// The OpenAPI document a running backend serves: valid by the official OpenAPI 3.1 schema (an
/// independent validator), listing every route the app maps with its path parameters, and
/// declaring the query parameters, request bodies and content types the handlers read themselves.
/// </summary>
public sealed class OpenApiDocumentTests : IAsyncLifetime
{
    private BackendFixture _backend = null!;
    private JsonDocument _document = null!;

    private JsonElement Paths => _document.RootElement.GetProperty("paths");

    public async Task InitializeAsync()
    {
        _backend = await BackendFixture.StartAsync();
        using var response = await _backend.GetAsync("/openapi/v1.json", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        _document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
    }

    public async Task DisposeAsync()
    {
        _document.Dispose();
        await _backend.DisposeAsync();
    }

    [Fact]
    public void TheDocument_IsValidByTheOfficialOpenApi31Schema()
    {
        Assert.StartsWith("3.1.", _document.RootElement.GetProperty("openapi").GetString(), StringComparison.Ordinal);

        var errors = SchemaValidation.Errors(SchemaValidation.Load("openapi-3.1/schema.json"), _document.RootElement);

        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    [Fact]
    public void TheValidator_RefusesABrokenDocument()
    {
        // Proves the schema is really applied: a parameter without its required 'in' and 'name' is refused.
        var broken = JsonDocument.Parse("""{"openapi":"3.1.1","info":{"title":"x","version":"1"},"paths":{"/a":{"get":{"parameters":[{"schema":{"type":"string"}}],"responses":{"200":{"description":"ok"}}}}}}""");

        Assert.NotEmpty(SchemaValidation.Errors(SchemaValidation.Load("openapi-3.1/schema.json"), broken.RootElement));
    }

    [Fact]
    public void EveryRouteTheAppMaps_AppearsWithItsMethodAndPathParameters()
    {
        var endpoints = _backend.Server.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .OfType<RouteEndpoint>()
            // Route handlers: what the generator describes (not gRPC methods, not Razor pages).
            .Where(e => e.Metadata.GetMetadata<MethodInfo>() is not null)
            .ToList();
        var described = endpoints.Where(e => e.Metadata.GetMetadata<IExcludeFromDescriptionMetadata>() is not { ExcludeFromDescription: true }).ToList();

        Assert.Contains(described, e => e.RoutePattern.RawText == "/v1/traces");
        Assert.Contains(described, e => e.RoutePattern.RawText == "/api/sessions/{*id}" && Methods(e).Contains("DELETE"));
        // The API is all described; only the UI, health and metrics routes are left out.
        Assert.DoesNotContain(endpoints.Except(described), e => e.RoutePattern.RawText!.StartsWith("/api/", StringComparison.Ordinal) || e.RoutePattern.RawText.StartsWith("/v1/", StringComparison.Ordinal));
        foreach (var endpoint in described)
        {
            var path = DocumentPath(endpoint.RoutePattern);
            Assert.True(Paths.TryGetProperty(path, out var item), path + " is not in the document");
            foreach (var method in Methods(endpoint))
            {
                Assert.True(item.TryGetProperty(method.ToLowerInvariant(), out var operation), method + " " + path + " is not in the document");
                var declared = Parameters(item, operation).Where(p => p.In == "path").ToDictionary(p => p.Name, p => p.Required);
                foreach (var parameter in endpoint.RoutePattern.Parameters)
                {
                    Assert.True(declared.TryGetValue(parameter.Name, out var required), method + " " + path + " does not declare path parameter '" + parameter.Name + "'");
                    Assert.True(required, method + " " + path + ": path parameter '" + parameter.Name + "' must be required");
                }
            }
        }
    }

    [Theory]
    [InlineData("get", "/api/sessions", "limit,status,service,q,from,to,cursor")]
    [InlineData("get", "/api/traces", "limit,service,operation,route,status,minDuration,maxDuration,q,from,to,cursor")]
    [InlineData("get", "/api/services", "from,to")]
    [InlineData("get", "/api/endpoints", "service,from,to")]
    [InlineData("get", "/api/view", "traceId")]
    [InlineData("get", "/api/detail", "traceId,spanId")]
    [InlineData("get", "/api/mocks", "service,environment,live,limit,after")]
    [InlineData("post", "/api/mocks/har", "service,environment,anyHost")]
    [InlineData("get", "/v1/agent/mocks", "service,environment")]
    public void QueryParametersTheHandlersRead_AreDeclared(string method, string path, string names)
    {
        var operation = Paths.GetProperty(path).GetProperty(method);

        var query = Parameters(Paths.GetProperty(path), operation).Where(p => p.In == "query").Select(p => p.Name).Order(StringComparer.Ordinal);

        Assert.Equal(names.Split(',').Order(StringComparer.Ordinal), query);
    }

    [Theory]
    [InlineData("post", "/v1/traces", "application/x-protobuf,application/json", true)]
    [InlineData("post", "/v1/agent/lookup", "application/x-protobuf,application/json", true)]
    [InlineData("post", "/api/mocks/har", "application/json", true)]
    [InlineData("post", "/api/mocks", "application/json", true)]
    [InlineData("put", "/api/mocks/{id}", "application/json", true)]
    [InlineData("post", "/api/mocks/from-span/{traceId}/{spanId}", "application/json", false)]
    public void RequestBodies_DeclareTheirContentTypes(string method, string path, string contentTypes, bool required)
    {
        var body = Paths.GetProperty(path).GetProperty(method).GetProperty("requestBody");

        Assert.Equal(contentTypes.Split(','), body.GetProperty("content").EnumerateObject().Select(c => c.Name));
        Assert.Equal(required, body.TryGetProperty("required", out var r) && r.GetBoolean());
    }

    [Fact]
    public void EveryOperation_DeclaresItsResponses_WithContentWhereABodyComesBack()
    {
        foreach (var path in Paths.EnumerateObject())
        {
            foreach (var operation in path.Value.EnumerateObject().Where(o => o.Name is "get" or "post" or "put" or "delete"))
            {
                var responses = operation.Value.GetProperty("responses").EnumerateObject().ToList();
                Assert.True(responses.Count > 0, operation.Name + " " + path.Name + " declares no response");
                foreach (var response in responses.Where(r => r.Name.StartsWith('2') && r.Name != "204"))
                {
                    Assert.True(response.Value.TryGetProperty("content", out var content) && content.EnumerateObject().Any(),
                        operation.Name + " " + path.Name + " " + response.Name + " declares no content type");
                }
            }
        }
    }

    private static string[] Methods(RouteEndpoint endpoint) =>
        [.. endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? []];

    /// <summary>The route as the document writes it: <c>{id:long}</c> and <c>{*id}</c> become <c>{id}</c>.</summary>
    private static string DocumentPath(RoutePattern pattern) =>
        "/" + string.Join('/', pattern.PathSegments.Select(segment => string.Concat(segment.Parts.Select(part => part switch
        {
            RoutePatternLiteralPart literal => literal.Content,
            RoutePatternParameterPart parameter => "{" + parameter.Name + "}",
            RoutePatternSeparatorPart separator => separator.Content,
            _ => "",
        }))));

    /// <summary>The parameters of an operation, with those declared on its path item.</summary>
    private static IEnumerable<(string Name, string In, bool Required)> Parameters(JsonElement pathItem, JsonElement operation)
    {
        foreach (var owner in new[] { pathItem, operation })
        {
            if (owner.TryGetProperty("parameters", out var parameters))
            {
                foreach (var p in parameters.EnumerateArray())
                {
                    yield return (p.GetProperty("name").GetString()!, p.GetProperty("in").GetString()!, p.TryGetProperty("required", out var r) && r.GetBoolean());
                }
            }
        }
    }
}
