using System.Globalization;

namespace SpIstio.Agent.Export;

/// <summary>One batch held on disk: its order, when it was written, how many spans it carries.</summary>
internal sealed record BufferedBatch(long Sequence, DateTimeOffset WrittenAt, int Spans, long Bytes, string ContentEncoding, string Path);

/// <summary>
/// The exporter's disk buffer (<c>export.buffer_path</c>): already-encoded OTLP request bodies
/// the backend could not take, one file per batch, re-sent oldest first. A file is written under
/// a temporary name and renamed, so a crash never leaves half a batch that would be sent; the
/// name carries everything needed to resend it after a restart
/// (<c>{sequence}-{written unix ms}-{spans}.otlp[.gz|.zst]</c>). Past <c>export.buffer_max_bytes</c>
/// the oldest files are deleted and their spans reported to the caller to count.
/// </summary>
internal sealed class DiskExportBuffer
{
    private const string Extension = ".otlp";
    private const string TempExtension = ".tmp";

    private readonly Lock _lock = new();
    private readonly LinkedList<BufferedBatch> _batches = new();
    private readonly TimeProvider _timeProvider;
    private long _nextSequence;
    private long _bytes;

    private DiskExportBuffer(string directory, long maxBytes, TimeProvider timeProvider)
    {
        Directory = directory;
        MaxBytes = maxBytes;
        _timeProvider = timeProvider;
    }

    /// <summary>The buffer's directory (absolute).</summary>
    public string Directory { get; }

    /// <summary>The bound in bytes.</summary>
    public long MaxBytes { get; }

