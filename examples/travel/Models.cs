namespace SpIstio.Examples.Travel;

// The JSON the services exchange. Property names are camelCase on the wire (ASP.NET's web
// defaults), as a typical public travel API would have them.

/// <summary>A sum of money in a currency (ISO 4217).</summary>
public sealed record Money(decimal Amount, string Currency);

/// <summary>One flight offer of the airline API.</summary>
public sealed record Flight(
    string Id,
    string FlightNumber,
    string Carrier,
    string From,
    string To,
    DateTimeOffset Departure,
    DateTimeOffset Arrival,
    string Aircraft,
    string CabinClass,
    Money Fare,
    int SeatsLeft);

/// <summary>Answer of <c>GET /flights</c>.</summary>
public sealed record FlightSearchResult(string From, string To, DateOnly Date, int Passengers, IReadOnlyList<Flight> Flights);

/// <summary>Body of <c>POST /flights/{id}/holds</c>.</summary>
public sealed record SeatHoldRequest(int Seats, string PassengerName, string BookingReference);

/// <summary>A seat hold: the seats are kept for the passenger until <see cref="ExpiresAt"/>.</summary>
public sealed record SeatHold(string HoldId, string FlightId, string FlightNumber, int Seats, IReadOnlyList<string> SeatNumbers, Money Total, DateTimeOffset ExpiresAt);

/// <summary>A problem answer (RFC 9457 style) with a machine-readable <see cref="Code"/>.</summary>
public sealed record ApiError(string Type, string Title, int Status, string Code, string Detail);

/// <summary>Card details as a checkout page posts them.</summary>
public sealed record Card(string Number, string Expiry, string Cvc, string HolderName);

/// <summary>Body of <c>POST /payments</c>.</summary>
public sealed record PaymentRequest(string BookingReference, Money Amount, Card Card, string CustomerEmail);

/// <summary>A captured payment.</summary>
public sealed record Payment(string PaymentId, string BookingReference, string Status, Money Amount, string CardBrand, string CardLast4, string AuthorizationCode, DateTimeOffset CreatedAt);

/// <summary>Body of <c>POST /notifications</c>.</summary>
public sealed record NotificationRequest(string Channel, string To, string Template, IReadOnlyDictionary<string, string> Data);

/// <summary>A notification accepted for delivery.</summary>
public sealed record Notification(string NotificationId, string Channel, string To, string Template, string Status, DateTimeOffset QueuedAt);

/// <summary>Body of the web front end's <c>POST /api/bookings</c>.</summary>
public sealed record BookingRequest(string FlightId, string PassengerName, string Email, string Phone);

/// <summary>A booking as the web front end shows it.</summary>
public sealed record Booking(
    string BookingReference,
    string Status,
    string FlightId,
    string PassengerName,
    string Email,
    string Phone,
    SeatHold Hold,
    Payment? Payment,
    IReadOnlyList<Notification> Notifications);

/// <summary>Body of the web front end's <c>POST /api/bookings/{reference}/payment</c>.</summary>
public sealed record CheckoutRequest(Card Card);
