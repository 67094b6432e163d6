namespace SpIstio.Backend.Tests.Infrastructure;

/// <summary>Waiting for a state the server reaches on its own (a gauge, a queue), bounded so a test that never gets there fails.</summary>
internal static class Conditions
{
    public static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            await Task.Delay(10, timeout.Token);
        }
    }
}
