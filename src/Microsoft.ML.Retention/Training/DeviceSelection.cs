using Microsoft.ML.Retention.Native;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention;

/// <summary>Where a ViR trains and scores.</summary>
public enum ViRDevice
{
    /// <summary>CUDA when available, otherwise the CPU.</summary>
    Auto,

    /// <summary>The CPU.</summary>
    Cpu,

    /// <summary>The first CUDA GPU (needs the TorchSharp-cuda backend: build with -p:TorchBackend=cuda).</summary>
    Cuda,
}

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
                    "(build with -p:TorchBackend=cuda), but torch.cuda.is_available() is false. Use Device = Cpu or Auto, or set FallbackToCpu.");
            default:
                throw new ArgumentOutOfRangeException(nameof(requested), requested, "Unknown device.");
        }
    }
}
