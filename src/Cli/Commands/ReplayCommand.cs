using System.CommandLine;
using SpIstio.Backend.Replay;

namespace SpIstio.Cli.Commands;

/// <summary>
/// <c>sp replay</c>: re-sends a recorded session's inbound requests to a target and compares the
/// responses with the recording; exits 3 on a regression, for CI.
/// </summary>
internal static class ReplayCommand
{
    public static Command Create()
    {
        var session = new Option<string>("--session") { HelpName = "id", Description = "The recorded session to replay.", Required = true };
        var target = new Option<string>("--target") { HelpName = "url", Description = "Where to send the requests, e.g. http://127.0.0.1:8080.", Required = true };
        var backend = new Option<string>("--backend")
        {
            HelpName = "url",
            Description = "The backend holding the recording. Default: $SP_BACKEND_URL, else http://127.0.0.1:8090.",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("SP_BACKEND_URL") ?? "http://127.0.0.1:8090",
        };
        var key = new Option<string?>("--key") { HelpName = "key", Description = "API key with read scope. Default: $SP_API_KEY." };
        var service = new Option<string?>("--service")
        {
            HelpName = "name",
            Description = "The service whose inbound requests are replayed. Default: the session's entry service (the service of its first inbound exchange).",
        };
        var learnFrom = new Option<string[]>("--learn-from")
        {
            HelpName = "id[,id…]|auto",
            Description = "More recordings of the same journey (sessions with the same steps) to learn from: a value carried in only one recording is dropped as a coincidence, "
                + "and a field the same request answered differently is noise. 'auto': up to 10 of the 50 most recent sessions of the service whose steps match. Repeatable.",
        };
        var values = new Option<FileInfo?>("--values")
        {
            HelpName = "replay.yaml",
            Description = "Values redaction removed from the recording (card numbers, tokens), put back by JSON path, query:NAME, header:NAME or form:NAME; see docs/quickstart.md.",
        };
        var bind = new Option<string[]>("--bind")
        {
            HelpName = "step:source[=step,…]",
            Description = "Carry a value of a response into later requests, besides those found: 2:$.bookingReference, 3:header:etag, 1:cookie:sid. Repeatable.",
        };
        var noBind = new Option<string[]>("--no-bind")
        {
            HelpName = "[step:]source",
            Description = "Do not carry a value that was found (as listed in the report, e.g. 1:$.flights[0].id). Repeatable.",
        };
        var ignore = new Option<string[]>("--ignore")
        {
            HelpName = "json-path",
            Description = "A body field never compared: a path ($.meta.id, $.items[*].at) or a field name at any depth (timestamp). Repeatable.",
            AllowMultipleArgumentsPerToken = false,
        };
        var header = new Option<string[]>("--compare-header") { HelpName = "name", Description = "A response header to compare besides content-type. Repeatable." };
        var requestHeader = new Option<string[]>("--request-header")
        {
            HelpName = "name: value",
            Description = "A header set on every replayed request (recordings are redacted, so e.g. a fresh authorization). Repeatable.",
        };
        var junit = new Option<FileInfo?>("--report") { HelpName = "junit.xml", Description = "Also write a JUnit XML report here." };
        var json = new Option<FileInfo?>("--json") { HelpName = "report.json", Description = "Also write a JSON report here." };
        var timeout = new Option<int>("--timeout-ms") { Description = "Per-request timeout.", DefaultValueFactory = _ => 30_000 };

        var command = new Command("replay", "Replay a recorded session against a target and report every response that changed (exit 3 on a regression).");
        foreach (var option in new Option[] { session, target, backend, key, service, learnFrom, values, bind, noBind, ignore, header, requestHeader, junit, json, timeout })
        {
            command.Options.Add(option);
        }

        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var problems = new List<string>();
            var targetUri = ParseUrl(parseResult.GetValue(target), "--target", problems);
            var backendUri = ParseUrl(parseResult.GetValue(backend), "--backend", problems);
            var requestHeaders = new List<KeyValuePair<string, string>>();
            foreach (var text in parseResult.GetValue(requestHeader) ?? [])
            {
                var colon = text.IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0)
                {
                    problems.Add("--request-header: '" + text + "' is not 'name: value'");
                    continue;
                }

                requestHeaders.Add(new(text[..colon].Trim(), text[(colon + 1)..].Trim()));
            }

            var timeoutMs = parseResult.GetValue(timeout);
            if (timeoutMs <= 0)
            {
                problems.Add("--timeout-ms: must be positive");
            }

            var replayValues = ReplayValues.Empty;
            if (parseResult.GetValue(values) is { } valuesFile)
            {
                try
                {
                    replayValues = ReplayValues.Load(valuesFile.FullName);
                }
                catch (ReplayException ex)
                {
                    problems.Add(ex.Message);
                }
            }

            if (problems.Count > 0)
            {
                problems.ForEach(p => error.WriteLine("error: " + p));
                return ExitCodes.InvalidInput;
            }

