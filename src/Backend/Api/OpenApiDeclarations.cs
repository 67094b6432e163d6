using Microsoft.AspNetCore.Builder;
using Microsoft.OpenApi;

namespace SpIstio.Backend.Api;

/// <summary>A query parameter a handler reads itself (from <c>HttpContext.Request.Query</c>), declared for the OpenAPI document.</summary>
/// <param name="Name">The parameter.</param>
/// <param name="Description">What it does and what it takes.</param>
/// <param name="Type">Its JSON type.</param>
/// <param name="Required">Whether a request without it is refused.</param>
internal sealed record QueryParameter(string Name, string Description, JsonSchemaType Type = JsonSchemaType.String, bool Required = false);

/// <summary>
/// Declarations for the OpenAPI document that the handlers' signatures cannot carry: the handlers
/// read their query parameters and bodies themselves (to answer a problem naming the bad
/// parameter, to take protobuf and JSON on one route, to bound what a body may hold), so the
/// generator sees neither. These add them to the operation without changing routing — unlike
/// <c>Accepts</c>, which would make routing answer other content types itself.
/// </summary>
internal static class OpenApiDeclarations
{
    /// <summary>The time range of the statistics routes (default: the last 24 hours).</summary>
    public static readonly QueryParameter[] RangeParameters =
    [
        new("from", "Start of the range: ISO 8601 time or Unix milliseconds (default: 24 hours before 'to')."),
        new("to", "End of the range: ISO 8601 time or Unix milliseconds (default: now)."),
    ];

    /// <summary>Declares query parameters of the operation.</summary>
    public static TBuilder WithQueryParameters<TBuilder>(this TBuilder builder, params QueryParameter[] parameters)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddOpenApiOperationTransformer((operation, _, _) =>
        {
            operation.Parameters ??= [];
            foreach (var p in parameters)
            {
                operation.Parameters.Add(new OpenApiParameter
                {
                    Name = p.Name,
                    In = ParameterLocation.Query,
                    Description = p.Description,
                    Required = p.Required,
                    Schema = new OpenApiSchema { Type = p.Type },
                });
            }

            return Task.CompletedTask;
        });

    /// <summary>Declares the request body: its content types, a JSON one with the schema of <paramref name="type"/> (null: any object), any other as bytes.</summary>
    public static TBuilder WithRequestBody<TBuilder>(this TBuilder builder, string description, bool required, Type? type, params string[] contentTypes)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddOpenApiOperationTransformer(async (operation, context, cancellationToken) =>
        {
            var body = new OpenApiRequestBody { Description = description, Required = required, Content = new Dictionary<string, OpenApiMediaType>() };
            foreach (var contentType in contentTypes)
            {
                body.Content[contentType] = new OpenApiMediaType { Schema = await SchemaAsync(context, type, contentType, cancellationToken).ConfigureAwait(false) };
            }

            operation.RequestBody = body;
        });

    /// <summary>Declares a response whose body the handler writes itself, in each of <paramref name="contentTypes"/>.</summary>
    public static TBuilder WithResponse<TBuilder>(this TBuilder builder, int status, string description, Type? type, params string[] contentTypes)
        where TBuilder : IEndpointConventionBuilder =>
        builder.AddOpenApiOperationTransformer(async (operation, context, cancellationToken) =>
        {
            var response = new OpenApiResponse { Description = description };
            if (contentTypes.Length > 0)
            {
                response.Content = new Dictionary<string, OpenApiMediaType>();
                foreach (var contentType in contentTypes)
                {
                    response.Content[contentType] = new OpenApiMediaType { Schema = await SchemaAsync(context, type, contentType, cancellationToken).ConfigureAwait(false) };
                }
            }

            operation.Responses ??= [];
            operation.Responses[status.ToString(System.Globalization.CultureInfo.InvariantCulture)] = response;
        });

    private static async Task<IOpenApiSchema> SchemaAsync(Microsoft.AspNetCore.OpenApi.OpenApiOperationTransformerContext context, Type? type, string contentType, CancellationToken cancellationToken)
    {
        // Protobuf (or any binary) is bytes to the document; JSON gets the schema of its type, or any object.
        if (!contentType.Contains("json", StringComparison.OrdinalIgnoreCase))
        {
            return new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" };
        }

        return type is null
            ? new OpenApiSchema { Type = JsonSchemaType.Object }
            : await context.GetOrCreateSchemaAsync(type, null, cancellationToken).ConfigureAwait(false);
    }
}
