using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Retention.RetentionMath;

/// <summary>
/// Constant tensors (decay masks, rotations) built once per key and kept within a byte budget, oldest evicted first.
/// Values are built outside any caller's dispose scope, grad mode or inference mode, so they outlive them; a value
/// larger than the whole budget is not kept but handed to the caller's dispose scope.
/// </summary>
internal sealed class TensorCache(long budgetBytes)
{
    private readonly Dictionary<string, Tensor> _values = new();
    private readonly LinkedList<string> _order = new();
    private long _bytes;

    public Tensor GetOrAdd(string key, ScalarType type, Device device, Func<Tensor> build)
    {
        key = $"{key}|{type}|{device}";
        lock (_values)
        {
            if (_values.TryGetValue(key, out var hit)) return hit;
        }

        var callerScope = CurrentDisposeScope;
        Tensor value;
        using (var scope = NewDisposeScope())
        using (no_grad())
        using (inference_mode(false))
        {
            value = build().to(type, device).contiguous().DetachFromDisposeScope();
        }

        long bytes = value.NumberOfElements * value.ElementSize;
        if (bytes > budgetBytes)
        {
            callerScope?.Attach(value); // too big to keep: the caller's scope frees it.
            return value;
        }
        lock (_values)
        {
            if (_values.TryGetValue(key, out var raced)) { value.Dispose(); return raced; }
            while (_bytes + bytes > budgetBytes && _order.First is { } oldest)
            {
                var evicted = _values[oldest.Value];
                _bytes -= evicted.NumberOfElements * evicted.ElementSize;
                _values.Remove(oldest.Value);
                _order.RemoveFirst();
                // Not disposed: a caller on another thread may still be using it; the GC finalizes it.
            }
            _values[key] = value;
            _order.AddLast(key);
            _bytes += bytes;
            return value;
        }
    }
}
