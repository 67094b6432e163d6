using SpIstio.Backend.Telemetry;
using SpIstio.Core.Memory;

namespace SpIstio.Backend.Ingest;

/// <summary>
/// The byte budget every export request in flight shares, OTLP/HTTP and OTLP/gRPC alike. A request
/// reserves its body's bytes, times <see cref="Amplification"/>, before it reads them — the whole
/// body at once when its size is declared up front (Content-Length, the gRPC length prefix), piece
/// by piece while a compressed or chunked body inflates. Once its spans are converted and queued
/// it lets go of all but <see cref="QueuedAmplification"/> times the body (<see cref="Reservation.Settle"/>),
/// which it holds until it is answered: waiting for a commit is most of a request's life under
/// load, and what it holds then is the spans, not the parse. A request that does not fit is
/// refused at once with 503 + Retry-After (<see cref="IngestService.RetryAfterSeconds"/>; gRPC: UNAVAILABLE), which OTLP exporters retry: it
/// never waits, so requests that hold part of the budget cannot deadlock waiting for each other. However many key holders send however large
/// exports at once, what they make the process hold together is bounded by <see cref="TotalBytes"/>.
/// </summary>
public sealed class IngestBudget
{
    /// <summary>
    /// The default budget: 128 MiB, room for thirteen 2.4 MB exports (512 spans with 2 KiB bodies)
    /// being parsed at once, or twenty-six waiting for their commit, or two at the 16 MiB body limit.
    /// </summary>
    public const long DefaultTotalBytes = 128L * 1024 * 1024;

    /// <summary>
    /// What one body byte costs while the request is read and parsed: the body itself, the parsed
    /// request (its strings are UTF-16, two bytes a character) and the spans converted from it.
    /// </summary>
    public const int Amplification = 4;

    /// <summary>
    /// What one body byte costs while the request's spans wait for their commit: the spans converted
    /// (values cut to the attribute cap) and then encoded for the store, and on gRPC the message
    /// bytes, which Grpc.AspNetCore keeps until the call ends.
    /// </summary>
    public const int QueuedAmplification = 2;

    /// <summary>What a refused exporter is told (HTTP and gRPC alike).</summary>
    internal const string RefusalMessage = "the backend holds as many export bytes in flight as its ingest budget (--ingest-budget-bytes) allows; retry later";

    /// <summary>
    /// What large requests (<see cref="LargeBodyBytes"/>) must have released before an idle moment
    /// hands their garbage back to the OS.
    /// </summary>
    internal const long IdleCollectAfterBytes = 64L * 1024 * 1024;

    /// <summary>
    /// Requests with bodies at least this large count towards the idle collection. Ordinary exports
    /// (512 spans, 2.4 MB) leave small-object garbage the GC reclaims on its own, and a backend
    /// taking them in bursts would otherwise run a blocking compacting collection every few seconds;
    /// multi-MB attributes leave large objects, which only a gen-2 collection frees.
    /// </summary>
    internal const long LargeBodyBytes = 4L * 1024 * 1024;

    private readonly object _lock = new();
    private readonly BackendMetrics? _metrics;
    private readonly IdleHeapCollection _idleCollection;
    private long _inFlight;

    /// <summary>Creates a budget of <paramref name="totalBytes"/>.</summary>
    /// <param name="totalBytes">The budget.</param>
    /// <param name="metrics">Its gauge and refusal counter; none when null.</param>
    /// <param name="timeProvider">When given, the memory of a burst of large exports is handed back once the budget is idle; never when null.</param>
    public IngestBudget(long totalBytes = DefaultTotalBytes, BackendMetrics? metrics = null, TimeProvider? timeProvider = null)
        : this(totalBytes, metrics, timeProvider, null)
    {
    }

