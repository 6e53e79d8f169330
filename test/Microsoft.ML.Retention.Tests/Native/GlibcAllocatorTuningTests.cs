using Microsoft.ML.Retention.Native;

namespace Microsoft.ML.Retention.Tests;

[TestClass]
public sealed class GlibcAllocatorTuningTests
{
    [TestMethod]
    public void TheTestsOptInAndGlibcAcceptsTheTuningUnlessTheUserConfiguredMalloc()
    {
        // TestSetup.Start applied it, as an app would at its start.
        if (!OperatingSystem.IsLinux() || GlibcAllocatorTuning.UserConfiguredMalloc)
        {
            Assert.IsFalse(GlibcAllocatorTuning.Applied, "the tuning must stay off when the user configured malloc or off Linux");
            return;
        }
        bool glibc = File.Exists("/lib/x86_64-linux-gnu/libc.so.6") || File.Exists("/lib64/libc.so.6") || File.Exists("/lib/aarch64-linux-gnu/libc.so.6");
        Assert.AreEqual(glibc, GlibcAllocatorTuning.Applied, "mallopt should have accepted both settings on glibc");
        Assert.AreEqual(glibc, GlibcAllocatorTuning.Apply(), "applying again reports the same");
    }
}