            var apiKey = parseResult.GetValue(key) ?? Environment.GetEnvironmentVariable("SP_API_KEY");
            using var backendClient = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = backendUri, Timeout = TimeSpan.FromSeconds(60) };
            if (!string.IsNullOrEmpty(apiKey))
            {
                backendClient.DefaultRequestHeaders.TryAddWithoutValidation("x-public-key", apiKey);
            }

            // No cookies, no redirects, no decompression: the target's response is compared as it was sent.
            using var targetClient = new HttpClient(new SocketsHttpHandler { UseProxy = false, UseCookies = false, AllowAutoRedirect = false })
            {
                BaseAddress = targetUri,
                Timeout = Timeout.InfiniteTimeSpan,
            };

            RecordedSession loaded;
            try
            {
                loaded = await SessionRecording.LoadAsync(backendClient, parseResult.GetValue(session)!, parseResult.GetValue(service), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ReplayException or HttpRequestException)
            {
                error.WriteLine("error: " + ex.Message);
                return ExitCodes.InvalidInput;
            }

            var recorded = loaded.Exchanges;
            if (recorded.Count == 0)
            {
                error.WriteLine("error: session '" + parseResult.GetValue(session) + "' has no recorded inbound exchange"
                    + (loaded.IsEntryService || loaded.Service is null ? "" : " of service '" + loaded.Service + "'") + " to replay");
                return ExitCodes.InvalidInput;
            }

            var others = new List<JourneyRecording>();
            var learnIds = (parseResult.GetValue(learnFrom) ?? []).SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)).Distinct(StringComparer.Ordinal).ToList();
            if (learnIds.Remove("auto"))
            {
                try
                {
                    others.AddRange(await SessionRecording.FindJourneysAsync(backendClient, parseResult.GetValue(session)!, loaded, 10, cancellationToken).ConfigureAwait(false));
                    learnIds.RemoveAll(id => others.Exists(o => string.Equals(o.SessionId, id, StringComparison.Ordinal)));
                }
                catch (Exception ex) when (ex is ReplayException or HttpRequestException)
                {
                    error.WriteLine("error: --learn-from auto: " + ex.Message);
                    return ExitCodes.InvalidInput;
                }

                if (others.Count == 0)
                {
                    output.WriteLine("--learn-from auto: no other recent session of service '" + loaded.Service + "' has the same steps; learning from this one recording");
                }
            }

            foreach (var id in learnIds)
            {
                try
                {
                    // The same service as the replayed session's, so the steps line up.
                    var other = await SessionRecording.LoadAsync(backendClient, id, loaded.Service, cancellationToken).ConfigureAwait(false);
                    others.Add(new JourneyRecording(id, other.Exchanges));
                }
                catch (Exception ex) when (ex is ReplayException or HttpRequestException)
                {
                    error.WriteLine("error: --learn-from " + id + ": " + ex.Message);
                    return ExitCodes.InvalidInput;
                }
            }

            var runner = new ReplayRunner(targetClient, new ReplayOptions
            {
                Ignore = parseResult.GetValue(ignore) ?? [],
                CompareHeaders = ["content-type", .. parseResult.GetValue(header) ?? []],
                RequestHeaders = requestHeaders,
                Values = replayValues,
                Bind = parseResult.GetValue(bind) ?? [],
                NoBind = parseResult.GetValue(noBind) ?? [],
                Timeout = TimeSpan.FromMilliseconds(timeoutMs),
            });
            output.WriteLine("replaying the " + recorded.Count + " requests service '" + loaded.Service + "' received in session " + parseResult.GetValue(session) + " against " + targetUri
                + (loaded.IsEntryService ? " (the session's entry service, the service of its first inbound exchange; --service picks another)" : ""));
            var learned = runner.LearnValues(recorded, others);
            if (learned.Problems.Count > 0)
            {
                learned.Problems.ToList().ForEach(p => error.WriteLine("error: " + p));
                return ExitCodes.InvalidInput;
            }

            if (others.Count > 0)
            {
                output.WriteLine("learning from " + learned.Recordings + " recordings of the journey: " + parseResult.GetValue(session) + ", " + string.Join(", ", others.Select(o => o.SessionId)));
            }

            ReplayReports.WriteBindings(learned.Bindings, output);
            ReplayReports.WriteNotCarried(learned.NotCarried, output);
            ReplayReports.WriteNoiseAcross(learned.NoiseAcross, output);
            output.Flush();

            // The bar redraws a terminal line; in a redirected stderr (CI logs) it would only be clutter.
            var showProgress = !Console.IsErrorRedirected;
            var done = 0;
            var progress = new SynchronousProgress(result =>
            {
                done++;
                ReplayReports.WriteResult(result, output);
                if (showProgress)
                {
                    error.Write("\r" + ReplayReports.ProgressBar(done, recorded.Count) + (done == recorded.Count ? Environment.NewLine : ""));
                }
            });
            var report = await runner.RunAsync(parseResult.GetValue(session)!, loaded.Service, recorded, learned, progress, cancellationToken).ConfigureAwait(false);
            ReplayReports.WriteWarnings(report.Warnings, output);
            output.WriteLine(ReplayReports.Summary(report));

            if (parseResult.GetValue(junit) is { } junitFile)
            {
                await using var stream = junitFile.Create();
                ReplayReports.WriteJUnit(report, stream);
            }

            if (parseResult.GetValue(json) is { } jsonFile)
            {
                await using var stream = jsonFile.Create();
                await ReplayReports.WriteJsonAsync(report, stream, cancellationToken).ConfigureAwait(false);
            }

            return report.Regressions + report.Errors > 0 ? ExitCodes.Regressions : ExitCodes.Success;
        });
        return command;
    }

    private static Uri ParseUrl(string? text, string option, List<string> problems)
    {
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps))
        {
            // A trailing slash makes relative request targets append to a base path instead of replacing it.
            return uri.AbsoluteUri.EndsWith('/') ? uri : new Uri(uri.AbsoluteUri + "/");
        }

        problems.Add(option + ": '" + text + "' is not an http or https URL");
        return new Uri("http://invalid/");
    }

    /// <summary>Progress reported on the caller's thread, so lines come out in order (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SynchronousProgress(Action<ReplayResult> report) : IProgress<ReplayResult>
    {
        public void Report(ReplayResult value) => report(value);
    }
}
