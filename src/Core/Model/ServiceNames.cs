namespace SpIstio.Core.Model;

/// <summary>Well-known service names.</summary>
public static class ServiceNames
{
    /// <summary>
    /// The name used when nothing better is known; the original plugin's default, so an exchange
    /// from either agent groups the same way.
    /// </summary>
    public const string Default = "default-service";
}
