using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;

namespace SpIstio.Backend.Tests.Infrastructure;

/// <summary>
/// Validation against vendored official JSON schemas (TestData/) with JsonSchema.Net, a validator
/// independent of the code that writes the documents.
/// </summary>
internal static class SchemaValidation
{
    /// <summary>
    /// The schema in <paramref name="root"/> (a path under TestData/), with the other files of its
    /// folder registered so its relative <c>$ref</c>s (<c>log.json#</c>) resolve without any download.
    /// </summary>
    public static Schema Load(string root)
    {
        var path = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "TestData", root));
        // Formats are asserted, not just annotated: a URL that is not a URI is an error.
        var options = new EvaluationOptions { OutputFormat = OutputFormat.List, RequireFormatValidation = true };
        JsonSchema? built = null;
        foreach (var file in Directory.GetFiles(Path.GetDirectoryName(path)!, "*.json"))
        {
            // From the file, so a relative $id ("har.json#") resolves against the file's own URI.
            var schema = JsonSchema.FromFile(file);
            options.SchemaRegistry.Register(schema);
            if (string.Equals(Path.GetFullPath(file), path, StringComparison.Ordinal))
            {
                built = schema;
            }
        }

        return new Schema(built ?? throw new FileNotFoundException("schema not found", path), options);
    }

    /// <summary>Every error the schema finds in <paramref name="instance"/>, as "location (schema path): message".</summary>
    public static IReadOnlyList<string> Errors(Schema schema, JsonElement instance)
    {
        var results = schema.Root.Evaluate(JsonNode.Parse(instance.GetRawText()), schema.Options);
        if (results.IsValid)
        {
            return [];
        }

        var errors = new List<string>();
        foreach (var node in results.Details.Prepend(results))
        {
            foreach (var error in node.Errors ?? new Dictionary<string, string>())
            {
                errors.Add(node.InstanceLocation + " (" + node.EvaluationPath + "): " + error.Key + ": " + error.Value);
            }
        }

        return errors.Count > 0 ? errors : ["invalid, without an error message"];
    }

    /// <summary>A built schema and the options (registry, formats) to evaluate it with.</summary>
    internal sealed record Schema(JsonSchema Root, EvaluationOptions Options);
}
