using Microsoft.ML.Retention.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.Training;

/// <summary>
/// Mixed-precision training: a bfloat16 copy of the model (<see cref="IVisionBackbone.BFloat16Copy"/>) runs forward and
/// backward, while the fp32 model keeps the master weights that AdamW updates. Norm layers stay fp32 in the copy, so
/// BatchNorm's running statistics accumulate in fp32.
/// </summary>
internal sealed class BFloat16Replica : IDisposable
{
    private readonly IVisionBackbone _master;
    private readonly (Parameter Master, Parameter Copy)[] _parameters;
    private readonly (Tensor Master, Tensor Copy)[] _buffers;

    public BFloat16Replica(IVisionBackbone master)
    {
        _master = master;
        Model = master.BFloat16Copy();

        var copyParameters = Model.Module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        _parameters = master.Module.named_parameters().Select(p => (p.parameter, copyParameters[p.name])).ToArray();
        var copyBuffers = Model.Module.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        _buffers = master.Module.named_buffers().Select(b => (b.buffer, copyBuffers[b.name])).ToArray();
    }

    /// <summary>The bfloat16 copy to run forward and backward on.</summary>
    public IVisionBackbone Model { get; }

    /// <summary>Copies the master weights into the copy and clears its gradients (before each forward).</summary>
    public void PullWeights()
    {
        Model.Module.zero_grad();
        using var noGrad = no_grad();
        foreach (var (master, copy) in _parameters) copy.copy_(master);
    }

    /// <summary>Hands the copy's gradients to the master weights, in fp32 (after each backward).</summary>
    public void PushGradients()
    {
        using var noGrad = no_grad();
        foreach (var (master, copy) in _parameters)
        {
            if (copy.grad is not { } grad) continue;
            if (master.grad is { } existing) existing.copy_(grad);
            else master.grad = grad.to(ScalarType.Float32);
        }
    }

    /// <summary>Copies the copy's buffers (BatchNorm statistics) into the master model (before it is evaluated or saved).</summary>
    public void PushBuffers()
    {
        using var noGrad = no_grad();
        foreach (var (master, copy) in _buffers) master.copy_(copy);
    }

    public void Dispose() => Model.Dispose();
}
