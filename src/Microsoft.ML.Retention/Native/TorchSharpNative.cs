using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using TorchSharp;

namespace Microsoft.ML.Retention.Native;

/// <summary>
/// Loads libtorch for the library. Every call that needs it does so first: a fit, a model load, a model's constructor.
/// An app may call <see cref="EnsureLoaded"/> at start, to fail fast, and before its own first TorchSharp call so that
/// the OpenMP setting below applies.
/// <list type="bullet">
/// <item>It loads TorchSharp's native library the way TorchSharp does, before TorchSharp does, so that a host that can't
/// load it gets one exception naming the real cause and the fix. TorchSharp itself reports every failure as "doesn't
/// contain a reference to libtorch-cpu-…", also when the package is there and only its loading failed.</item>
/// <item>Before that, unless the app set <c>OMP_WAIT_POLICY</c> or <c>GOMP_SPINCOUNT</c> itself, it sets
/// <c>GOMP_SPINCOUNT=1000</c> for libtorch's OpenMP runtime: idle OpenMP threads spin 1,000 rounds (libgomp's own
/// count for oversubscribed cores) instead of 300,000 before they sleep. When another process computes on the same
/// cores, long spins take the cores from the threads that have work (measured in docs/benchmarks.md, "Contention").</item>
/// </list>
/// </summary>
public static class TorchSharpNative
{
    /// <summary>The spin count set for libgomp unless the app set its own wait policy or spin count.</summary>
    public const string OpenMPSpinCount = "1000";

    private static readonly Lazy<DllNotFoundException?> Failure = new(Load);

    /// <summary>Loads libtorch now; throws <see cref="DllNotFoundException"/> naming the cause and the fix when it can't be loaded.</summary>
    public static void EnsureLoaded()
    {
        if (Failure.Value is { } failure) throw new DllNotFoundException(failure.Message, failure.InnerException);
    }

    private static DllNotFoundException? Load()
    {
        SetOpenMPSpinCountUnlessTheAppDid();
        var torchSharp = typeof(torch).Assembly;
        // TorchSharp loads torch_cpu first and LibTorchSharp second; do the same so the outcome is the one it would see.
        NativeLibrary.TryLoad("torch_cpu", torchSharp, null, out _);
        try
        {
            NativeLibrary.Load("LibTorchSharp", torchSharp, null);
            return null;
        }
        catch (DllNotFoundException e)
        {
            return new DllNotFoundException(Explain(e.Message, TorchSharpVersion), e);
        }
    }

    // libgomp reads its environment once, when libtorch loads it; .NET's own copy of the environment never reaches it.
    private static void SetOpenMPSpinCountUnlessTheAppDid()
    {
        if (!OperatingSystem.IsLinux()) return;
        foreach (var name in new[] { "OMP_WAIT_POLICY", "GOMP_SPINCOUNT" })
            if (Environment.GetEnvironmentVariable(name) is not null || getenv(name) != IntPtr.Zero) return;
        setenv("GOMP_SPINCOUNT", OpenMPSpinCount, 0);
    }

    [DllImport("libc")]
    private static extern IntPtr getenv(string name);

    [DllImport("libc")]
    private static extern int setenv(string name, string value, int overwrite);

    private static string TorchSharpVersion => typeof(torch).Assembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "";

    /// <summary>
    /// Turns the loader's report (one line per path tried, each with the dynamic linker's error) into the cause and its fix.
    /// </summary>
    internal static string Explain(string loaderMessage, string torchSharpVersion)
    {
        var attempts = loaderMessage.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(line => line.Contains("LibTorchSharp", StringComparison.OrdinalIgnoreCase) && line.Contains(": "))
            .ToList();
        var failures = attempts.Where(line => !line.EndsWith("No such file or directory", StringComparison.Ordinal)).ToList();
        const string Prefix = "TorchSharp's native library could not be loaded, so Microsoft.ML.Retention can't run.";

        if (failures.Count == 0)
            return $"{Prefix} No copy of LibTorchSharp was found beside the application. The application must reference exactly one " +
                $"TorchSharp backend package: TorchSharp-cpu, or TorchSharp-cuda-linux (or TorchSharp-cuda-windows) for NVIDIA GPUs. " +
                $"Microsoft.ML.Retention references only the managed TorchSharp package, so that the application makes that choice. " +
                $"Fix: dotnet add package TorchSharp-cpu --version {torchSharpVersion}" +
                (attempts.Count > 0 ? $"\nPaths tried:\n{string.Join('\n', attempts)}" : $"\nLoader: {loaderMessage}");

        string cause = string.Join('\n', failures);
        var missingVersion = Regex.Match(cause, @"version `(GLIBCXX_[0-9.]+)' not found");
        if (missingVersion.Success)
            return $"{Prefix}\nCause: {cause}\nThis machine's libstdc++ lacks {missingVersion.Groups[1].Value}, which TorchSharp's " +
                "libLibTorchSharp.so asks for (Debian 12 and Ubuntu 22.04 ship an older libstdc++). The Microsoft.ML.Retention package " +
                "marks that one requirement weak in the copy in build and publish output, and this copy was not patched. " +
                "Fix: build or publish the application again with the Microsoft.ML.Retention package referenced by it or by a project it " +
                "references, and without MLRetentionPatchTorchSharpNative=never. If you build on a machine with a newer libstdc++ " +
                "for one without it (a Debian 12 or Ubuntu 22.04 server or container), build with -p:MLRetentionPatchTorchSharpNative=always. " +
                "Installing libstdc++ from GCC 13 or newer also fixes it.";

        if (Regex.IsMatch(cause, @"lib(cuda|cudart|cublas|cudnn|nvrtc|nvToolsExt|cufft|curand|cusparse|cusolver)", RegexOptions.IgnoreCase))
            return $"{Prefix}\nCause: {cause}\nThe CUDA backend needs an NVIDIA driver and the CUDA libraries it was built for. " +
                "Fix: install them, or reference TorchSharp-cpu instead of a TorchSharp-cuda package on machines without an NVIDIA GPU.";

        return $"{Prefix}\nCause: {cause}";
    }
}
