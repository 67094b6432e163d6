using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using SpIstio.Examples.Travel.Payments;

namespace SpIstio.Examples.Travel.Traffic;

/// <summary>How a journey is scripted to end.</summary>
public enum JourneyScript
{
    /// <summary>Search, hold, pay, confirm: booked.</summary>
    Completes,

    /// <summary>The payment is declined (402) and the user gives up.</summary>
    CardDeclined,

    /// <summary>The user picks the sold-out flight; the hold fails (409).</summary>
    SoldOut,
}

/// <summary>What the traffic generator plays.</summary>
public sealed record TrafficOptions
{
    /// <summary>The web front end (or the capture proxy in front of it).</summary>
    public required Uri WebUrl { get; init; }

    /// <summary>Journeys to play; 0 plays until cancelled.</summary>
    public int Journeys { get; init; }

    /// <summary>Journeys started per second.</summary>
    public double Rate { get; init; } = 2;

    /// <summary>Most journeys in flight at once.</summary>
    public int MaxConcurrent { get; init; } = 16;
}

/// <summary>The outcome of one journey.</summary>
/// <param name="Number">0-based journey number.</param>
/// <param name="SessionId">The browser session id it carried in <c>tracestate</c>.</param>
/// <param name="Script">How it was meant to end.</param>
/// <param name="Outcome">How it ended: <c>confirmed</c>, <c>card_declined</c>, <c>sold_out</c>, or what went wrong.</param>
/// <param name="BookingReference">The booking, when one was made.</param>
/// <param name="TraceIds">The trace of each step, in order.</param>
public sealed record JourneyResult(int Number, string SessionId, JourneyScript Script, string Outcome, string? BookingReference, IReadOnlyList<string> TraceIds)
{
    /// <summary>True when the journey ended as scripted.</summary>
    public bool AsScripted => Outcome == Expected(Script);

    /// <summary>The outcome a script leads to.</summary>
    public static string Expected(JourneyScript script) => script switch
    {
        JourneyScript.CardDeclined => "card_declined",
        JourneyScript.SoldOut => "sold_out",
        _ => "confirmed",
    };
}

/// <summary>Totals of a traffic run.</summary>
public sealed record TrafficSummary(int Journeys, int Confirmed, int CardDeclined, int SoldOut, int Unexpected);

/// <summary>
/// Plays user journeys against the web front end as a browser would: every journey is a session
/// (its id in <c>tracestate</c> as <c>x-sp-session-id=…</c>, like the original's browser session
/// library), every step a new trace with its own <c>traceparent</c>. Seven journeys in ten book,
/// two have their card declined, one picks a sold-out flight (see <see cref="ScriptFor"/>).
/// </summary>
public sealed class TrafficGenerator : IDisposable
{
    private static readonly (string From, string To)[] _routes =
        [("LHR", "JFK"), ("CDG", "FCO"), ("AMS", "BCN"), ("FRA", "SFO"), ("MAD", "LIS"), ("DUB", "BOS"), ("MUC", "VIE"), ("ZRH", "ATH")];

    private static readonly string[] _names =
        ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth", "Margaret Hamilton"];

    private readonly HttpClient _client;
    private readonly TrafficOptions _options;

    /// <summary>Creates a generator with its own HTTP client (no proxy: a browser talks to the front end).</summary>
    public TrafficGenerator(TrafficOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _client = new HttpClient(new SocketsHttpHandler { UseProxy = false, ActivityHeadersPropagator = null })
        {
            BaseAddress = options.WebUrl,
            Timeout = TimeSpan.FromSeconds(30),
        };
    }

    /// <summary>The script of journey <paramref name="number"/>: of every ten, numbers 3 and 7 are declined, 5 is sold out.</summary>
    public static JourneyScript ScriptFor(int number) => (number % 10) switch
    {
        3 or 7 => JourneyScript.CardDeclined,
        5 => JourneyScript.SoldOut,
        _ => JourneyScript.Completes,
    };

    /// <summary>
    /// Plays <see cref="TrafficOptions.Journeys"/> journeys (or until cancelled) at
    /// <see cref="TrafficOptions.Rate"/> per second, reporting each one as it ends. Cancelling
    /// stops starting journeys and abandons those in flight.
    /// </summary>
    public async Task<TrafficSummary> RunAsync(Action<JourneyResult>? onJourney, CancellationToken cancellationToken)
    {
        var interval = TimeSpan.FromSeconds(1 / Math.Max(_options.Rate, 0.01));
        using var slots = new SemaphoreSlim(Math.Max(_options.MaxConcurrent, 1));
        var running = new List<Task<JourneyResult?>>();
        var results = new List<JourneyResult>();
        var next = Stopwatch.GetTimestamp();
        try
        {
            for (var number = 0; _options.Journeys == 0 || number < _options.Journeys; number++)
            {
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, cancellationToken);
                }

                next += (long)(interval.TotalSeconds * Stopwatch.Frequency);
                await slots.WaitAsync(cancellationToken);
                running.Add(PlayInSlotAsync(number, slots, onJourney, cancellationToken));
                running.RemoveAll(t => t.IsCompleted && Collect(t, results));
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopped: count what finished.
        }

        foreach (var task in running)
        {
            if (await task is { } result)
            {
                results.Add(result);
            }
        }

