using System.Globalization;

namespace SpIstio.Core.Configuration;

/// <summary>
/// Binds the configuration tree into option objects through their <see cref="ConfigKeyAttribute"/>
/// properties. It never throws on user input: a value that does not convert is reported (key path
/// and value) and the option keeps its default, so binding goes on and every problem is found.
/// </summary>
internal sealed class ConfigBinder(List<ConfigProblem> problems)
{
    private readonly List<ConfigProblem> _problems = problems;

    /// <summary>Where each bound value came from, by dotted key path, for the validator's messages.</summary>
    public Dictionary<string, string> Sources { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Binds <paramref name="node"/>'s children into <paramref name="target"/>'s option properties.</summary>
    public void BindObject(object target, ConfigNode node, string path)
    {
        var properties = ConfigMetadata.For(target.GetType());
        foreach (var child in node.Children)
        {
            var property = properties.FirstOrDefault(p => string.Equals(p.Key, child.Name, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                ReportUnknown(child, path, properties);
                continue;
            }

            var childPath = Join(path, property.Key);
            switch (property.Kind)
            {
                case OptionKind.Scalar:
                    if (TryBindScalar(property.ValueType, child, childPath, out var value))
                    {
                        property.Property.SetValue(target, value);
                    }

                    break;
                case OptionKind.Object:
                    if (ExpectMapping(child, childPath))
                    {
                        BindObject(property.Property.GetValue(target)!, child, childPath);
                    }

                    break;
                case OptionKind.ScalarList:
                case OptionKind.ObjectList:
                    if (TryBindList(property, child, childPath, out var list))
                    {
                        // A list given replaces the default list rather than adding to it, so
                        // exemptionRules in a file means exactly the user's rules.
                        property.Property.SetValue(target, list);
                    }

                    break;
            }
        }
    }

    private bool TryBindList(OptionProperty property, ConfigNode node, string path, out object? list)
    {
        var result = property.NewList!();
        list = result;
        if (node.Children.Count == 0)
        {
            // A scalar stands for a one-element list of strings; null or empty for an empty list.
            if (string.IsNullOrEmpty(node.Value))
            {
                return true;
            }

            if (property.Kind == OptionKind.ScalarList && TryBindScalar(property.ValueType, node, path, out var single))
            {
                result.Add(single);
                return true;
            }

            if (property.Kind == OptionKind.ObjectList)
            {
                Report(path, node.Value, "is not a list: expected a sequence of mappings", node.Source);
            }

            return false;
        }

        var indexed = new List<(int Index, ConfigNode Node)>();
        foreach (var child in node.Children)
        {
            if (!int.TryParse(child.Name, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            {
                Report(path, null, string.Concat("is a mapping (has key '", child.Name, "'), expected a list"), child.FirstSource());
                return false;
            }

            indexed.Add((index, child));
        }

        var ok = true;
        var position = 0;
        foreach (var (_, child) in indexed.OrderBy(i => i.Index))
        {
            var elementPath = string.Create(CultureInfo.InvariantCulture, $"{path}[{position}]");
            position++;
            if (property.Kind == OptionKind.ScalarList)
            {
                if (TryBindScalar(property.ValueType, child, elementPath, out var element))
                {
                    result.Add(element);
                }
                else
                {
                    ok = false;
                }
            }
            else
            {
                var element = ConfigMetadata.Create(property.ValueType);
                if (ExpectMapping(child, elementPath))
                {
                    BindObject(element, child, elementPath);
                }

                result.Add(element);
            }
        }

        return ok;
    }

    private bool ExpectMapping(ConfigNode node, string path)
    {
        if (node.Children.Count == 0 && node.Value is not null)
        {
            Report(path, node.Value, "is a single value, expected a mapping of keys", node.Source);
            return false;
        }

        return true;
    }

    private bool TryBindScalar(Type type, ConfigNode node, string path, out object? value)
    {
        value = null;
        if (node.Children.Count > 0)
        {
            Report(path, null, "is a list or mapping, expected a single value", node.FirstSource());
            return false;
        }

        if (node.Source is not null)
        {
            Sources[path] = node.Source;
        }

        if (TryConvert(type, node.Value, out value, out var message))
        {
            return true;
        }

        Report(path, node.Value, message!, node.Source);
        return false;
    }

    /// <summary>Converts one configuration string to an option's type; on failure says why, in words for the user.</summary>
    public static bool TryConvert(Type type, string? raw, out object? value, out string? message)
    {
        value = null;
        message = null;
        var text = raw?.Trim();
        var underlying = Nullable.GetUnderlyingType(type);
        if (underlying is not null)
        {
            if (string.IsNullOrEmpty(text))
            {
                return true;
            }

            type = underlying;
        }

        if (type == typeof(string))
        {
            value = raw ?? "";
            return true;
        }

        if (type == typeof(int))
        {
            if (int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var i))
            {
                value = i;
                return true;
            }

            message = long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)
                ? "is too large for a 32-bit integer"
                : "is not an integer";
        }
        else if (type == typeof(long))
        {
            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
            {
                value = l;
                return true;
            }

            message = "is not an integer";
        }
        else if (type == typeof(double))
        {
            if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d))
            {
                value = d;
                return true;
            }

            message = "is not a number";
        }
        else if (type == typeof(bool))
        {
            if (string.Equals(text, "true", StringComparison.OrdinalIgnoreCase))
            {
                value = true;
                return true;
            }

            if (string.Equals(text, "false", StringComparison.OrdinalIgnoreCase))
            {
                value = false;
                return true;
            }

            message = "is not true or false";
        }
        else if (type == typeof(Uri))
        {
            if (text is { Length: > 0 } && Uri.TryCreate(text, UriKind.Absolute, out var uri))
            {
                value = uri;
                return true;
            }

            message = "is not an absolute URL (e.g. https://backend.example:8090)";
        }
        else if (type.IsEnum)
        {
            var spellings = ConfigMetadata.EnumSpellings(type);
            foreach (var (spelling, enumValue) in spellings)
            {
                if (string.Equals(spelling, text, StringComparison.OrdinalIgnoreCase))
                {
                    value = enumValue;
                    return true;
                }
            }

            message = "is not one of " + string.Join(", ", spellings.Select(s => s.Spelling));
        }
        else
        {
            throw new NotSupportedException("Option type " + type + " has no converter.");
        }

        if (raw is null)
        {
            message = "is empty: " + message!.Replace("is not ", "expected ", StringComparison.Ordinal);
        }

        return false;
    }

