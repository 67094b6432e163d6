using System.Buffers.Binary;
using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ZstdSharp;

namespace SpIstio.Backend.Storage;

/// <summary>One trained zstd dictionary: its id in the store (what stored values name) and its reusable contexts.</summary>
internal sealed class CodecDictionary(long id, long tenantId, byte[] bytes) : IDisposable
{
    public long Id { get; } = id;

    public long TenantId { get; } = tenantId;

    public int Length => bytes.Length;

    /// <summary>
    /// Whether the dictionary was trained on the <see cref="JsonColumns"/> split form of JSON bodies
    /// (<see cref="MarkTrainedOnJsonColumns"/>): only then are JSON bodies stored as columns with it,
    /// since a dictionary trained on raw JSON (saved before codec 4) matches the split form poorly;
    /// its tenant trains a new one (<see cref="CodecDictionaries"/>).
    /// </summary>
    public bool TrainedOnJsonColumns { get; } = HasColumnMark(bytes);

    internal BodyCodec.ContextPool Contexts { get; } = new(bytes);

    // A zstd dictionary starts with its magic number and its id. ZDICT picks ids in [32768, 2^31),
    // and no stored frame carries the id (the codec header names the dictionary), so the top bit
    // is free to say how the dictionary was trained; an older replica loads it as any other.
    private const uint DictionaryMagic = 0xEC30A437;
    private const uint ColumnMark = 0x8000_0000;

    /// <summary>Marks freshly trained <paramref name="bytes"/> as trained on the split form (see <see cref="TrainedOnJsonColumns"/>).</summary>
    public static void MarkTrainedOnJsonColumns(byte[] bytes)
    {
        if (bytes.Length >= 8 && BinaryPrimitives.ReadUInt32LittleEndian(bytes) == DictionaryMagic)
        {
            var id = bytes.AsSpan(4, 4);
            BinaryPrimitives.WriteUInt32LittleEndian(id, BinaryPrimitives.ReadUInt32LittleEndian(id) | ColumnMark);
        }
    }

    private static bool HasColumnMark(byte[] bytes) =>
        bytes.Length >= 8 && BinaryPrimitives.ReadUInt32LittleEndian(bytes) == DictionaryMagic
        && (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4)) & ColumnMark) != 0;

    public void Dispose() => Contexts.Dispose();
}

/// <summary>
/// The per-tenant compression dictionaries of one store. A tenant's first
/// <see cref="SampleValues"/> stored values (bodies, headers, attributes) are kept as samples;
/// then a dictionary is trained from them off the ingest path, saved in the store
/// (<c>codec_dictionaries</c>, with an id) and used for that tenant's values from then on.
/// Values written before it, or by a replica that trained its own, name their dictionary, so any
/// replica reads any row: a dictionary it has not seen is loaded from the store by id.
/// A tenant whose dictionary was saved before codec 4 (not <see cref="CodecDictionary.TrainedOnJsonColumns"/>)
/// on a store that writes JSON columns samples again and trains a new one the same way, since
/// codec 4 is written only with a dictionary of the split form: without that, a store upgraded
/// from an older version would keep its existing tenants' JSON bodies on codec 3 for good. Their
/// older values keep naming the old dictionary, which stays in the store.
/// </summary>
internal sealed class CodecDictionaries : IDisposable
{
    /// <summary>Values sampled per tenant before training (zstd wants a few hundred).</summary>
    public const int SampleValues = 512;

    /// <summary>The most of one value a sample keeps: the start of a body holds its structure.</summary>
    public const int SampleBytes = 4096;

    /// <summary>Dictionary size: measured best on 2 KiB JSON bodies between 16 and 64 KiB.</summary>
    public const int DictionaryBytes = 32 * 1024;

    /// <summary>
    /// The most sample bytes held for all tenants together: many tenants that each store a few
    /// spans must not make the process hold 2 MiB apiece. Past it, tenants wait for room.
    /// </summary>
    public const long MaxSampleBytes = 16L * 1024 * 1024;

    private long _sampleBytes;

    private readonly ConcurrentDictionary<long, CodecDictionary> _byId = new();
    private readonly ConcurrentDictionary<long, TenantState> _tenants = new();
    private readonly Func<long, CancellationToken, Task<(long Id, byte[] Bytes)?>> _loadLatest;
    private readonly Func<long, (long TenantId, byte[] Bytes)?> _loadById;
    private readonly Func<long, byte[], Task<long>> _save;
    private readonly ILogger _logger;

    // Whether samples are taken in the JSON column form and dictionaries marked for it (the store's choice).
    private readonly bool _jsonColumns;
    private bool _disposed;

