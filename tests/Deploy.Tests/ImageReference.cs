namespace SpIstio.Deploy.Tests;

/// <summary>Reads the tag out of a container image reference (registry[:port]/path[:tag][@digest]).</summary>
internal static class ImageReference
{
    /// <summary>True when the reference pins a digest, or names a tag that is not <c>latest</c>.</summary>
    public static bool HasPinnedTag(string image)
    {
        if (image.Contains('@', StringComparison.Ordinal))
        {
            return true;
        }

        // A colon after the last slash is a tag; one before it is a registry port.
        var lastSlash = image.LastIndexOf('/');
        var colon = image.IndexOf(':', lastSlash + 1);
        if (colon < 0)
        {
            return false;
        }

        var tag = image[(colon + 1)..];
        return tag.Length > 0 && !tag.Equals("latest", StringComparison.OrdinalIgnoreCase);
    }
}