    /// <summary>A budget whose idle collection is <paramref name="idleCollect"/> (tests count its runs).</summary>
    internal IngestBudget(long totalBytes, BackendMetrics? metrics, TimeProvider? timeProvider, Action? idleCollect)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(totalBytes, 1);
        TotalBytes = totalBytes;
        _metrics = metrics;
        _idleCollection = new IdleHeapCollection(timeProvider, () => InFlightBytes == 0, IdleCollectAfterBytes, idleCollect);
    }

    /// <summary>The bytes all export requests in flight may reserve together.</summary>
    public long TotalBytes { get; }

    /// <summary>The bytes reserved by requests in flight now.</summary>
    public long InFlightBytes
    {
        get
        {
            lock (_lock)
            {
                return _inFlight;
            }
        }
    }

    /// <summary>An empty reservation for one request; dispose it when the request is answered.</summary>
    public Reservation Open() => new(this);

    /// <summary>
    /// An empty reservation for the request of <paramref name="context"/>, returned as the response
    /// starts — before the first byte of any answer leaves (a commit, a refusal, an error of
    /// Grpc.AspNetCore's own) — so a client that has its answer can count on the budget having it
    /// back: a retry right after a refusal, or the same client's next export, fits. Dispose it as
    /// well, for requests that end without an answer.
    /// </summary>
    public Reservation OpenFor(Microsoft.AspNetCore.Http.HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var reservation = Open();
        context.Features.Set(reservation);
        context.Response.OnStarting(static state =>
        {
            ((Reservation)state).Dispose();
            return Task.CompletedTask;
        }, reservation);
        return reservation;
    }

    /// <summary>Settles the reservation of the request of <paramref name="context"/> (<see cref="Reservation.Settle"/>), if it holds one.</summary>
    public static void SettleFor(Microsoft.AspNetCore.Http.HttpContext context) =>
        context?.Features.Get<Reservation>()?.Settle();

    private bool TryGrow(Reservation reservation, long cost, string protocol)
    {
        lock (_lock)
        {
            // A request alone in flight may take more than the budget: one request at the body
            // limit is always served, however small the budget was set.
            if (_inFlight + cost > TotalBytes && _inFlight != reservation.Cost)
            {
                _metrics?.IngestBudgetRefused(protocol).Inc();
                return false;
            }

            _inFlight += cost;
            _metrics?.IngestBudgetInFlightBytes.Set(_inFlight);
            return true;
        }
    }

    private void Release(long cost, long bodyBytes)
    {
        bool idle;
        lock (_lock)
        {
            _inFlight -= cost;
            _metrics?.IngestBudgetInFlightBytes.Set(_inFlight);
            idle = _inFlight == 0;
        }

        _idleCollection.Released(bodyBytes >= LargeBodyBytes ? cost : 0, idle);
    }

    /// <summary>What one request holds of the budget; grows as its body is read, returned (once) on dispose.</summary>
    public sealed class Reservation : IDisposable
    {
        private IngestBudget? _owner;

        internal Reservation(IngestBudget owner) => _owner = owner;

        /// <summary>The body bytes the reservation covers.</summary>
        public long BodyBytes { get; private set; }

        /// <summary>The bytes reserved: <see cref="BodyBytes"/> × <see cref="Amplification"/>, or × <see cref="QueuedAmplification"/> once settled.</summary>
        public long Cost { get; private set; }

        /// <summary>Whether <see cref="Settle"/> ran: the body is read and parsed, the reservation cannot grow.</summary>
        public bool Settled { get; private set; }

        /// <summary>
        /// Makes the reservation cover <paramref name="bodyBytes"/> body bytes; false when the budget
        /// cannot spare the difference (the request is to be refused; what it holds stays reserved until disposed).
        /// </summary>
        /// <param name="bodyBytes">The body bytes to cover.</param>
        /// <param name="protocol">Labels a refusal in <c>sp_ingest_budget_refused_total</c>.</param>
        public bool TryCover(long bodyBytes, string protocol)
        {
            var owner = _owner ?? throw new ObjectDisposedException(nameof(Reservation));
            if (Settled)
            {
                throw new InvalidOperationException("a settled reservation cannot grow: its body was read whole");
            }

            if (bodyBytes <= BodyBytes)
            {
                return true;
            }

            var cost = bodyBytes * Amplification;
            if (!owner.TryGrow(this, cost - Cost, protocol))
            {
                return false;
            }

            BodyBytes = bodyBytes;
            Cost = cost;
            return true;
        }

        /// <summary>
        /// The request's spans are queued and its body and parsed request are dropped: returns all
        /// but <see cref="BodyBytes"/> × <see cref="QueuedAmplification"/> (once; later calls do nothing).
        /// </summary>
        public void Settle()
        {
            var owner = _owner;
            if (owner is null || Settled)
            {
                return;
            }

            Settled = true;
            var kept = BodyBytes * QueuedAmplification;
            if (kept < Cost)
            {
                owner.Release(Cost - kept, BodyBytes);
                Cost = kept;
            }
        }

        /// <inheritdoc />
        public void Dispose()
        {
            var owner = Interlocked.Exchange(ref _owner, null);
            if (owner is not null && Cost > 0)
            {
                owner.Release(Cost, BodyBytes);
            }
        }
    }
}
