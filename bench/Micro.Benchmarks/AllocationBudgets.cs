using System.Globalization;
using System.Text.Json;
using BenchmarkDotNet.Reports;

namespace SpIstio.Micro.Benchmarks;

/// <summary>
/// Compares allocated bytes per operation with the budgets in budgets.json (key: class, method
/// and parameters, e.g. <c>AgentPath.Redact(BodyBytes=2048)</c>), in the manner of Garnet's
/// BDN_Benchmark_Config.json: a hot path that starts allocating more fails the run.
/// </summary>
internal static class AllocationBudgets
{
    // Allocation counts are exact, but sizes of pooled or amortised buffers wobble a little.
    private const double Tolerance = 1.10;

    public static bool Check(IEnumerable<Summary> summaries, string budgetFile, TextWriter output)
    {
        var budgets = File.Exists(budgetFile)
            ? JsonSerializer.Deserialize<Dictionary<string, long>>(File.ReadAllText(budgetFile)) ?? []
            : [];
        var ok = true;
        output.WriteLine();
        output.WriteLine("| benchmark | allocated B/op | budget B/op | |");
        output.WriteLine("| --- | ---: | ---: | --- |");
        foreach (var summary in summaries)
        {
            foreach (var report in summary.Reports)
            {
                var name = Key(report.BenchmarkCase);
                var allocated = report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase);
                if (allocated is not { } bytes)
                {
                    continue;
                }

                var verdict = "no budget";
                var budgetText = "-";
                if (budgets.TryGetValue(name, out var budget))
                {
                    budgetText = budget.ToString("N0", CultureInfo.InvariantCulture);
                    var over = bytes > budget * Tolerance;
                    ok &= !over;
                    verdict = over ? "OVER" : "ok";
                }

                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {bytes:N0} | {budgetText} | {verdict} |"));
            }
        }

        return ok;
    }

    private static string Key(BenchmarkDotNet.Running.BenchmarkCase benchmark)
    {
        var descriptor = benchmark.Descriptor;
        var parameters = string.Join(",", benchmark.Parameters.Items.Select(p => p.Name + "=" + Convert.ToString(p.Value, CultureInfo.InvariantCulture)));
        return descriptor.Type.Name + "." + descriptor.WorkloadMethod.Name + "(" + parameters + ")";
    }
}
