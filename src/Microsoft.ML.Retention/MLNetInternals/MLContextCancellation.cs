namespace Microsoft.ML.Retention;

/// <summary>
/// Makes <c>mlContext.CancelExecution()</c> callable: ML.NET 5 declares it internal. Training stops
/// with <see cref="OperationCanceledException"/> before its next step.
/// </summary>
public static class MLContextCancellation
{
    /// <summary>Signals every component running in <paramref name="mlContext"/> to stop.</summary>
    /// <param name="mlContext">The context to cancel; it cannot be used for training afterwards.</param>
    public static void CancelExecution(this MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        mlContext.CancelExecution();
    }
}
