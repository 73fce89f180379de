using AotFlash.Inference;

namespace AotFlash.Server;

/// <summary>
/// The transformers (one KV cache and FFN source each, over the model's shared weights) that requests generate with:
/// a request takes a free one, or waits in a queue of bounded length; past it the request is refused (503).
/// </summary>
internal sealed class SessionPool : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Stack<Transformer> _free;
    private readonly LinkedList<TaskCompletionSource<Transformer>> _waiting = new();
    private readonly List<Transformer> _all;
    private readonly int _queueLimit;

    public SessionPool(IReadOnlyList<Transformer> transformers, int queueLimit)
    {
        _all = [.. transformers];
        _free = new Stack<Transformer>(transformers.Reverse());
        _queueLimit = queueLimit;
    }

    /// <summary>Requests generated at once.</summary>
    public int Size => _all.Count;
    public int QueueLimit => _queueLimit;

    /// <summary>Requests generating now, and requests waiting.</summary>
    public (int Running, int Waiting) Load()
    {
        lock (_lock) return (_all.Count - _free.Count, _waiting.Count);
    }

    /// <summary>A free transformer, now or when one is released; null when the queue is full. Cancelling
    /// <paramref name="cancel"/> takes a waiting request out of the queue.</summary>
    public Task<Transformer>? Acquire(CancellationToken cancel)
    {
        lock (_lock)
        {
            if (_free.Count > 0) return Task.FromResult(_free.Pop());
            if (_waiting.Count >= _queueLimit) return null;
            var waiter = new TaskCompletionSource<Transformer>(TaskCreationOptions.RunContinuationsAsynchronously);
            var node = _waiting.AddLast(waiter);
            cancel.Register(() =>
            {
                lock (_lock)
                {
                    if (node.List is null) return; // already handed a transformer
                    _waiting.Remove(node);
                }
                waiter.TrySetCanceled(cancel);
            });
            return waiter.Task;
        }
    }

    /// <summary>Hands a transformer to the first waiting request, or back to the free ones.</summary>
    public void Release(Transformer transformer)
    {
        lock (_lock)
        {
            if (_waiting.First is { } first)
            {
                _waiting.RemoveFirst();
                first.Value.SetResult(transformer);
                return;
            }
            _free.Push(transformer);
        }
    }

    /// <summary>Frees every transformer; call when no request runs any more.</summary>
    public void Dispose()
    {
        foreach (var t in _all)
        {
            t.Dispose();
            t.Weights.Dispose();
        }
    }
}