        return new TrafficSummary(
            results.Count,
            results.Count(r => r.Outcome == "confirmed"),
            results.Count(r => r.Outcome == "card_declined"),
            results.Count(r => r.Outcome == "sold_out"),
            results.Count(r => !r.AsScripted));
    }

    /// <summary>Plays one journey: search, book (seat hold), pay, confirm, as its script says.</summary>
    public async Task<JourneyResult> PlayJourneyAsync(int number, CancellationToken cancellationToken)
    {
        var script = ScriptFor(number);
        var random = new Random(number);
        var session = Guid.NewGuid().ToString("N");
        var traces = new List<string>();
        var (from, to) = _routes[random.Next(_routes.Length)];
        var name = _names[random.Next(_names.Length)];
        var email = name.Replace(' ', '.').ToLowerInvariant() + "@example.com";
        var phone = "+4477009" + random.Next(10000, 99999).ToString(CultureInfo.InvariantCulture);
        var date = DateOnly.FromDateTime(DateTime.UtcNow).AddDays(7 + random.Next(60));

        JourneyResult End(string outcome, string? reference = null) => new(number, session, script, outcome, reference, traces);

        // 1. Search.
        var query = string.Create(CultureInfo.InvariantCulture, $"/api/flights/search?from={from}&to={to}&date={date:yyyy-MM-dd}&passengers=1");
        using (var search = await SendAsync(HttpMethod.Get, query, null, session, traces, cancellationToken))
        {
            if (!search.IsSuccessStatusCode)
            {
                return End("search_failed_" + (int)search.StatusCode);
            }

            var offers = (await search.Content.ReadFromJsonAsync<FlightSearchResult>(cancellationToken))!.Flights;
            var soldOut = offers.FirstOrDefault(f => f.SeatsLeft == 0);
            var available = offers.Where(f => f.SeatsLeft > 0).ToList();
            var pick = script == JourneyScript.SoldOut ? soldOut : available.Count == 0 ? null : available[random.Next(available.Count)];
            if (pick is null)
            {
                return End("no_flight_to_pick");
            }

            // 2. Book: the front end holds a seat.
            string reference;
            using (var book = await SendAsync(HttpMethod.Post, "/api/bookings", new BookingRequest(pick.Id, name, email, phone), session, traces, cancellationToken))
            {
                if (book.StatusCode == HttpStatusCode.Conflict && await CodeAsync(book, cancellationToken) == "sold_out")
                {
                    return End("sold_out");
                }

                if (book.StatusCode != HttpStatusCode.Created)
                {
                    return End("book_failed_" + (int)book.StatusCode);
                }

                reference = (await book.Content.ReadFromJsonAsync<Booking>(cancellationToken))!.BookingReference;
            }

            // 3. Pay.
            var card = new Card(script == JourneyScript.CardDeclined ? PaymentsService.DeclinedCard : PaymentsService.ApprovedCard, "12/29", "123", name);
            using (var pay = await SendAsync(HttpMethod.Post, "/api/bookings/" + reference + "/payment", new CheckoutRequest(card), session, traces, cancellationToken))
            {
                if (pay.StatusCode == HttpStatusCode.PaymentRequired && await CodeAsync(pay, cancellationToken) == "card_declined")
                {
                    return End("card_declined", reference);
                }

                if (!pay.IsSuccessStatusCode)
                {
                    return End("pay_failed_" + (int)pay.StatusCode, reference);
                }
            }

            // 4. Confirm: e-mail and SMS.
            using var confirm = await SendAsync(HttpMethod.Post, "/api/bookings/" + reference + "/confirm", null, session, traces, cancellationToken);
            if (!confirm.IsSuccessStatusCode)
            {
                return End("confirm_failed_" + (int)confirm.StatusCode, reference);
            }

            var booking = (await confirm.Content.ReadFromJsonAsync<Booking>(cancellationToken))!;
            return End(booking.Status == "confirmed" ? "confirmed" : "confirm_status_" + booking.Status, reference);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _client.Dispose();

    private static bool Collect(Task<JourneyResult?> task, List<JourneyResult> results)
    {
        if (task.IsCompletedSuccessfully && task.Result is { } result)
        {
            results.Add(result);
        }

        return true;
    }

    private static async Task<string?> CodeAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            return (await response.Content.ReadFromJsonAsync<ApiError>(cancellationToken))?.Code;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private async Task<JourneyResult?> PlayInSlotAsync(int number, SemaphoreSlim slots, Action<JourneyResult>? onJourney, CancellationToken cancellationToken)
    {
        try
        {
            var result = await PlayJourneyAsync(number, cancellationToken);
            onJourney?.Invoke(result);
            return result;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        catch (Exception ex)
        {
            // A broken journey (connection refused, a page that is not JSON) is reported, not fatal.
            var failed = new JourneyResult(number, "", ScriptFor(number), "error: " + ex.Message, null, []);
            onJourney?.Invoke(failed);
            return failed;
        }
        finally
        {
            slots.Release();
        }
    }

    /// <summary>
    /// One browser request: a new trace (random trace and span ids, sampled) and the session id
    /// in tracestate, which is all a browser-side session library adds.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, object? body, string session, List<string> traces, CancellationToken cancellationToken)
    {
        var traceId = ActivityTraceId.CreateRandom().ToHexString();
        traces.Add(traceId);
        using var request = new HttpRequestMessage(method, path);
        request.Headers.TryAddWithoutValidation("traceparent", "00-" + traceId + "-" + ActivitySpanId.CreateRandom().ToHexString() + "-01");
        request.Headers.TryAddWithoutValidation("tracestate", "x-sp-session-id=" + session);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body, body.GetType());
        }

        return await _client.SendAsync(request, cancellationToken);
    }
}