    private void ReportUnknown(ConfigNode child, string path, IReadOnlyList<OptionProperty> properties)
    {
        var suggestion = properties
            .Select(p => (p.Key, Distance: Distance(Normalize(p.Key), Normalize(child.Name))))
            .Where(c => c.Distance <= Math.Max(2, c.Key.Length / 4))
            .OrderBy(c => c.Distance)
            .Select(c => c.Key)
            .FirstOrDefault();
        var message = string.Concat("unknown key '", child.Name, "' (ignored)");
        if (suggestion is not null)
        {
            message = string.Concat(message, "; did you mean '", suggestion, "'?");
        }

        var childPath = child.Name.All(char.IsAsciiDigit)
            ? string.Concat(path, "[", child.Name, "]")
            : Join(path, child.Name);
        _problems.Add(new ConfigProblem(childPath, null, message, ProblemSeverity.Warning, child.FirstSource()));
    }

    private void Report(string path, string? value, string message, string? source) =>
        _problems.Add(new ConfigProblem(path, value, message, ProblemSeverity.Error, source));

    private static string Join(string path, string key) => path.Length == 0 ? key : string.Concat(path, ".", key);

    // Spelling differences that only change style (maxFailures, MAX_FAILURES, max-failures) count as no difference.
    private static string Normalize(string key) =>
        new(key.Where(char.IsAsciiLetterOrDigit).Select(char.ToLowerInvariant).ToArray());

    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