    /// <summary>Bytes held now.</summary>
    public long Bytes
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    /// <summary>Batches held now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _batches.Count;
            }
        }
    }

    /// <summary>When the oldest held batch was written, or null when the buffer is empty.</summary>
    public DateTimeOffset? OldestWrittenAt
    {
        get
        {
            lock (_lock)
            {
                return _batches.First?.Value.WrittenAt;
            }
        }
    }

    /// <summary>
    /// Opens (creating it if needed) the buffer at <paramref name="directory"/> and takes in the
    /// batches a previous run left there, oldest first; leftover temporary files of a write cut
    /// short are deleted. Throws <see cref="IOException"/> or <see cref="UnauthorizedAccessException"/>
    /// when the directory cannot be created or written.
    /// </summary>
    public static DiskExportBuffer Open(string directory, long maxBytes, TimeProvider timeProvider)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        var full = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(full);
        var buffer = new DiskExportBuffer(full, maxBytes, timeProvider);

        // Prove the directory is writable now rather than at the first outage.
        var probe = Path.Combine(full, "probe-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + TempExtension);
        File.WriteAllBytes(probe, []);
        File.Delete(probe);

        var found = new List<BufferedBatch>();
        foreach (var path in System.IO.Directory.EnumerateFiles(full))
        {
            var name = Path.GetFileName(path);
            if (name.EndsWith(TempExtension, StringComparison.Ordinal))
            {
                TryDelete(path);
                continue;
            }

            if (TryParse(path, out var batch))
            {
                found.Add(batch);
            }
        }

        found.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
        foreach (var batch in found)
        {
            buffer._batches.AddLast(batch);
            buffer._bytes += batch.Bytes;
        }

        buffer._nextSequence = found.Count == 0 ? 1 : found[^1].Sequence + 1;

        // A smaller bound than the previous run's applies at once.
        buffer.DroppedAtOpen = buffer.TrimLocked();
        return buffer;
    }

    /// <summary>
    /// Writes one encoded request body as the newest batch, then deletes the oldest batches while
    /// the buffer is over its bound. Returns the spans of the batches deleted to make room (the
    /// new one included when it alone is larger than the bound).
    /// </summary>
    public int Add(ReadOnlySpan<byte> payload, int spans, string contentEncoding)
    {
        if (payload.Length > MaxBytes)
        {
            return spans;
        }

        lock (_lock)
        {
            var sequence = _nextSequence++;
            var writtenAt = _timeProvider.GetUtcNow();
            var name = string.Create(
                CultureInfo.InvariantCulture,
                $"{sequence:D16}-{writtenAt.ToUnixTimeMilliseconds():D13}-{spans}{Extension}{SuffixOf(contentEncoding)}");
            var path = Path.Combine(Directory, name);
            var temp = path + TempExtension;

            // Under the lock so files appear in sequence order; a batch is at most a few MiB and
            // this runs on an export task, never on the data path.
            try
            {
                using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None))
                {
                    file.Write(payload);
                }

                File.Move(temp, path);
            }
            catch
            {
                // Disk full or gone: no half-written file may stay behind to be sent later.
                TryDelete(temp);
                throw;
            }

            _batches.AddLast(new BufferedBatch(sequence, writtenAt, spans, payload.Length, contentEncoding, path));
            _bytes += payload.Length;
            return TrimLocked();
        }
    }

    /// <summary>Spans of the batches a previous run left that did not fit the bound at open (deleted).</summary>
    public int DroppedAtOpen { get; private set; }

    /// <summary>The oldest batch, or null when the buffer is empty.</summary>
    public BufferedBatch? Peek()
    {
        lock (_lock)
        {
            return _batches.First?.Value;
        }
    }

    /// <summary>Reads a batch's bytes; null when it was deleted meanwhile (dropped past the bound).</summary>
    public static byte[]? Read(BufferedBatch batch)
    {
        try
        {
            return File.ReadAllBytes(batch.Path);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Removes a batch once it was delivered or refused for good; false when it was already gone.</summary>
    public bool Remove(BufferedBatch batch)
    {
        lock (_lock)
        {
            for (var node = _batches.First; node is not null; node = node.Next)
            {
                if (node.Value.Sequence == batch.Sequence)
                {
                    _batches.Remove(node);
                    _bytes -= batch.Bytes;
                    TryDelete(batch.Path);
                    return true;
                }
            }

            return false;
        }
    }

    // Deletes the oldest batches while over the bound; returns their spans. Caller holds the lock
    // (or owns the buffer exclusively, at open).
    private int TrimLocked()
    {
        var dropped = 0;
        while (_bytes > MaxBytes && _batches.First is { } oldest)
        {
            _batches.RemoveFirst();
            _bytes -= oldest.Value.Bytes;
            dropped += oldest.Value.Spans;
            TryDelete(oldest.Value.Path);
        }

        return dropped;
    }

    private static string SuffixOf(string contentEncoding) => contentEncoding switch
    {
        "" => "",
        "gzip" => ".gz",
        "zstd" => ".zst",
        _ => throw new ArgumentOutOfRangeException(nameof(contentEncoding), contentEncoding, "unknown content encoding"),
    };

    private static bool TryParse(string path, out BufferedBatch batch)
    {
        batch = null!;
        var name = Path.GetFileName(path);
        string encoding;
        string stem;
        if (name.EndsWith(Extension + ".gz", StringComparison.Ordinal))
        {
            encoding = "gzip";
            stem = name[..^(Extension.Length + 3)];
        }
        else if (name.EndsWith(Extension + ".zst", StringComparison.Ordinal))
        {
            encoding = "zstd";
            stem = name[..^(Extension.Length + 4)];
        }
        else if (name.EndsWith(Extension, StringComparison.Ordinal))
        {
            encoding = "";
            stem = name[..^Extension.Length];
        }
        else
        {
            return false;
        }

        var parts = stem.Split('-');
        if (parts.Length != 3
            || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var sequence)
            || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var unixMs)
            || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var spans))
        {
            return false;
        }

        long bytes;
        try
        {
            bytes = new FileInfo(path).Length;
        }
        catch (IOException)
        {
            return false;
        }

        batch = new BufferedBatch(sequence, DateTimeOffset.FromUnixTimeMilliseconds(unixMs), spans, bytes, encoding, path);
        return true;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Gone already or busy: the bookkeeping no longer counts it either way.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
