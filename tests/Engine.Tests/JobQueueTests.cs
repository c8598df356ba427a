using Retpoline.Toolchain;
using Xunit;

namespace Retpoline.Tests;

/// <summary>The compile scheduler: every job once, biggest first, never more at once than asked, failures surface.</summary>
public sealed class JobQueueTests
{
    [Fact]
    public void One_worker_runs_every_job_once_biggest_first_ties_in_order()
    {
        long[] sizes = [10, 50, 10, 70, 0];
        var ran = new List<int>();
        JobQueue.Run(sizes.Length, 1, i => sizes[i], ran.Add);
        Assert.Equal([3, 1, 0, 2, 4], ran);
    }

    [Fact]
    public void Never_more_jobs_at_once_than_the_degree_and_each_runs_once()
    {
        int running = 0, peak = 0;
        var count = new int[40];
        JobQueue.Run(count.Length, 3, _ => 1, i =>
        {
            int now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            Thread.Sleep(5);
            Interlocked.Increment(ref count[i]);
            Interlocked.Decrement(ref running);
        });
        Assert.All(count, c => Assert.Equal(1, c));
        Assert.InRange(peak, 2, 3);
    }

    [Fact]
    public void A_failing_job_stops_the_queue_and_its_exception_surfaces()
    {
        int started = 0;
        var e = Assert.Throws<InvalidOperationException>(() => JobQueue.Run(100, 2, _ => 1, i =>
        {
            Interlocked.Increment(ref started);
            if (i == 3) throw new InvalidOperationException("job 3");
            Thread.Sleep(1);
        }));
        Assert.Equal("job 3", e.Message);
        Assert.True(started < 100, $"{started} jobs started after the failure");
    }

    static void InterlockedMax(ref int target, int value)
    {
        for (int seen = target; value > seen; seen = target)
            if (Interlocked.CompareExchange(ref target, value, seen) == seen) return;
    }
}
