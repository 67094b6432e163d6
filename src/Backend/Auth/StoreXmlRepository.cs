using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Auth;

/// <summary>
/// The data-protection key ring in the store: every backend replica on one store protects and
/// unprotects the forms' antiforgery tokens with the same keys, so a page served by one replica
/// can be posted to another. The keys are as sensitive as the store's other contents and get the
/// same protection (the store's access control and encryption at rest).
/// </summary>
/// <remarks>
/// <see cref="IXmlRepository"/> is synchronous; data protection calls it only when it loads or
/// rotates its key ring (at first use, then about once a day), never per request.
/// </remarks>
internal sealed class StoreXmlRepository(ITraceViewSessionStore store) : IXmlRepository
{
    public IReadOnlyCollection<XElement> GetAllElements() =>
        [.. store.ListDataProtectionKeysAsync(CancellationToken.None).GetAwaiter().GetResult().Select(xml => XElement.Parse(xml))];

    public void StoreElement(XElement element, string friendlyName)
    {
        ArgumentNullException.ThrowIfNull(element);
        store.AddDataProtectionKeyAsync(friendlyName, element.ToString(SaveOptions.DisableFormatting), CancellationToken.None).GetAwaiter().GetResult();
    }
}
