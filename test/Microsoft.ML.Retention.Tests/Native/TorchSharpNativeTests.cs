using Microsoft.ML.Retention.Native;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// How a failed libtorch load is explained. PackageConsumerTests shows the missing-GLIBCXX and missing-backend
/// cases in a real app; here the loader reports that this machine can't produce are fed in as text.
/// </summary>
[TestClass]
public sealed class TorchSharpNativeTests
{
    private const string Header = "Unable to load shared library 'LibTorchSharp' or one of its dependencies. In order to help diagnose " +
        "loading problems, consider using a tool like strace. If you're using glibc, consider setting the LD_DEBUG environment variable: \n";

    [TestMethod]
    public void LoadsInThisProcess() => TorchSharpNative.EnsureLoaded();

    [TestMethod]
    public void ACudaBundleWithoutCudaNamesTheMissingLibraryAndTheCpuBundle()
    {
        string message = TorchSharpNative.Explain(Header +
            "/app/runtimes/linux-x64/native/LibTorchSharp.so: cannot open shared object file: No such file or directory\n" +
            "libcudart.so.12: cannot open shared object file: No such file or directory (needed by /app/runtimes/linux-x64/native/libLibTorchSharp.so)\n", "0.107.0");
        StringAssert.Contains(message, "libcudart.so.12: cannot open shared object file");
        StringAssert.Contains(message, "reference TorchSharp-cpu instead");
    }

    [TestMethod]
    public void AnyOtherFailureIsQuotedAsTheCause()
    {
        string message = TorchSharpNative.Explain(Header +
            "/app/libLibTorchSharp.so: invalid ELF header\n/app/LibTorchSharp.so: cannot open shared object file: No such file or directory\n", "0.107.0");
        StringAssert.Contains(message, "Cause: /app/libLibTorchSharp.so: invalid ELF header");
        Assert.IsFalse(message.Contains("No such file", StringComparison.Ordinal), "only the attempt that found the file explains the failure");
    }
}
