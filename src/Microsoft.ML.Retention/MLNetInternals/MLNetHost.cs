using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Retention.MLNetInternals;

/// <summary>The host services ML.NET keeps internal: cancellation and the context's seed.</summary>
internal static class MLNetHost
{
    /// <summary>Throws <see cref="OperationCanceledException"/> once <c>MLContext.CancelExecution()</c> was called.</summary>
    public static void CheckAlive(IHostEnvironment host) => Contracts.CheckAlive(host);

    /// <summary>The MLContext behind a catalog such as <c>mlContext.MulticlassClassification.Trainers</c>.</summary>
    public static IHostEnvironment Environment(MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog) =>
        ((IInternalCatalog)catalog).Environment;

    /// <summary>The MLContext behind <c>mlContext.Model</c>.</summary>
    public static IHostEnvironment Environment(ModelOperationsCatalog catalog) => ((IInternalCatalog)catalog).Environment;

    /// <summary>The seed given to <c>new MLContext(seed)</c>, if any.</summary>
    public static int? Seed(IHostEnvironment host) => (host as IHostEnvironmentInternal)?.Seed;
}
