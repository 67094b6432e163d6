using System.Collections;
using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.CompilerServices;

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

/// <summary>
/// One option property as the binder, validator and reference generator see it. A list property
/// makes its empty list through <paramref name="NewList"/> (null for the other kinds).
/// </summary>
internal sealed record OptionProperty(PropertyInfo Property, string Key, string Description, OptionKind Kind, Type ValueType, Func<IList>? NewList);

/// <summary>
/// Reflection over the option classes, done once per type: every property carrying
/// <see cref="ConfigKeyAttribute"/>, and how it binds.
/// </summary>
/// <remarks>
/// The option classes are listed here once (<see cref="_optionTypes"/>), each through a generic
/// method whose type parameter tells the trimmer to keep its public properties and constructor:
/// the agent ships as a Native AOT binary, where reflection sees only what the trimmer kept, and a
/// property's type reached by walking <see cref="PropertyInfo.PropertyType"/> carries no such
/// promise. A new option class is added to the list; one that is missing stops every binding with
/// an error naming it (the binder and reference tests walk every option).
/// </remarks>
internal static class ConfigMetadata
{
    private static readonly Dictionary<Type, OptionType> _optionTypes = new OptionType[]
    {
        OptionType.Of<AgentOptions>(),
        OptionType.Of<CollectionRulesOptions>(),
        OptionType.Of<HttpCollectionRules>(),
        OptionType.Of<ServerRule>(),
        OptionType.Of<ClientRule>(),
        OptionType.Of<ExemptionRule>(),
        OptionType.Of<CircuitBreakerOptions>(),
        OptionType.Of<CaptureOptions>(),
        OptionType.Of<StreamCaptureOptions>(),
        OptionType.Of<GrpcCaptureOptions>(),
        OptionType.Of<RedactionOptions>(),
        OptionType.Of<SamplingOptions>(),
        OptionType.Of<ExportOptions>(),
        OptionType.Of<CacheOptions>(),
        OptionType.Of<CacheRule>(),
        OptionType.Of<ProxyOptions>(),
        OptionType.Of<ExtProcServerOptions>(),
    }.ToDictionary(t => t.Type);

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
    public static IReadOnlyList<OptionProperty> For(Type type) => _cache.GetOrAdd(type, static t => Build(Registered(t)));

    /// <summary>A new instance of the option class <paramref name="type"/>, with its defaults.</summary>
    public static object Create(Type type) => Registered(type).Create();

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

        // By name, not Enum.GetValues(Type): that one makes an array of the enum type at run time,
        // which Native AOT cannot promise; GetNames keeps the same (value) order.
        return Enum.GetNames(enumType)
            .Select(name => (SnakeCase(name), Enum.Parse(enumType, name)))
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
    public static bool IsOptionsType(Type type) => _optionTypes.ContainsKey(type);

    private static OptionType Registered(Type type) =>
        _optionTypes.TryGetValue(type, out var registered)
            ? registered
            : throw new InvalidOperationException("option class " + type.FullName + " is not listed in ConfigMetadata's option types");

    private static List<OptionProperty> Build(OptionType type)
    {
        var result = new List<OptionProperty>();
        var properties = type.Properties();

        // Declaration order, which the reference and the problem lists follow. Under the JIT the
        // metadata token gives it for sure; Native AOT has no tokens and keeps declaration order.
        var ordered = RuntimeFeature.IsDynamicCodeSupported ? properties.OrderBy(p => p.MetadataToken) : properties.AsEnumerable();
        foreach (var property in ordered)
        {
            var attribute = property.GetCustomAttribute<ConfigKeyAttribute>();
            if (attribute is null)
            {
                continue;
            }

            var propertyType = property.PropertyType;
            OptionKind kind;
            Type valueType;
            Func<IList>? newList = null;
            if (propertyType.IsGenericType && propertyType.GetGenericTypeDefinition() == typeof(List<>))
            {
                valueType = propertyType.GetGenericArguments()[0];
                if (IsOptionsType(valueType))
                {
                    kind = OptionKind.ObjectList;
                    newList = _optionTypes[valueType].CreateList;
                }
                else
                {
                    kind = OptionKind.ScalarList;
                    newList = ScalarList(valueType, property);
                }
            }
            else if (IsOptionsType(propertyType))
            {
                valueType = propertyType;
                kind = OptionKind.Object;
            }
            else if (propertyType.IsClass && propertyType != typeof(string) && propertyType != typeof(Uri))
            {
                throw new InvalidOperationException("option " + type.Type.Name + "." + property.Name + " has class type " + propertyType.Name + ", which is not listed in ConfigMetadata's option types");
            }
            else
            {
                valueType = propertyType;
                kind = OptionKind.Scalar;
            }

            result.Add(new OptionProperty(property, attribute.Name, attribute.Description, kind, valueType, newList));
        }

        return result;
    }

    // The scalar lists options use; a list of anything else is a new case to add here.
    private static Func<IList> ScalarList(Type element, PropertyInfo property) =>
        element == typeof(string) ? static () => new List<string>()
        : element == typeof(int) ? static () => new List<int>()
        : throw new InvalidOperationException("option " + property.DeclaringType?.Name + "." + property.Name + " is a list of " + element.Name + ", which ConfigMetadata cannot make");

    /// <summary>An option class, with what binding needs kept by the trimmer: its public properties and constructor.</summary>
    private sealed class OptionType
    {
        private OptionType([DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] Type type, Func<object> create, Func<IList> createList)
        {
            Type = type;
            Create = create;
            CreateList = createList;
        }

        [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)]
        public Type Type { get; }

        public Func<object> Create { get; }

        public Func<IList> CreateList { get; }

        public static OptionType Of<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] T>()
            where T : class, new() => new(typeof(T), static () => new T(), static () => new List<T>());

        public PropertyInfo[] Properties() => Type.GetProperties(BindingFlags.Public | BindingFlags.Instance);
    }
}
