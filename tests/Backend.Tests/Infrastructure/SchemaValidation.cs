using System.Text.Json;
using Json.Schema;

namespace SpIstio.Backend.Tests.Infrastructure;

/// <summary>
/// Validation against vendored official JSON schemas (TestData/) with JsonSchema.Net, a validator
/// independent of the code that writes the documents.
/// </summary>
internal static class SchemaValidation
{
    /// <summary>
    /// Builds the schema in <paramref name="root"/>, registering the other files of its folder
    /// first so its relative <c>$ref</c>s (<c>log.json#</c>) resolve without any download.
    /// </summary>
    public static JsonSchema Load(string root)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "TestData", root);
        var registry = new SchemaRegistry();
        var options = new BuildOptions { SchemaRegistry = registry };
        var baseUri = new Uri("https://schemas.sp-istio.test/" + Path.GetDirectoryName(root)!.Replace('\\', '/') + "/");
        JsonSchema? built = null;
        foreach (var file in Directory.GetFiles(Path.GetDirectoryName(path)!, "*.json").Order(StringComparer.Ordinal))
        {
            var schema = JsonSchema.FromText(File.ReadAllText(file), options, new Uri(baseUri, Path.GetFileName(file)));
            registry.Register(schema);
            if (Path.GetFileName(file) == Path.GetFileName(root))
            {
                built = schema;
            }
        }

        return built ?? throw new FileNotFoundException("schema not found", path);
    }

    /// <summary>Every error the schema finds in <paramref name="instance"/> (formats asserted, not just annotated), as "location: message".</summary>
    public static IReadOnlyList<string> Errors(JsonSchema schema, JsonElement instance)
    {
        var results = schema.Evaluate(instance, new EvaluationOptions { OutputFormat = OutputFormat.List, RequireFormatValidation = true });
        if (results.IsValid)
        {
            return [];
        }

        var errors = new List<string>();
        foreach (var node in (results.Details ?? []).Prepend(results))
        {
            foreach (var error in node.Errors ?? new Dictionary<string, string>())
            {
                errors.Add(node.InstanceLocation + " (" + node.EvaluationPath + "): " + error.Key + ": " + error.Value);
            }
        }

        return errors.Count > 0 ? errors : ["invalid, without an error message"];
    }
}
