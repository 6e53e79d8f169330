using System.Reflection;

namespace Microsoft.ML.Retention;

/// <summary>
/// <c>mlContext.Model.Load</c> calls each model loader through reflection, so the exception a loader throws (for a
/// ViR model, an <see cref="InvalidDataException"/> that gives the reason) reaches the caller wrapped in a
/// <see cref="TargetInvocationException"/> per level: one for a transformer saved alone, two for a saved chain.
/// </summary>
public static class ModelLoadExceptionExtensions
{
    /// <summary>The exception the loader threw, without ML.NET's reflection wrappers (the exception itself when it has none).</summary>
    /// <example><code>
    /// try { model = ml.Model.Load("model.zip", out _); }
    /// catch (TargetInvocationException e) { Console.Error.WriteLine(e.GetModelLoadError().Message); }
    /// </code></example>
    public static Exception GetModelLoadError(this Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        while (exception is TargetInvocationException { InnerException: { } inner }) exception = inner;
        return exception;
    }
}
