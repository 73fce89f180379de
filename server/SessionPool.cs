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
    private readonly LinkedList<Waiter> _waiting = new();
    private readonly List<Transformer> _all;
    private readonly int _queueLimit;
    private readonly ManualResetEventSlim _allFree = new(true);

    public SessionPool(IReadOnlyList<Transformer> transformers, int queueLimit)
    {
        _all = [.. transformers];
        _free = new Stack<Transformer>(transformers.Reverse());
        _queueLimit = queueLimit;
    }

    /// <summary>Requests generated at once.</summary>
    public int Size => _all.Count;

    /// <summary>Requests generating now, and requests waiting.</summary>
    public (int Running, int Waiting) Load()
    {
        lock (_lock) return (_all.Count - _free.Count, _waiting.Count);
    }

    /// <summary>A free transformer, now or when one is released; null when the queue is full. Cancelling
    /// <paramref name="cancel"/> takes a waiting request out of the queue (the task is then cancelled).</summary>
    public Task<Transformer>? Acquire(CancellationToken cancel)
    {
        lock (_lock)
        {
            if (_free.Count > 0) return Task.FromResult(Take(_free.Pop()));
            if (_waiting.Count >= _queueLimit) return null;
            var waiter = new Waiter();
            var node = _waiting.AddLast(waiter);
            waiter.Registration = cancel.Register(() =>
            {
                lock (_lock)
                {
                    if (node.List is null) return; // already handed a transformer
                    _waiting.Remove(node);
                }
                waiter.Result.TrySetCanceled(cancel);
            });
            return waiter.Result.Task;
        }
    }

    /// <summary>Hands a transformer to the first waiting request, or back to the free ones.</summary>
    public void Release(Transformer transformer)
    {
        Waiter? next;
        lock (_lock)
        {
            next = _waiting.First?.Value;
            if (next is null)
            {
                _free.Push(transformer);
                if (_free.Count == _all.Count) _allFree.Set();
                return;
            }
            _waiting.RemoveFirst();
        }
        next.Registration.Dispose(); // outside the lock: it waits for a cancellation callback that takes the lock
        next.Result.SetResult(transformer);
    }

    private Transformer Take(Transformer transformer)
    {
        _allFree.Reset();
        return transformer;
    }

    /// <summary>Waits until every transformer is back (a generation still running, however it was stopped, finishes
    /// with its own), then frees them all.</summary>
    public void Dispose()
    {
        _allFree.Wait();
        foreach (var t in _all)
        {
            t.Dispose();
            t.Weights.Dispose();
        }
        _allFree.Dispose();
    }

    private sealed class Waiter
    {
        public TaskCompletionSource<Transformer> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public CancellationTokenRegistration Registration { get; set; }
    }
}
