using Microsoft.ML.Retention.Native;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

internal static class DeviceSelection
{
    /// <summary>Resolves a device request; <paramref name="warn"/> hears about a fallback to the CPU.</summary>
    public static Device Resolve(ViRDevice requested, bool fallbackToCpu, Action<string> warn)
    {
        TorchSharpNative.EnsureLoaded();
        switch (requested)
        {
            case ViRDevice.Cpu:
                return CPU;
            case ViRDevice.Auto:
                return cuda.is_available() ? CUDA : CPU;
            case ViRDevice.Cuda when cuda.is_available():
                return CUDA;
            case ViRDevice.Cuda when fallbackToCpu:
                warn("Device Cuda was requested, but CUDA is not available; falling back to the CPU (FallbackToCpu is set).");
                return CPU;
            case ViRDevice.Cuda:
                throw new InvalidOperationException(
                    "Device Cuda was requested, but CUDA is not available: expected a CUDA GPU and the TorchSharp-cuda backend " +
                    "(reference TorchSharp-cuda-linux), but torch.cuda.is_available() is false. Use Device = Cpu or Auto, or set FallbackToCpu.");
            default:
                throw new ArgumentOutOfRangeException(nameof(requested), requested, "Unknown device.");
        }
    }
}
