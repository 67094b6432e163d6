namespace SpIstio.Backend.Ui;

/// <summary>URLs of Trace View pages built from stored values.</summary>
public static class UiLinks
{
    /// <summary>
    /// The session page of any id ingest accepts. Each '/'-separated part is escaped on its own and the
    /// slashes stay: an escaped slash (%2F) is never decoded by ASP.NET Core routing, so an id such as
    /// <c>tenant/42</c> would not reach the page; the page's catch-all parameter joins the parts again.
    /// </summary>
    public static string Session(string sessionId)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        var parts = sessionId.Split('/');
        for (int i = 0; i < parts.Length; i++)
        {
            parts[i] = Uri.EscapeDataString(parts[i]);
        }

        return "/sessions/" + string.Join('/', parts);
    }

    /// <summary>The trace page.</summary>
    public static string Trace(string traceId) => "/traces/" + traceId;
}
