using System.Globalization;
using Microsoft.Extensions.Hosting;
using SpIstio.Examples.Travel;
using SpIstio.Examples.Travel.Flights;
using SpIstio.Examples.Travel.Notifications;
using SpIstio.Examples.Travel.Payments;
using SpIstio.Examples.Travel.Traffic;
using SpIstio.Examples.Travel.Web;

// Runs one part of the travel demo standalone (`sp demo` hosts them all in one process):
//   travel flights|payments|notifications|web   configured by TRAVEL_* variables (TravelServiceOptions.FromEnvironment)
//   travel traffic [journeys] [rate]             against TRAVEL_WEB_URL (default http://127.0.0.1:8080)
var part = args.Length > 0 ? args[0] : "";
Func<TravelServiceOptions, Microsoft.AspNetCore.Builder.WebApplication>? build = part switch
{
    "web" => WebService.Build,
    "flights" => FlightsService.Build,
    "payments" => PaymentsService.Build,
    "notifications" => NotificationsService.Build,
    _ => null,
};
var defaultListen = part switch
{
    "flights" => "127.0.0.1:8081",
    "payments" => "127.0.0.1:8082",
    "notifications" => "127.0.0.1:8083",
    _ => "127.0.0.1:8080",
};

if (build is not null)
{
    var options = TravelServiceOptions.FromEnvironment(defaultListen);
    try
    {
        TravelHost.ListenUrl(options.Listen);
    }
    catch (FormatException e)
    {
        Console.Error.WriteLine("error: TRAVEL_LISTEN: " + e.Message);
        return 2;
    }

    await using var app = build(options);
    await app.StartAsync();
    Console.WriteLine(part + " listening on " + TravelHost.AddressOf(app));
    // The host's console lifetime stops it on Ctrl+C and SIGTERM.
    await app.WaitForShutdownAsync();
    return 0;
}

if (part == "traffic")
{
    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        stop.Cancel();
    };

    var web = Environment.GetEnvironmentVariable("TRAVEL_WEB_URL") is { Length: > 0 } url ? new Uri(url) : new Uri("http://127.0.0.1:8080");
    using var generator = new TrafficGenerator(new TrafficOptions
    {
        WebUrl = web,
        Journeys = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10,
        Rate = args.Length > 2 ? double.Parse(args[2], CultureInfo.InvariantCulture) : 2,
    });
    var summary = await generator.RunAsync(j => Console.WriteLine($"journey {j.Number} ({j.Script}): {j.Outcome} session {j.SessionId}"), stop.Token);
    Console.WriteLine(summary);
    return summary.Unexpected == 0 ? 0 : 1;
}

Console.Error.WriteLine("usage: travel web|flights|payments|notifications  (TRAVEL_LISTEN, TRAVEL_*_URL, TRAVEL_OUTBOUND_PROXY)");
Console.Error.WriteLine("       travel traffic [journeys] [rate]          (TRAVEL_WEB_URL)");
return 2;
