using Microsoft.ML.Retention.Native;

namespace Microsoft.ML.Retention.Tests;

[TestClass]
public static class TestSetup
{
    /// <summary>The tests opt in to the allocator tuning, as the sample and the benchmarks do (docs/platform.md).</summary>
    [AssemblyInitialize]
    public static void Start(TestContext _) => GlibcAllocatorTuning.Apply();
}
