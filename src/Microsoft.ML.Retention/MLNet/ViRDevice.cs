namespace Microsoft.ML.Retention;

/// <summary>Where a ViR trains and scores.</summary>
public enum ViRDevice
{
    /// <summary>CUDA when available, otherwise the CPU.</summary>
    Auto,

    /// <summary>The CPU.</summary>
    Cpu,

    /// <summary>The first CUDA GPU (needs the TorchSharp-cuda backend: reference TorchSharp-cuda-linux).</summary>
    Cuda,
}