    /// <param name="loadLatest">The newest dictionary saved for a tenant, or null.</param>
    /// <param name="loadById">A dictionary by id (a rare, synchronous read while decoding), or null.</param>
    /// <param name="save">Saves a tenant's new dictionary and returns its id.</param>
    /// <param name="logger">Training outcomes.</param>
    /// <param name="jsonColumns">Whether the store writes JSON values as columns (codec 4): dictionaries are then trained on that form.</param>
    public CodecDictionaries(
        Func<long, CancellationToken, Task<(long Id, byte[] Bytes)?>> loadLatest,
        Func<long, (long TenantId, byte[] Bytes)?> loadById,
        Func<long, byte[], Task<long>> save,
        ILogger logger,
        bool jsonColumns = true)
    {
        _jsonColumns = jsonColumns;
        _loadLatest = loadLatest;
        _loadById = loadById;
        _save = save;
        _logger = logger;
    }

    /// <summary>
    /// How long after a new tenant's first training started its batches still wait for it. Ingest
    /// runs several batches a second, and a batch encoded without a dictionary stays ~30 % larger
    /// for good: without the wait every batch stored during the training (~4,000 spans at the
    /// bench's rate, whose training takes ~0.1 s) did. A waiting batch delays only its own request's
    /// answer (the ingest writer commits the requests already encoded without it), once per new
    /// tenant, for the training's duration, never more than this. Settable for tests, whose loaded
    /// machines may train for longer than the default.
    /// </summary>
    internal TimeSpan FirstTrainingWait { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The dictionary to encode this tenant's values with (null while it has none yet); the first
    /// call for a tenant reads the newest one saved in the store. While a tenant that has never had
    /// one is training its first, waits for it (until <see cref="FirstTrainingWait"/> after the
    /// training started): only the batches before it started are stored without a dictionary.
    /// Nothing waits for a replacement (a tenant with an outdated dictionary keeps using it).
    /// </summary>
    public async ValueTask<CodecDictionary?> ForTenantAsync(long tenantId, CancellationToken cancellationToken)
    {
        if (_tenants.TryGetValue(tenantId, out var state))
        {
            long waitMs = state.Training && state.Current is null
                ? state.TrainingStartedMs + (long)FirstTrainingWait.TotalMilliseconds - Environment.TickCount64
                : 0;
            if (waitMs > 0)
            {
                // Over when trained, when the training failed (logged by TrainAsync) or at the
                // deadline: none of them throws here, and in the last two the batch goes without.
                await Task.WhenAny(state.Trained, Task.Delay(TimeSpan.FromMilliseconds(waitMs), cancellationToken)).ConfigureAwait(false);
            }

            return state.Current;
        }

        var saved = await _loadLatest(tenantId, cancellationToken).ConfigureAwait(false);
        state = _tenants.GetOrAdd(tenantId, static _ => new TenantState());
        if (saved is { } s && state.Current is null)
        {
            var dictionary = Register(s.Id, tenantId, s.Bytes);
            state.Install(dictionary, IsOutdated(dictionary));
        }

        return state.Current;
    }

    /// <summary>
    /// Completes with the tenant's dictionary once it has one of the form this store trains (one
    /// saved before codec 4 does not count where JSON columns are written); tests wait on this, not on time.
    /// </summary>
    public Task<CodecDictionary> WhenTrainedAsync(long tenantId) => _tenants.GetOrAdd(tenantId, static _ => new TenantState()).Trained;

    /// <summary>
    /// Whether the values of a batch encoded with <paramref name="dictionary"/> (the tenant's, from
    /// <see cref="ForTenantAsync"/>) should be handed to <see cref="Observe"/>: the tenant has no
    /// dictionary yet, or one this store replaces.
    /// </summary>
    public bool WantsSamples(CodecDictionary? dictionary) => dictionary is null || IsOutdated(dictionary);

    /// <summary>
    /// Keeps samples of a tenant's values while it has no dictionary (or an outdated one); once
    /// there are enough, trains one in the background. Cheap and lock-free once the tenant has a
    /// dictionary of the current form.
    /// </summary>
    public void Observe(long tenantId, EncodedSpan[] spans)
    {
        if (!_tenants.TryGetValue(tenantId, out var state) || (state.Current is { } current && !IsOutdated(current)) || state.Training)
        {
            return;
        }

        List<byte[]>? ready = null;
        lock (state)
        {
            if (state.Training)
            {
                return;
            }

            foreach (var e in spans)
            {
                var s = e.Span;
                AddSample(state, s.RequestBody.Span);
                AddSample(state, s.ResponseBody.Span);
                AddSample(state, s.RequestHeadersJson);
                AddSample(state, s.ResponseHeadersJson);
                AddSample(state, s.AttributesJson);
                if (state.Samples.Count >= SampleValues)
                {
                    break;
                }
            }

            if (state.Samples.Count >= SampleValues)
            {
                state.TrainingStartedMs = Environment.TickCount64;
                ready = state.Samples;
                state.Samples = [];
            }
        }

        if (ready is not null)
        {
            _ = Task.Run(() => TrainAsync(tenantId, state, ready));
        }
    }

    /// <summary>The dictionary with this id, read from the store the first time.</summary>
    public CodecDictionary Get(long id)
    {
        if (_byId.TryGetValue(id, out var dictionary))
        {
            return dictionary;
        }

        var loaded = _loadById(id) ?? throw new InvalidDataException($"A stored body needs compression dictionary {id}, which the store does not hold.");
        return Register(id, loaded.TenantId, loaded.Bytes);
    }

    public void Dispose()
    {
        _disposed = true;
        foreach (var dictionary in _byId.Values)
        {
            dictionary.Dispose();
        }
    }

    // A dictionary saved before codec 4 on a store that writes JSON columns: its tenant trains a new one.
    private bool IsOutdated(CodecDictionary dictionary) => _jsonColumns && !dictionary.TrainedOnJsonColumns;

    private CodecDictionary Register(long id, long tenantId, byte[] bytes)
    {
        var created = new CodecDictionary(id, tenantId, bytes);
        var winner = _byId.GetOrAdd(id, created);
        if (!ReferenceEquals(winner, created))
        {
            created.Dispose();
        }

        return winner;
    }

    private void AddSample(TenantState state, ReadOnlySpan<byte> value)
    {
        if (value.Length < 16)
        {
            return;
        }

        // The form the codec compresses, of the value's start: a split of the first SampleBytes
        // models the same keys and columns as the whole body's split.
        var start = value[..Math.Min(value.Length, SampleBytes)];
        byte[] sample = _jsonColumns ? BodyCodec.DictionarySample(start) : start.ToArray();
        if (Interlocked.Add(ref _sampleBytes, sample.Length) > MaxSampleBytes)
        {
            Interlocked.Add(ref _sampleBytes, -sample.Length);
            return;
        }

        state.Samples.Add(sample);
    }

    private void AddSample(TenantState state, string? value)
    {
        if (value is { Length: >= 16 })
        {
            AddSample(state, System.Text.Encoding.UTF8.GetBytes(value.Length > SampleBytes ? value[..SampleBytes] : value));
        }
    }

    private async Task TrainAsync(long tenantId, TenantState state, List<byte[]> samples)
    {
        try
        {
            byte[] bytes = DictBuilder.TrainFromBuffer(samples, DictionaryBytes);
            if (_jsonColumns)
            {
                // The samples are split forms (AddSample), so this dictionary serves JSON columns.
                CodecDictionary.MarkTrainedOnJsonColumns(bytes);
            }
            long id = await _save(tenantId, bytes).ConfigureAwait(false);
            if (_disposed)
            {
                return;
            }

            var dictionary = Register(id, tenantId, bytes);
            state.Install(dictionary, outdated: false);
            StoreLog.DictionaryTrained(_logger, tenantId, id, bytes.Length, samples.Count);
        }
        catch (Exception e) when (e is ZstdException or InvalidOperationException or System.Data.Common.DbException or ObjectDisposedException)
        {
            // Values keep being stored without a dictionary (still zstd); a restart tries again.
            StoreLog.DictionaryTrainingFailed(_logger, tenantId, e);
            state.Fail(e);
        }
        finally
        {
            Interlocked.Add(ref _sampleBytes, -samples.Sum(sample => (long)sample.Length));
        }
    }

    private sealed class TenantState
    {
        private readonly TaskCompletionSource<CodecDictionary> _trained = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private volatile CodecDictionary? _current;

        public CodecDictionary? Current => _current;

        /// <summary>When (<see cref="Environment.TickCount64"/>, never 0 on a running system) the tenant's training started; 0 before.</summary>
        public long TrainingStartedMs { get; set; }

        public bool Training => TrainingStartedMs != 0;

        public List<byte[]> Samples { get; set; } = [];

        public Task<CodecDictionary> Trained => _trained.Task;

        /// <summary>Encodes with <paramref name="dictionary"/> from now on; an <paramref name="outdated"/> one until its replacement is trained.</summary>
        public void Install(CodecDictionary dictionary, bool outdated)
        {
            _current = dictionary;
            if (!outdated)
            {
                _trained.TrySetResult(dictionary);
            }
        }

        public void Fail(Exception error) => _trained.TrySetException(error);
    }
}
