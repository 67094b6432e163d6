using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace SpIstio.Examples.Travel.Web;

/// <summary>
/// The front end's JSON API, what the browser calls: search flights, book (hold a seat), pay,
/// confirm. It calls flights, payments and notifications and relays the browser's trace headers,
/// so the session id the browser put in <c>tracestate</c> reaches every service.
/// </summary>
public static class WebService
{
    /// <summary>The service name the demo captures it under.</summary>
    public const string Name = "web";

    /// <summary>Builds the web front end (not started).</summary>
    public static WebApplication Build(TravelServiceOptions options)
    {
        var builder = TravelHost.CreateBuilder(options);
        var app = builder.Build();
        var flights = TravelHost.CreateClient(app, options.Require(options.FlightsUrl, "flights"), options.OutboundProxy);
        var payments = TravelHost.CreateClient(app, options.Require(options.PaymentsUrl, "payments"), options.OutboundProxy);
        var notifications = TravelHost.CreateClient(app, options.Require(options.NotificationsUrl, "notifications"), options.OutboundProxy);
        var bookings = new ConcurrentDictionary<string, Booking>(StringComparer.Ordinal);

        TravelHost.MapHealth(app);
        app.MapGet("/api/flights/search", async (HttpContext context, CancellationToken cancellationToken) =>
        {
            using var response = await flights.GetAsync("/flights" + context.Request.QueryString, cancellationToken);
            return response.IsSuccessStatusCode
                ? Results.Ok(await response.Content.ReadFromJsonAsync<FlightSearchResult>(cancellationToken))
                : await RelayProblemAsync(response, cancellationToken);
        });

        app.MapPost("/api/bookings", async (BookingRequest request, CancellationToken cancellationToken) =>
        {
            var reference = NewReference();
            using var response = await flights.PostAsJsonAsync(
                "/flights/" + Uri.EscapeDataString(request.FlightId) + "/holds",
                new SeatHoldRequest(1, request.PassengerName, reference),
                cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                return await RelayProblemAsync(response, cancellationToken);
            }

            var hold = (await response.Content.ReadFromJsonAsync<SeatHold>(cancellationToken))!;
            var booking = new Booking(reference, "held", request.FlightId, request.PassengerName, request.Email, request.Phone, hold, null, []);
            bookings[reference] = booking;
            return Results.Created("/api/bookings/" + reference, booking);
        });

        app.MapGet("/api/bookings/{reference}", (string reference) =>
            bookings.TryGetValue(reference, out var booking) ? Results.Ok(booking) : NotFound(reference));

        app.MapPost("/api/bookings/{reference}/payment", async (string reference, CheckoutRequest request, CancellationToken cancellationToken) =>
        {
            if (!bookings.TryGetValue(reference, out var booking))
            {
                return NotFound(reference);
            }

            if (booking.Status is not ("held" or "payment_declined"))
            {
                return TravelHost.Problem(409, "not_payable", "Booking not payable", "Booking " + reference + " is " + booking.Status + ".");
            }

            using var response = await payments.PostAsJsonAsync(
                "/payments",
                new PaymentRequest(reference, booking.Hold.Total, request.Card, booking.Email),
                cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                if (response.StatusCode == HttpStatusCode.PaymentRequired)
                {
                    bookings[reference] = booking with { Status = "payment_declined" };
                }

                return await RelayProblemAsync(response, cancellationToken);
            }

            var payment = await response.Content.ReadFromJsonAsync<Payment>(cancellationToken);
            var paid = booking with { Status = "paid", Payment = payment };
            bookings[reference] = paid;
            return Results.Ok(paid);
        });

        app.MapPost("/api/bookings/{reference}/confirm", async (string reference, CancellationToken cancellationToken) =>
        {
            if (!bookings.TryGetValue(reference, out var booking))
            {
                return NotFound(reference);
            }

            if (booking.Status != "paid")
            {
                return TravelHost.Problem(409, "not_paid", "Booking not paid", "Booking " + reference + " is " + booking.Status + "; pay first.");
            }

            var data = new Dictionary<string, string>
            {
                ["bookingReference"] = reference,
                ["passenger"] = booking.PassengerName,
                ["flight"] = booking.Hold.FlightNumber,
                ["seat"] = string.Join(", ", booking.Hold.SeatNumbers),
            };
            var sent = new List<Notification>();
            foreach (var (channel, to, template) in new[] { ("email", booking.Email, "booking-confirmed"), ("sms", booking.Phone, "booking-confirmed-sms") })
            {
                using var response = await notifications.PostAsJsonAsync("/notifications", new NotificationRequest(channel, to, template, data), cancellationToken);
                if (!response.IsSuccessStatusCode)
                {
                    return await RelayProblemAsync(response, cancellationToken);
                }

                sent.Add((await response.Content.ReadFromJsonAsync<Notification>(cancellationToken))!);
            }

            var confirmed = booking with { Status = "confirmed", Notifications = sent };
            bookings[reference] = confirmed;
            return Results.Ok(confirmed);
        });
        return app;
    }

    /// <summary>Passes a downstream problem on to the browser with its status; anything unreadable becomes a 502.</summary>
    private static async Task<IResult> RelayProblemAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        try
        {
            var problem = await response.Content.ReadFromJsonAsync<ApiError>(cancellationToken);
            if (problem is not null)
            {
                return TravelHost.Problem(status, problem.Code, problem.Title, problem.Detail);
            }
        }
        catch (System.Text.Json.JsonException)
        {
            // Not a problem document (a proxy's error page): reported below.
        }

        return TravelHost.Problem(502, "upstream_failed", "Upstream failed", string.Create(CultureInfo.InvariantCulture, $"{response.RequestMessage?.RequestUri} answered {status}."));
    }

    private static IResult NotFound(string reference) =>
        TravelHost.Problem(404, "booking_not_found", "Booking not found", "No booking " + reference + ".");

    private static string NewReference()
    {
        // Six letters and digits without look-alikes (0/O, 1/I), like an airline booking reference.
        const string Alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        Span<char> chars = stackalloc char[6];
        for (var i = 0; i < chars.Length; i++)
        {
            chars[i] = Alphabet[Random.Shared.Next(Alphabet.Length)];
        }

        return new string(chars);
    }
}
