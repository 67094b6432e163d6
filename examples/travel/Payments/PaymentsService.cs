using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace SpIstio.Examples.Travel.Payments;

/// <summary>
/// Card payments. The card number <see cref="DeclinedCard"/> is always declined (402
/// <c>card_declined</c>), like a payment provider's test card; any other well-formed number is
/// captured and a receipt is sent through the notifications service.
/// </summary>
public static class PaymentsService
{
    /// <summary>The service name the demo captures it under.</summary>
    public const string Name = "payments";

    /// <summary>A card that is always declined.</summary>
    public const string DeclinedCard = "4000000000000002";

    /// <summary>A card that is always approved.</summary>
    public const string ApprovedCard = "4242424242424242";

    /// <summary>Builds the payments service (not started).</summary>
    public static WebApplication Build(TravelServiceOptions options)
    {
        var builder = TravelHost.CreateBuilder(options);
        var app = builder.Build();
        var notifications = TravelHost.CreateClient(app, options.Require(options.NotificationsUrl, "notifications"), options.OutboundProxy);
        var payments = new ConcurrentDictionary<string, Payment>(StringComparer.Ordinal);
        var time = TimeProvider.System;

        TravelHost.MapHealth(app);
        app.MapPost("/payments", async (PaymentRequest request, CancellationToken cancellationToken) =>
        {
            var number = request.Card.Number.Replace(" ", "", StringComparison.Ordinal);
            if (number.Length is < 12 or > 19 || !number.All(char.IsAsciiDigit))
            {
                return TravelHost.Problem(422, "invalid_card", "Invalid card", "The card number is not a valid card number.");
            }

            if (request.Amount.Amount <= 0)
            {
                return TravelHost.Problem(422, "invalid_amount", "Invalid amount", "The amount must be positive.");
            }

            if (string.Equals(number, DeclinedCard, StringComparison.Ordinal))
            {
                return TravelHost.Problem(402, "card_declined", "Card declined", "Your card was declined (generic_decline). Try another card.");
            }

            var payment = new Payment(
                PaymentId: "pay_" + Guid.NewGuid().ToString("N")[..16],
                BookingReference: request.BookingReference,
                Status: "captured",
                Amount: request.Amount,
                CardBrand: Brand(number),
                CardLast4: number[^4..],
                AuthorizationCode: Random.Shared.Next(100000, 999999).ToString(CultureInfo.InvariantCulture),
                CreatedAt: time.GetUtcNow());
            payments[payment.PaymentId] = payment;

            // The receipt is part of the payment: a failure to queue it fails the request, which
            // the front end sees as a 502 (and the trace shows where it broke).
            var receipt = new NotificationRequest("email", request.CustomerEmail, "payment-receipt", new Dictionary<string, string>
            {
                ["bookingReference"] = request.BookingReference,
                ["amount"] = request.Amount.Amount.ToString("0.00", CultureInfo.InvariantCulture) + " " + request.Amount.Currency,
                ["card"] = payment.CardBrand + " •••• " + payment.CardLast4,
            });
            using var sent = await notifications.PostAsJsonAsync("/notifications", receipt, cancellationToken);
            if (!sent.IsSuccessStatusCode)
            {
                return TravelHost.Problem(502, "receipt_failed", "Receipt not sent", "The notifications service answered " + (int)sent.StatusCode + ".");
            }

            return Results.Created("/payments/" + payment.PaymentId, payment);
        });

        app.MapGet("/payments/{id}", (string id) =>
            payments.TryGetValue(id, out var payment)
                ? Results.Ok(payment)
                : TravelHost.Problem(404, "payment_not_found", "Payment not found", "No payment " + id + "."));
        return app;
    }

    private static string Brand(string number) => number[0] switch
    {
        '4' => "visa",
        '5' => "mastercard",
        '3' => "amex",
        _ => "card",
    };
}
