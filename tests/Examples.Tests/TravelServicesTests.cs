using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using SpIstio.Examples.Travel;
using SpIstio.Examples.Travel.Flights;
using SpIstio.Examples.Travel.Payments;
using SpIstio.Examples.Travel.Traffic;

namespace SpIstio.Examples.Tests;

public sealed class TravelServicesTests
{
    [Fact]
    public async Task EveryService_AnswersItsHealthCheck()
    {
        await using var stack = await TravelStack.StartAsync();
        using var http = new HttpClient();

        foreach (var service in new[] { stack.Web, stack.Flights, stack.Payments, stack.Notifications })
        {
            Assert.Equal("ok\n", await http.GetStringAsync(new Uri(service, "/healthz")));
        }
    }

    [Fact]
    public async Task FlightSearch_ReturnsTheRoutesFourFlightsWithTheSaverSoldOut()
    {
        await using var stack = await TravelStack.StartAsync();
        using var http = new HttpClient { BaseAddress = stack.Web };

        var result = await http.GetFromJsonAsync<FlightSearchResult>("/api/flights/search?from=lhr&to=JFK&date=2026-07-01&passengers=1");

        Assert.NotNull(result);
        Assert.Equal("LHR", result.From);
        Assert.Equal(4, result.Flights.Count);
        Assert.Equal(0, result.Flights[0].SeatsLeft);
        Assert.All(result.Flights.Skip(1), f => Assert.True(f.SeatsLeft > 0));
        Assert.Equal(result.Flights, FlightsService.Schedule("LHR", "JFK", new DateOnly(2026, 7, 1)));
    }

    [Fact]
    public async Task FlightSearch_BadAirportCode_Is400WithAProblemCode()
    {
        await using var stack = await TravelStack.StartAsync();
        using var http = new HttpClient { BaseAddress = stack.Web };

        using var response = await http.GetAsync("/api/flights/search?from=LONDON&to=JFK&date=2026-07-01");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_route", (await response.Content.ReadFromJsonAsync<ApiError>())!.Code);
    }

    [Fact]
    public async Task CompletingJourney_IsConfirmedWithPaymentAndTwoNotifications()
    {
        await using var stack = await TravelStack.StartAsync();
        using var generator = new TrafficGenerator(new TrafficOptions { WebUrl = stack.Web });
        using var http = new HttpClient { BaseAddress = stack.Web };

        var journey = await generator.PlayJourneyAsync(0, CancellationToken.None);

        Assert.Equal(JourneyScript.Completes, journey.Script);
        Assert.Equal("confirmed", journey.Outcome);
        Assert.Equal(4, journey.TraceIds.Count);
        Assert.Equal(4, journey.TraceIds.Distinct().Count());
        var booking = await http.GetFromJsonAsync<Booking>("/api/bookings/" + journey.BookingReference);
        Assert.Equal("confirmed", booking!.Status);
        Assert.Equal("captured", booking.Payment!.Status);
        Assert.Equal("4242", booking.Payment.CardLast4);
        Assert.Equal(["email", "sms"], booking.Notifications.Select(n => n.Channel));
    }

    [Fact]
    public async Task DeclinedJourney_EndsWith402AndTheBookingStaysUnpaid()
    {
        await using var stack = await TravelStack.StartAsync();
        using var generator = new TrafficGenerator(new TrafficOptions { WebUrl = stack.Web });
        using var http = new HttpClient { BaseAddress = stack.Web };

        var journey = await generator.PlayJourneyAsync(3, CancellationToken.None);

        Assert.Equal(JourneyScript.CardDeclined, journey.Script);
        Assert.Equal("card_declined", journey.Outcome);
        Assert.Equal(3, journey.TraceIds.Count);
        var booking = await http.GetFromJsonAsync<Booking>("/api/bookings/" + journey.BookingReference);
        Assert.Equal("payment_declined", booking!.Status);
        Assert.Null(booking.Payment);
        using var confirm = await http.PostAsync("/api/bookings/" + journey.BookingReference + "/confirm", null);
        Assert.Equal(HttpStatusCode.Conflict, confirm.StatusCode);
    }

    [Fact]
    public async Task SoldOutJourney_StopsAtTheHoldWith409()
    {
        await using var stack = await TravelStack.StartAsync();
        using var generator = new TrafficGenerator(new TrafficOptions { WebUrl = stack.Web });

        var journey = await generator.PlayJourneyAsync(5, CancellationToken.None);

        Assert.Equal(JourneyScript.SoldOut, journey.Script);
        Assert.Equal("sold_out", journey.Outcome);
        Assert.Null(journey.BookingReference);
        Assert.Equal(2, journey.TraceIds.Count);
    }

    [Fact]
    public async Task Payments_DeclinedTestCard_Is402CardDeclined()
    {
        await using var stack = await TravelStack.StartAsync();
        using var http = new HttpClient { BaseAddress = stack.Payments };

        using var response = await http.PostAsJsonAsync("/payments", new PaymentRequest(
            "ABC234", new Money(120m, "EUR"), new Card(PaymentsService.DeclinedCard, "12/29", "123", "Ada Lovelace"), "ada@example.com"));

        Assert.Equal(HttpStatusCode.PaymentRequired, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("card_declined", (await response.Content.ReadFromJsonAsync<ApiError>())!.Code);
    }

    [Fact]
    public async Task TrafficRun_PlaysTheScriptedMixOfOutcomes()
    {
        await using var stack = await TravelStack.StartAsync();
        using var generator = new TrafficGenerator(new TrafficOptions { WebUrl = stack.Web, Journeys = 10, Rate = 50 });
        var sessions = new ConcurrentBag<string>();

        var summary = await generator.RunAsync(j => sessions.Add(j.SessionId), CancellationToken.None);

        Assert.Equal(new TrafficSummary(10, 7, 2, 1, 0), summary);
        Assert.Equal(10, sessions.Distinct().Count());
    }

    [Fact]
    public async Task Web_CallsFlightsThroughTheOutboundProxy_RelayingTraceparentAndSessionTracestate()
    {
        // A stand-in for the capture proxy: answers absolute-form requests itself and records them.
        var seen = new ConcurrentQueue<(string RawTarget, string? TraceParent, string? TraceState)>();
        var recorder = WebApplication.CreateSlimBuilder();
        recorder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var proxy = recorder.Build();
        proxy.Run(async context =>
        {
            seen.Enqueue((context.Features.Get<IHttpRequestFeature>()!.RawTarget, context.Request.Headers.TraceParent, context.Request.Headers["tracestate"]));
            await context.Response.WriteAsJsonAsync(new FlightSearchResult("LHR", "JFK", new DateOnly(2026, 7, 1), 1, []));
        });
        await proxy.StartAsync();
        var proxyAddress = TravelHost.AddressOf(proxy);
        var flightsBehindProxy = new Uri("http://127.0.0.1:9/");
        await using var stack = await TravelStack.StartAsync(flightsOverride: flightsBehindProxy, outboundProxy: proxyAddress);
        using var http = new HttpClient { BaseAddress = stack.Web };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/flights/search?from=LHR&to=JFK&date=2026-07-01");
        request.Headers.Add("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        request.Headers.Add("tracestate", "x-sp-session-id=sess42,congo=t61rcWkgMzE");

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var call = Assert.Single(seen);
        Assert.Equal("http://127.0.0.1:9/flights?from=LHR&to=JFK&date=2026-07-01", call.RawTarget);
        Assert.Equal("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", call.TraceParent);
        Assert.Equal("x-sp-session-id=sess42,congo=t61rcWkgMzE", call.TraceState);
    }
}
