namespace AotFlash.Threading;

/// <summary>Work split over a team: <see cref="Execute"/> runs once on every member with its index.</summary>
public interface ITeamWork
{
    void Execute(int member, int members);
}

/// <summary>
/// A fixed team of threads for the per-token kernels. A kernel takes microseconds, so members spin briefly for the
/// next piece of work before they block; the calling thread is member 0 and works too. No allocation per run.
/// </summary>
public sealed class ThreadTeam : IDisposable
{
    private const int SpinsBeforeBlocking = 4000;
    private readonly Thread[] _threads;
    private readonly object _gate = new();
    private ITeamWork? _work;
    private long _generation;
    private int _pending;
    private bool _stopping;

    public ThreadTeam(int size)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), "a team needs at least one member");
        Size = size;
        _threads = new Thread[size - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int member = i + 1;
            _threads[i] = new Thread(() => Loop(member)) { IsBackground = true, Name = $"aotflash-{member}" };
            _threads[i].Start();
        }
    }

    public int Size { get; }

    /// <summary>Runs <paramref name="work"/> on every member and returns when all have finished.</summary>
    public void Run(ITeamWork work)
    {
        if (Size == 1)
        {
            work.Execute(0, 1);
            return;
        }
        Start(work);
        work.Execute(0, Size);
        Wait();
    }

    /// <summary>Runs <paramref name="work"/> on the members other than the caller and returns at once, so that the
    /// caller can do something else meanwhile (work that shares itself out, such as reads taken from a common list,
    /// does not need member 0); <see cref="Wait"/> ends it. A team of one has no other member: it runs the work here.</summary>
    public void Start(ITeamWork work)
    {
        if (Size == 1)
        {
            work.Execute(0, 1);
            return;
        }
        if (_work is not null) throw new InvalidOperationException("the team is already running work");
        _work = work;
        Volatile.Write(ref _pending, Size - 1);
        lock (_gate)
        {
            _generation++;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Waits until the members have finished the work <see cref="Start"/> gave them.</summary>
    public void Wait()
    {
        var spin = new SpinWait();
        while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(sleep1Threshold: -1);
        _work = null;
    }

    private void Loop(int member)
    {
        long seen = 0;
        while (true)
        {
            var spin = new SpinWait();
            for (int i = 0; Volatile.Read(ref _generation) == seen; i++)
            {
                if (i < SpinsBeforeBlocking)
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                    continue;
                }
                lock (_gate)
                    while (_generation == seen) Monitor.Wait(_gate);
            }
            seen = Volatile.Read(ref _generation);
            if (Volatile.Read(ref _stopping)) return;
            _work!.Execute(member, Size);
            Interlocked.Decrement(ref _pending);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopping = true;
            _generation++;
            Monitor.PulseAll(_gate);
        }
        foreach (var t in _threads) t.Join();
    }

    /// <summary>The [start, end) share of <paramref name="count"/> items for a member, in multiples of <paramref name="grain"/>.</summary>
    public static (int Start, int End) Share(int count, int member, int members, int grain = 1)
    {
        int blocks = (count + grain - 1) / grain;
        int start = (int)((long)blocks * member / members) * grain;
        int end = (int)((long)blocks * (member + 1) / members) * grain;
        return (Math.Min(start, count), Math.Min(end, count));
    }
}
