using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Xml;

namespace SpIstio.Backend.Replay;

/// <summary>Writes a replay report as readable text, JUnit XML (one test case per exchange) or JSON.</summary>
public static class ReplayReports
{
    /// <summary>The bindings, one line per exchange (✓, ✗, !) with the differences under a regression, the warnings, and a summary line.</summary>
    public static void WriteText(ReplayReport report, TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(writer);
        WriteBindings(report.Bindings, writer);
        WriteNotCarried(report.NotCarried, writer);
        foreach (var result in report.Results)
        {
            WriteResult(result, writer);
        }

        WriteWarnings(report.Warnings, writer);
        writer.WriteLine(Summary(report));
    }

    /// <summary>The values carried between steps, one line each: <c>$.bookingReference of step 2 → path segment 3 of steps 3 and 4</c>.</summary>
    public static void WriteBindings(IReadOnlyList<ValueBinding> bindings, TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(bindings);
        ArgumentNullException.ThrowIfNull(writer);
        if (bindings.Count == 0)
        {
            writer.WriteLine("values carried between steps: none found");
            return;
        }

        writer.WriteLine("values carried between steps (issued by a response, sent back by later requests; the target's own value is sent):");
        foreach (var binding in bindings)
        {
            writer.WriteLine("  " + binding);
        }
    }

    /// <summary>The bindings only the replayed recording suggested, one line each, when other recordings were learned from.</summary>
    public static void WriteNotCarried(IReadOnlyList<ValueBinding> notCarried, TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(notCarried);
        ArgumentNullException.ThrowIfNull(writer);
        if (notCarried.Count == 0)
        {
            return;
        }

        writer.WriteLine("not carried (the other recordings of the journey did not send these values back: equal by coincidence):");
        foreach (var binding in notCarried)
        {
            writer.WriteLine("  " + binding);
        }
    }

    /// <summary>The response fields learned as noise because the same request got another answer in another recording, one line per step.</summary>
    public static void WriteNoiseAcross(IReadOnlyDictionary<int, HashSet<string>> noise, TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(noise);
        ArgumentNullException.ThrowIfNull(writer);
        if (noise.Count == 0)
        {
            return;
        }

        writer.WriteLine("noise learned across recordings (the same request answered differently):");
        foreach (var (step, paths) in noise.OrderBy(p => p.Key))
        {
            writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  step {step}: {string.Join(", ", paths.Order(StringComparer.Ordinal))}"));
        }
    }

    /// <summary>The warnings, if any.</summary>
    public static void WriteWarnings(IReadOnlyList<string> warnings, TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(warnings);
        ArgumentNullException.ThrowIfNull(writer);
        foreach (var warning in warnings)
        {
            writer.WriteLine("warning: " + warning);
        }
    }

    /// <summary>The closing line: how many replayed, passed, regressed and failed.</summary>
    public static string Summary(ReplayReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        return string.Create(
            CultureInfo.InvariantCulture,
            $"{report.Results.Count} replayed against {report.Target}: {report.Passed} passed, {report.Regressions} regressions, {report.Errors} errors ({report.DurationMs:F0} ms)");
    }

    /// <summary>The line (and difference lines) of one result.</summary>
    public static void WriteResult(ReplayResult result, TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(writer);
        var mark = result.Verdict switch
        {
            ReplayVerdict.Passed => "✓",
            ReplayVerdict.Regression => "✗",
            _ => "!",
        };
        var noise = result.IgnoredNoise.Count > 0 ? string.Create(CultureInfo.InvariantCulture, $" ({result.IgnoredNoise.Count} noisy fields ignored)") : "";
        writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{mark} {result.Index,3} {result.Name} → {result.ActualStatus}{noise}"));
        foreach (var difference in result.Differences)
        {
            writer.WriteLine("        " + difference);
        }

        if (result.ValuesApplied.Count > 0)
        {
            writer.WriteLine("        from the values file: " + string.Join(", ", result.ValuesApplied));
        }

        if (result.Carried.Count > 0)
        {
            writer.WriteLine("        carried: " + string.Join(", ", result.Carried));
        }

        if (result.IgnoredNoise.Count > 0)
        {
            writer.WriteLine("        noise (issued fresh on every run, or --ignore): " + string.Join(", ", result.IgnoredNoise));
        }

        if (result.Redacted.Count > 0)
        {
            writer.WriteLine("        not compared (redacted in the recording): " + string.Join(", ", result.Redacted));
        }

        if (result.Error is not null)
        {
            writer.WriteLine("        " + result.Error);
        }
    }

    /// <summary>A progress bar line: <c>[#####-----] 5/10</c>.</summary>
    public static string ProgressBar(int done, int total, int width = 30)
    {
        var filled = total == 0 ? width : (int)Math.Round(width * (double)done / total);
        return string.Create(CultureInfo.InvariantCulture, $"[{new string('#', filled)}{new string('-', width - filled)}] {done}/{total}");
    }

    /// <summary>JUnit XML: one suite, a test case per exchange, failures for regressions, errors for the rest.</summary>
    public static void WriteJUnit(ReplayReport report, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(report);
        using var xml = XmlWriter.Create(stream, new XmlWriterSettings { Indent = true, Encoding = new UTF8Encoding(false) });
        xml.WriteStartDocument();
        xml.WriteStartElement("testsuites");
        xml.WriteStartElement("testsuite");
        xml.WriteAttributeString("name", "sp replay " + report.SessionId);
        xml.WriteAttributeString("tests", report.Results.Count.ToString(CultureInfo.InvariantCulture));
        xml.WriteAttributeString("failures", report.Regressions.ToString(CultureInfo.InvariantCulture));
        xml.WriteAttributeString("errors", report.Errors.ToString(CultureInfo.InvariantCulture));
        xml.WriteAttributeString("time", (report.DurationMs / 1000).ToString("F3", CultureInfo.InvariantCulture));
        foreach (var result in report.Results)
        {
            xml.WriteStartElement("testcase");
            xml.WriteAttributeString("classname", "replay." + report.SessionId);
            xml.WriteAttributeString("name", result.Index.ToString("D3", CultureInfo.InvariantCulture) + " " + result.Name);
            xml.WriteAttributeString("time", (result.DurationMs / 1000).ToString("F3", CultureInfo.InvariantCulture));
            if (result.Verdict == ReplayVerdict.Regression)
            {
                xml.WriteStartElement("failure");
                xml.WriteAttributeString("message", result.Differences.Count > 0 ? result.Differences[0] : "regression");
                xml.WriteString(string.Join('\n', result.Differences));
                xml.WriteEndElement();
            }
            else if (result.Verdict == ReplayVerdict.Error)
            {
                xml.WriteStartElement("error");
                xml.WriteAttributeString("message", result.Error ?? "error");
                xml.WriteEndElement();
            }

            xml.WriteEndElement();
        }

        xml.WriteEndElement();
        xml.WriteEndElement();
        xml.WriteEndDocument();
    }

    /// <summary>The report as indented JSON (text inside it is JSON-escaped as usual).</summary>
    public static Task WriteJsonAsync(ReplayReport report, Stream stream, CancellationToken cancellationToken) =>
        JsonSerializer.SerializeAsync(stream, report, ReplayJsonContext.Default.ReplayReport, cancellationToken);
}
