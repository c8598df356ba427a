namespace Retpoline.Toolchain;

/// <summary>
/// Runs jobs on a fixed number of threads, handing out one job at a time, largest first. Parallel.For hands out
/// growing chunks of indices, so near the end one core could sit idle while the other still held several compiles
/// (measured: 52 compiles on 2 cores took ~5 % longer than `xargs -P2` with the same commands). Taking the biggest
/// sources first (longest-processing-time order) also keeps a long compile from being the last one started.
/// </summary>
public static class JobQueue
{
    /// <param name="size">The cost estimate of job i (a source file's size); ties keep the original order.</param>
    public static void Run(int count, int degree, Func<int, long> size, Action<int> job, CancellationToken cancel = default)
    {
        var order = Enumerable.Range(0, count).OrderByDescending(size).ThenBy(i => i).ToArray();
        int next = -1;
        Exception? failure = null;
        void Worker()
        {
            try
            {
                for (int k = Interlocked.Increment(ref next); k < order.Length && !cancel.IsCancellationRequested && failure is null; k = Interlocked.Increment(ref next))
                    job(order[k]);
            }
            catch (Exception e) { Interlocked.CompareExchange(ref failure, e, null); }
        }
        var threads = Enumerable.Range(0, Math.Max(1, Math.Min(degree, count)) - 1)
            .Select(_ => new Thread(Worker) { IsBackground = true, Name = "retpoline job" }).ToList();
        foreach (var t in threads) t.Start();
        Worker(); // the calling thread is one of the workers
        foreach (var t in threads) t.Join();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        cancel.ThrowIfCancellationRequested();
    }
}
