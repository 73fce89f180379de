namespace AotFlash.Tokenizers;

/// <summary>
/// The merge order of a BPE encoder: a binary min-heap of (priority, position) packed as priority &lt;&lt; 32 | position,
/// so the pair with the lowest priority comes first and, on ties, the leftmost. Encoders push every adjacent pair once
/// and the (at most two) new pairs of each merge, and skip popped entries whose pair has changed since, which keeps a
/// sequence of n symbols at O(n log n).
/// </summary>
internal static class MergeQueue
{
    public static void Push(long[] heap, ref int count, uint priority, int position)
    {
        long item = (long)((ulong)priority << 32 | (uint)position);
        int i = count++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if ((ulong)heap[parent] <= (ulong)item) break;
            heap[i] = heap[parent];
            i = parent;
        }
        heap[i] = item;
    }

    /// <summary>Takes the first entry: its priority and position.</summary>
    public static (uint Priority, int Position) Pop(long[] heap, ref int count)
    {
        long top = heap[0];
        long last = heap[--count];
        int i = 0;
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= count) break;
            if (child + 1 < count && (ulong)heap[child + 1] < (ulong)heap[child]) child++;
            if ((ulong)heap[child] >= (ulong)last) break;
            heap[i] = heap[child];
            i = child;
        }
        if (count > 0) heap[i] = last;
        return ((uint)((ulong)top >> 32), (int)(uint)top);
    }
}
