using System.Collections.Concurrent;
using System.Reflection;

namespace SpIstio.Core.Configuration;

/// <summary>How a <see cref="ConfigKeyAttribute"/> property is read from configuration.</summary>
internal enum OptionKind
{
    /// <summary>One value: string, number, bool, URL, enum.</summary>
    Scalar,

    /// <summary>A nested options object (a YAML mapping).</summary>
    Object,

    /// <summary>A list of scalars (a YAML sequence, or one scalar).</summary>
    ScalarList,

    /// <summary>A list of options objects (a YAML sequence of mappings).</summary>
    ObjectList,
}

/// <summary>One option property as the binder, validator and reference generator see it.</summary>
internal sealed record OptionProperty(PropertyInfo Property, string Key, string Description, OptionKind Kind, Type ValueType);

/// <summary>
/// Reflection over the option classes, done once per type: every property carrying
/// <see cref="ConfigKeyAttribute"/>, and how it binds.
/// </summary>
internal static class ConfigMetadata
{
    private static readonly ConcurrentDictionary<Type, IReadOnlyList<OptionProperty>> _cache = new();

    private static readonly (string Spelling, DirectionSetting Value)[] _directionSpellings =
    [
        ("inbound", DirectionSetting.Inbound),
        ("outbound", DirectionSetting.Outbound),
        ("server", DirectionSetting.Inbound),
        ("client", DirectionSetting.Outbound),
        ("auto", DirectionSetting.Auto),
    ];

    /// <summary>The option properties of <paramref name="type"/>, in declaration order.</summary>
    public static IReadOnlyList<OptionProperty> For(Type type) => _cache.GetOrAdd(type, Build);

    /// <summary>The configuration key of one property, e.g. <c>Key&lt;AgentOptions&gt;("CacheTtlSeconds")</c> is <c>cache_ttl_seconds</c>.</summary>
    public static string Key<T>(string propertyName) =>
        For(typeof(T)).First(p => p.Property.Name == propertyName).Key;

    /// <summary>
    /// Every spelling an enum option accepts, in the order shown to users. traffic_direction also
    /// takes the original plugin's server/client, which mean inbound/outbound.
    /// </summary>
    public static IReadOnlyList<(string Spelling, object Value)> EnumSpellings(Type enumType)
    {
        if (enumType == typeof(DirectionSetting))
        {
            return _directionSpellings.Select(s => (s.Spelling, (object)s.Value)).ToList();
        }

        return Enum.GetValues(enumType).Cast<object>()
            .Select(v => (SnakeCase(Enum.GetName(enumType, v)!), v))
            .ToList();
    }

    // ReplayOnly -> replay_only, the style of every key.
    private static string SnakeCase(string name)
    {
        var text = new System.Text.StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i]))
            {
                text.Append('_');
            }

            text.Append(char.ToLowerInvariant(name[i]));
        }

        return text.ToString();
    }

    /// <summary>The spelling used when showing an enum value (defaults in the reference).</summary>
    public static string EnumName(object value) =>
        EnumSpellings(value.GetType()).First(s => s.Value.Equals(value)).Spelling;

    /// <summary>True for a class that is itself a set of options (has <see cref="ConfigKeyAttribute"/> properties).</summary>
    public static bool IsOptionsType(Type type) =>
        type.IsClass && type != typeof(string) && type != typeof(Uri)
        && type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Any(p => p.GetCustomAttribute<ConfigKeyAttribute>() is not null);

    private static List<OptionProperty> Build(Type type)
    {
        var result = new List<OptionProperty>();
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).OrderBy(p => p.MetadataToken))
        {
            var attribute = property.GetCustomAttribute<ConfigKeyAttribute>();
            if (attribute is null)
            {
                continue;
            }

            var propertyType = property.PropertyType;
            OptionKind kind;
            Type valueType;
            if (propertyType.IsGenericType && propertyType.GetGenericTypeDefinition() == typeof(List<>))
            {
                valueType = propertyType.GetGenericArguments()[0];
                kind = IsOptionsType(valueType) ? OptionKind.ObjectList : OptionKind.ScalarList;
            }
            else if (IsOptionsType(propertyType))
            {
                valueType = propertyType;
                kind = OptionKind.Object;
            }
            else
            {
                valueType = propertyType;
                kind = OptionKind.Scalar;
            }

            result.Add(new OptionProperty(property, attribute.Name, attribute.Description, kind, valueType));
        }

        return result;
    }
}
