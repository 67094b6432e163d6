namespace SpIstio.Agent.Benchmarks;

/// <summary>
/// One measured cell of one run: the agent's rate, its ratio to the no-op server's rate in the same
/// run (null for paced cells), the offered rate of a paced cell, round trip and per-message server time, and process CPU per exchange.
/// </summary>
internal sealed record Cell(
    string Name,
    string Load,
    double? Offered,
    double PerSecond,
    double? Ratio,
    double RoundTripP50Ms,
    double RoundTripP99Ms,
    double ServerP50Us,
    double ServerP99Us,
    long Errors,
    double Cpu,
    double? NoopCpu);
