using BenchmarkDotNet.Running;
using SpIstio.Micro.Benchmarks;

// Per-exchange hot paths of the agent and the backend; see bench/README.md "Micro".
//   dotnet run -c Release --project bench/Micro.Benchmarks -- --filter '*'
// After the run every benchmark's allocated bytes/op is checked against budgets.json; the exit
// code is 1 when one is over its budget.
var summaries = BenchmarkSwitcher.FromAssembly(typeof(MicroConfig).Assembly).Run(args, new MicroConfig());
return AllocationBudgets.Check(summaries, Path.Combine(AppContext.BaseDirectory, "budgets.json"), Console.Out) ? 0 : 1;
