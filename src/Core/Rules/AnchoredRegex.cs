using System.Text.RegularExpressions;

namespace SpIstio.Core.Rules;

/// <summary>
/// Compiles a pattern from configuration the way every rule uses it: anchored to the whole input
/// (the original plugin matches whole hosts and paths, so <c>/health</c> does not match
/// <c>/healthz</c>), case-sensitive, and with the non-backtracking engine so no pattern an operator
/// writes can stall the data path (linear time in the input, whatever the pattern).
/// </summary>
public static class AnchoredRegex
{
    /// <summary>Compiles <paramref name="pattern"/> anchored at both ends.</summary>
    /// <exception cref="ArgumentException">The pattern is not a valid regex.</exception>
    /// <exception cref="NotSupportedException">The pattern uses a construct the non-backtracking engine refuses (backreferences, lookarounds).</exception>
    public static Regex Compile(string pattern, bool ignoreCase = false)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var options = RegexOptions.NonBacktracking | RegexOptions.CultureInvariant;
        if (ignoreCase)
        {
            options |= RegexOptions.IgnoreCase;
        }

        return new Regex(string.Concat("^(?:", pattern, ")$"), options);
    }

    /// <summary>Tries to compile <paramref name="pattern"/>; on failure returns false and why.</summary>
    public static bool TryCompile(string pattern, out Regex? regex, out string? error, bool ignoreCase = false)
    {
        try
        {
            regex = Compile(pattern, ignoreCase);
            error = null;
            return true;
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
        {
            // NonBacktracking refuses backreferences and lookarounds with NotSupportedException, not ArgumentException.
            regex = null;
            error = ex.Message;
            return false;
        }
    }
}
