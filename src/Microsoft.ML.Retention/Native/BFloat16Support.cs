using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Native;

/// <summary>
/// Whether a device computes in bfloat16 natively, asked of the device itself. An app (or a test run) forces the
/// float32 fallback on any device with the AppContext switch <c>Microsoft.ML.Retention.DisableBFloat16</c> or the
/// environment variable <c>MLRETENTION_DISABLE_BFLOAT16=1</c>; both are read at every call.
/// </summary>
internal static class BFloat16Support
{
    public const string Switch = "Microsoft.ML.Retention.DisableBFloat16";
    public const string EnvironmentVariable = "MLRETENTION_DISABLE_BFLOAT16";

    private static readonly Lazy<bool> Cpu = new(CpuHasBFloat16);

    public static bool On(Device device) =>
        !Disabled && (device.type == DeviceType.CPU ? Cpu.Value : CudaRunsBFloat16(device));

    /// <summary>True when the switch or the environment variable turns bfloat16 off.</summary>
    public static bool Disabled =>
        (AppContext.TryGetSwitch(Switch, out bool disabled) && disabled)
        || Environment.GetEnvironmentVariable(EnvironmentVariable) is "1" or "true" or "True" or "TRUE";

    // x86: CPUID leaf 7 reports AVX512_BF16 (subleaf 1, EAX bit 5) and AMX-BF16 (subleaf 0, EDX bit 22). Arm64: the
    // kernel lists "bf16" among the CPU's features. Without them libtorch emulates bfloat16, slower than float32.
    private static bool CpuHasBFloat16()
    {
        if (X86Base.IsSupported)
        {
            if (X86Base.CpuId(0, 0).Eax < 7) return false;
            return ((X86Base.CpuId(7, 1).Eax >> 5) & 1) == 1 || ((X86Base.CpuId(7, 0).Edx >> 22) & 1) == 1;
        }
        return OperatingSystem.IsLinux() && File.Exists("/proc/cpuinfo")
            && File.ReadLines("/proc/cpuinfo").Any(line => line.StartsWith("Features", StringComparison.Ordinal) && line.Split(' ', ':').Contains("bf16"));
    }

    private static bool CudaRunsBFloat16(Device device)
    {
        try
        {
            using var scope = NewDisposeScope();
            return ones(2, 2, ScalarType.BFloat16, device).matmul(ones(2, 2, ScalarType.BFloat16, device)).to(ScalarType.Float32).sum().item<float>() == 8;
        }
        catch (Exception e) when (e is System.Runtime.InteropServices.ExternalException or InvalidOperationException)
        {
            return false;
        }
    }
}
