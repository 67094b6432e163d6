using Microsoft.AspNetCore.Builder;
using SpIstio.Examples.Travel;
using SpIstio.Examples.Travel.Flights;
using SpIstio.Examples.Travel.Notifications;
using SpIstio.Examples.Travel.Payments;
using SpIstio.Examples.Travel.Web;

namespace SpIstio.Examples.Tests;

/// <summary>The four travel services on free loopback ports, wired to each other directly.</summary>
internal sealed class TravelStack : IAsyncDisposable
{
    private readonly List<WebApplication> _apps = [];

    public Uri Web { get; private set; } = null!;

    public Uri Flights { get; private set; } = null!;

    public Uri Payments { get; private set; } = null!;

    public Uri Notifications { get; private set; } = null!;

    /// <summary>Starts the stack; <paramref name="flightsOverride"/> and <paramref name="outboundProxy"/> let a test put a recorder in the path.</summary>
    public static async Task<TravelStack> StartAsync(Uri? flightsOverride = null, Uri? outboundProxy = null)
    {
        var stack = new TravelStack();
        stack.Notifications = await stack.StartAsync(NotificationsService.Build, new TravelServiceOptions());
        stack.Flights = await stack.StartAsync(FlightsService.Build, new TravelServiceOptions());
        stack.Payments = await stack.StartAsync(PaymentsService.Build, new TravelServiceOptions { NotificationsUrl = stack.Notifications });
        stack.Web = await stack.StartAsync(WebService.Build, new TravelServiceOptions
        {
            FlightsUrl = flightsOverride ?? stack.Flights,
            PaymentsUrl = stack.Payments,
            NotificationsUrl = stack.Notifications,
            OutboundProxy = outboundProxy,
        });
        return stack;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var app in _apps)
        {
            await app.DisposeAsync();
        }
    }

    private async Task<Uri> StartAsync(Func<TravelServiceOptions, WebApplication> build, TravelServiceOptions options)
    {
        var app = build(options);
        _apps.Add(app);
        await app.StartAsync();
        return TravelHost.AddressOf(app);
    }
}
