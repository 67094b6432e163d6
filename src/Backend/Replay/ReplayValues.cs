using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace SpIstio.Backend.Replay;

/// <summary>
/// The replay values file (<c>sp replay --values replay.yaml</c>): values redaction removed
/// from the recording (a card number, a token), put back into the replayed requests, plus
/// bindings to add or drop.
/// </summary>
/// <remarks>
/// <code>
/// values:                      # a JSON path of the request body, query:NAME, header:NAME or form:NAME → value
///   $.card.number: "4242424242424242"
///   header:authorization: Bearer test-token
/// when_status:                 # used instead when the recorded response had this status
///   402:
///     $.card.number: "4000000000000002"
/// bind: ["2:$.bookingReference"]   # as --bind
/// no_bind: ["$.flights[0].id"]     # as --no-bind
/// </code>
/// A value is put where the recorded request has that field, parameter or header (a JSON path
/// may use <c>*</c> for any one property or index); requests without it are sent as recorded.
/// </remarks>
public sealed class ReplayValues
{
    private readonly List<(ValueLocation Location, string Value)> _values = [];
    private readonly Dictionary<int, List<(ValueLocation Location, string Value)>> _byStatus = [];

    /// <summary>No values.</summary>
    public static ReplayValues Empty { get; } = new();

    /// <summary>Bindings to add (<c>STEP:SOURCE[=STEP,…]</c>).</summary>
    public IReadOnlyList<string> Bind { get; private set; } = [];

    /// <summary>Bindings to drop.</summary>
    public IReadOnlyList<string> NoBind { get; private set; } = [];

    /// <summary>Reads a values file; every problem is listed in the exception's message.</summary>
    /// <exception cref="ReplayException">The file cannot be read or is not a values file.</exception>
    public static ReplayValues Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ReplayException("--values " + path + ": " + ex.Message, ex);
        }

        return Parse(text, path);
    }

    /// <summary>Parses values file text; <paramref name="name"/> names it in errors.</summary>
    /// <exception cref="ReplayException">It is not a values file; the message lists every problem.</exception>
    public static ReplayValues Parse(string text, string name)
    {
        ArgumentNullException.ThrowIfNull(text);
        var problems = new List<string>();
        var values = new ReplayValues();
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException ex)
        {
            throw new ReplayException(name + ": not YAML (line " + ex.Start.Line.ToString(CultureInfo.InvariantCulture) + "): " + ex.Message, ex);
        }

        if (stream.Documents.Count == 0)
        {
            return values;
        }

        if (stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new ReplayException(name + ": expected a mapping with values, when_status, bind and no_bind");
        }

        foreach (var (keyNode, node) in root.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value ?? "";
            switch (key)
            {
                case "values":
                    ReadValues(node, "values", values._values, problems);
                    break;
                case "when_status":
                    if (node is not YamlMappingNode statuses)
                    {
                        problems.Add("when_status: expected a mapping of status → values");
                        break;
                    }

                    foreach (var (statusNode, statusValues) in statuses.Children)
                    {
                        var statusText = (statusNode as YamlScalarNode)?.Value;
                        if (!int.TryParse(statusText, NumberStyles.None, CultureInfo.InvariantCulture, out var status) || status is < 100 or > 599)
                        {
                            problems.Add("when_status: '" + statusText + "' is not an HTTP status");
                            continue;
                        }

                        var list = values._byStatus[status] = [];
                        ReadValues(statusValues, "when_status." + statusText, list, problems);
                    }

                    break;
                case "bind":
                    values.Bind = ReadList(node, key, problems);
                    break;
                case "no_bind":
                    values.NoBind = ReadList(node, key, problems);
                    break;
                default:
                    problems.Add("'" + key + "' is not a key of a values file (values, when_status, bind, no_bind)");
                    break;
            }
        }

        if (problems.Count > 0)
        {
            throw new ReplayException(name + ":" + Environment.NewLine + string.Join(Environment.NewLine, problems.Select(p => "  " + p)));
        }

        return values;
    }

    /// <summary>
    /// Puts the values into <paramref name="request"/> (those under the recorded status first);
    /// returns where each was put.
    /// </summary>
    public IReadOnlyList<string> Apply(ReplayRequest request, int recordedStatus)
    {
        ArgumentNullException.ThrowIfNull(request);
        var applied = new List<string>();
        var specific = _byStatus.GetValueOrDefault(recordedStatus) ?? [];
        foreach (var (location, value) in specific.Concat(_values.Where(v => !specific.Exists(s => s.Location == v.Location))))
        {
            if (request.Set(location, value))
            {
                applied.Add(location.ToString());
            }
        }

        return applied;
    }

    /// <summary>Parses a values-file key: <c>$.json.path</c>, <c>query:NAME</c>, <c>header:NAME</c> or <c>form:NAME</c>.</summary>
    public static ValueLocation? ParseLocation(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var colon = key.IndexOf(':', StringComparison.Ordinal);
        var name = colon < 0 ? "" : key[(colon + 1)..].Trim();
        return key.StartsWith('$') ? new ValueLocation(ValuePlace.Json, key)
            : name.Length == 0 ? null
            : key[..colon].Trim().ToLowerInvariant() switch
            {
                "query" => new ValueLocation(ValuePlace.Query, name),
                "header" => new ValueLocation(ValuePlace.Header, name.ToLowerInvariant()),
                "form" => new ValueLocation(ValuePlace.Form, name),
                _ => null,
            };
    }

    private static void ReadValues(YamlNode node, string where, List<(ValueLocation, string)> into, List<string> problems)
    {
        if (node is not YamlMappingNode mapping)
        {
            problems.Add(where + ": expected a mapping of location → value");
            return;
        }

        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value ?? "";
            if (ParseLocation(key) is not { } location)
            {
                problems.Add(where + ": '" + key + "' is not a location ($.json.path, query:NAME, header:NAME or form:NAME)");
                continue;
            }

            if (valueNode is not YamlScalarNode { Value: { } value })
            {
                problems.Add(where + "." + key + ": expected a text value");
                continue;
            }

            into.Add((location, value));
        }
    }

    private static List<string> ReadList(YamlNode node, string where, List<string> problems)
    {
        if (node is YamlSequenceNode sequence && sequence.Children.All(c => c is YamlScalarNode))
        {
            return [.. sequence.Children.Select(c => ((YamlScalarNode)c).Value ?? "")];
        }

        problems.Add(where + ": expected a list of STEP:SOURCE");
        return [];
    }
}
