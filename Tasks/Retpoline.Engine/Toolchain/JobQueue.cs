namespace Retpoline.Toolchain;

/// <summary>
/// Runs jobs on a fixed number of threads, handing out one job at a time, largest first, as make -j hands out one
/// target at a time. Parallel.For hands out growing chunks of indices, so near the end one core could sit idle while
/// the other still held several compiles; taking the biggest sources first (longest-processing-time order) keeps a
/// long compile from being the last one started. (Measured from a plain .NET program: the same 52 compiles took as
/// long as `xargs -P2`; the difference from Parallel.For was within this machine's noise.)
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
