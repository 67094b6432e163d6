using SpIstio.Backend.Storage.Sqlite;

namespace SpIstio.Backend.Tests.Storage;

/// <summary>
/// Which digit words the SQLite indexer stops filing in per-span filters: a word becomes common once
/// <see cref="CommonSkipWords.Threshold"/> spans of one window held it, and stays common.
/// </summary>
public sealed class CommonSkipWordsTests
{
    [Fact]
    public void A_word_becomes_common_in_its_thresholdth_span_and_stays_common_past_the_window()
    {
        var common = new CommonSkipWords();
        ulong word = 0x9e3779b97f4a7c15;
        NotCommonYet(common, word);

        Assert.True(common.Observe(word));
        common.EndSpan();
        EndSpans(common, CommonSkipWords.WindowSpans);
        Assert.True(common.Observe(word));
    }

    [Fact]
    public void Counts_start_again_with_each_window()
    {
        var common = new CommonSkipWords();
        ulong word = 0x1234_5678_9abc_def0;
        NotCommonYet(common, word);

        // The window ends (Threshold - 1 spans of it are over): the word starts from one span again.
        EndSpans(common, CommonSkipWords.WindowSpans - (CommonSkipWords.Threshold - 1));
        NotCommonYet(common, word);

        Assert.True(common.Observe(word));
    }

    [Fact]
    public void Words_whose_hashes_start_alike_are_counted_apart()
    {
        // The same top bits (one slot of the table) and different words: each has a count of its own.
        var common = new CommonSkipWords();
        ulong[] words = [.. Enumerable.Range(1, 40).Select(n => 0xabcd_0000_0000_0000UL | ((ulong)n << 8))];
        for (int span = 1; span < CommonSkipWords.Threshold; span++)
        {
            foreach (ulong word in words)
            {
                Assert.False(common.Observe(word));
            }

            common.EndSpan();
        }

        Assert.False(common.Observe(0xabcd_0000_0000_0000UL | (41UL << 8)));
        Assert.All(words, word => Assert.True(common.Observe(word)));
    }

    [Fact]
    public void One_span_with_more_distinct_words_than_the_counts_hold_is_counted_without_end()
    {
        // 200,000 distinct ids in one span (a search text can be long): the window ends as often as
        // the bound is reached, and no word of it is common.
        var common = new CommonSkipWords();
        var random = new Random(7);
        var words = new HashSet<ulong>();
        while (words.Count < 200_000)
        {
            words.Add((ulong)random.NextInt64() ^ ((ulong)random.Next() << 63));
        }

        Assert.All(words, word => Assert.False(common.Observe(word)));
        common.EndSpan();

        // The counts still work after it.
        ulong next = 0x5555_aaaa_5555_aaaa;
        NotCommonYet(common, next);

        Assert.True(common.Observe(next));
    }

    // The word in Threshold - 1 spans, one after another: not common in any of them.
    private static void NotCommonYet(CommonSkipWords common, ulong word)
    {
        for (int span = 1; span < CommonSkipWords.Threshold; span++)
        {
            Assert.False(common.Observe(word));
            common.EndSpan();
        }
    }

    private static void EndSpans(CommonSkipWords common, int spans)
    {
        for (int i = 0; i < spans; i++)
        {
            common.EndSpan();
        }
    }
}
