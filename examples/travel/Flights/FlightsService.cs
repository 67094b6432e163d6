using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace SpIstio.Examples.Travel.Flights;

/// <summary>
/// The airline API: flight search and seat holds. Every search of a route and date returns the
/// same four flights (generated from the route, so no database is needed), and the early
/// "saver" flight is always sold out: holding a seat on it answers 409 <c>sold_out</c>.
/// </summary>
public static class FlightsService
{
    /// <summary>The service name the demo captures it under.</summary>
    public const string Name = "flights";

    private static readonly string[] _aircraft = ["A320neo", "737 MAX 8", "A321XLR", "787-9"];

    /// <summary>Builds the flights service (not started).</summary>
    public static WebApplication Build(TravelServiceOptions options)
    {
        var builder = TravelHost.CreateBuilder(options);
        var app = builder.Build();
        var flights = new ConcurrentDictionary<string, Flight>(StringComparer.Ordinal);
        var holds = new ConcurrentDictionary<string, SeatHold>(StringComparer.Ordinal);
        var time = TimeProvider.System;

        TravelHost.MapHealth(app);
        app.MapGet("/flights", (string? from, string? to, string? date, int? passengers) =>
        {
            if (!IsAirport(from) || !IsAirport(to) || string.Equals(from, to, StringComparison.OrdinalIgnoreCase))
            {
                return TravelHost.Problem(400, "invalid_route", "Invalid route", "from and to must be two different IATA airport codes, e.g. from=LHR&to=JFK");
            }

            if (!DateOnly.TryParseExact(date, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day))
            {
                return TravelHost.Problem(400, "invalid_date", "Invalid date", "date must be yyyy-MM-dd");
            }

            var count = passengers ?? 1;
            var offers = Schedule(from!.ToUpperInvariant(), to!.ToUpperInvariant(), day);
            foreach (var flight in offers)
            {
                flights[flight.Id] = flight;
            }

            return Results.Ok(new FlightSearchResult(from.ToUpperInvariant(), to.ToUpperInvariant(), day, count, offers));
        });

        app.MapPost("/flights/{id}/holds", (string id, SeatHoldRequest request) =>
        {
            if (!flights.TryGetValue(id, out var flight))
            {
                return TravelHost.Problem(404, "flight_not_found", "Flight not found", "No flight " + id + "; search again.");
            }

            if (request.Seats < 1 || request.Seats > 9)
            {
                return TravelHost.Problem(400, "invalid_seats", "Invalid seat count", "Between 1 and 9 seats can be held at once.");
            }

            // The demo's inventory is not depleted by holds, so a long-running demo keeps its
            // scripted mix of outcomes: only a flight listed with no seats is sold out.
            if (flight.SeatsLeft < request.Seats)
            {
                return TravelHost.Problem(409, "sold_out", "Sold out", flight.FlightNumber + " has no seats left in " + flight.CabinClass + ".");
            }

            var holdId = "HLD-" + Guid.NewGuid().ToString("N")[..10].ToUpperInvariant();
            var seats = Enumerable.Range(0, request.Seats)
                .Select(i => string.Create(CultureInfo.InvariantCulture, $"{12 + Random.Shared.Next(20)}{(char)('A' + Random.Shared.Next(6))}"))
                .ToList();
            var hold = new SeatHold(holdId, flight.Id, flight.FlightNumber, request.Seats, seats,
                new Money(flight.Fare.Amount * request.Seats, flight.Fare.Currency), time.GetUtcNow().AddMinutes(15));
            holds[holdId] = hold;
            return Results.Created("/holds/" + holdId, hold);
        });

        app.MapGet("/holds/{id}", (string id) =>
            holds.TryGetValue(id, out var hold)
                ? Results.Ok(hold)
                : TravelHost.Problem(404, "hold_not_found", "Hold not found", "No seat hold " + id + "."));
        return app;
    }

    /// <summary>
    /// The four daily flights of a route: the same for the same route and day (seeded by both),
    /// the first one — the 06:05 saver — sold out.
    /// </summary>
    public static IReadOnlyList<Flight> Schedule(string from, string to, DateOnly day)
    {
        var seed = StableHash(from + to) ^ day.DayNumber;
        var random = new Random(seed);
        var departures = new[] { new TimeOnly(6, 5), new TimeOnly(9, 40), new TimeOnly(13, 15), new TimeOnly(18, 50) };
        var minutes = 75 + random.Next(480);
        var baseFare = 89m + random.Next(300);
        var list = new List<Flight>(departures.Length);
        for (var i = 0; i < departures.Length; i++)
        {
            var number = string.Create(CultureInfo.InvariantCulture, $"SP {100 + ((seed & 0x3FF) % 800) + (i * 2)}");
            var departure = new DateTimeOffset(day.ToDateTime(departures[i]), TimeSpan.Zero);
            var fare = i == 0 ? baseFare * 0.6m : baseFare + (i * 35m);
            list.Add(new Flight(
                Id: string.Create(CultureInfo.InvariantCulture, $"{number.Replace(" ", "", StringComparison.Ordinal)}-{from}-{to}-{day:yyyyMMdd}"),
                FlightNumber: number,
                Carrier: "SkyPath Airways",
                From: from,
                To: to,
                Departure: departure,
                Arrival: departure.AddMinutes(minutes),
                Aircraft: _aircraft[(seed + i) & 3],
                CabinClass: "economy",
                Fare: new Money(decimal.Round(fare, 2), "EUR"),
                SeatsLeft: i == 0 ? 0 : 3 + random.Next(40)));
        }

        return list;
    }

    private static bool IsAirport(string? code) => code is { Length: 3 } && code.All(char.IsAsciiLetter);

    // string.GetHashCode is randomised per process; the schedule must not be.
    private static int StableHash(string text)
    {
        var hash = 17;
        foreach (var c in text)
        {
            hash = unchecked((hash * 31) + char.ToUpperInvariant(c));
        }

        return hash & 0x7FFFFFFF;
    }
}
