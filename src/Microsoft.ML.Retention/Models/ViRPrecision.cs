namespace Microsoft.ML.Retention.Models;

/// <summary>The number format a ViR scores in.</summary>
public enum ViRPrecision
{
    /// <summary>32-bit floats throughout.</summary>
    Float32,

    /// <summary>
    /// bfloat16 weights and activations, about 3× faster where the device computes in bfloat16 (x86 CPUs with AVX512-BF16
    /// or AMX, recent GPUs). Retention's decays and the states that carry across chunks and tokens stay float32, so the
    /// three forms still agree. Elsewhere it falls back to <see cref="Float32"/> with one warning.
    /// </summary>
    BFloat16,
}
