using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Http;
using SpIstio.Backend.Auth;
using SpIstio.Backend.Storage;

namespace SpIstio.Backend.Ui;

/// <summary>What every signed-in page needs: the request, the store and the tenant of the Trace View session.</summary>
public abstract class UiPageBase : ComponentBase
{
    /// <summary>The request (static server-side rendering supplies it).</summary>
    [CascadingParameter]
    public HttpContext HttpContext { get; set; } = default!;

    /// <summary>The store.</summary>
    [Inject]
    public ISpanStore Store { get; set; } = default!;

    /// <summary>The clock.</summary>
    [Inject]
    public TimeProvider Time { get; set; } = default!;

    /// <summary>The signed-in tenant: every query is scoped to it.</summary>
    protected long Tenant => TenantContext.Of(HttpContext).TenantId;

    /// <summary>Cancelled when the browser goes away.</summary>
    protected CancellationToken Aborted => HttpContext.RequestAborted;

    /// <summary>The sentence for a form handler's <c>?problem=</c> code (<see cref="UiProblem"/>), or null.</summary>
    protected async Task<string?> DescribeProblemAsync(string? code)
    {
        if (string.IsNullOrEmpty(code))
        {
            return null;
        }

        var tenants = await Store.ListTenantsAsync(Aborted).ConfigureAwait(false);
        return UiProblem.Describe(code, tenants.FirstOrDefault(t => t.Id == Tenant)?.Name ?? "<tenant>");
    }

    /// <summary>What the error state says when the store fails.</summary>
    protected static string StoreProblem(Exception ex) =>
        "The store did not answer (" + ex.GetType().Name + ": " + ex.Message + "). Check the backend log and /readyz, then reload the page.";
}
