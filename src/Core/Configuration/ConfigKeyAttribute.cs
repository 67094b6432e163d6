namespace SpIstio.Core.Configuration;

/// <summary>
/// Names the configuration key an option property binds from, and documents it. The binder, the
/// validator's messages and the generated configuration reference all read this one attribute, so
/// a key is spelled in exactly one place.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class ConfigKeyAttribute(string name, string description) : Attribute
{
    /// <summary>The key as written in YAML or JSON (e.g. <c>sp_backend_url</c>).</summary>
    public string Name { get; } = name;

    /// <summary>What the option does, its default and why that default.</summary>
    public string Description { get; } = description;
}
