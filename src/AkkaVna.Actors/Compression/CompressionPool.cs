using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace AkkaVna.Actors.Compression;

/// <summary>
/// Where the compression work runs: a few dedicated threads (never the actors' dispatcher or the .NET thread pool that
/// ingest uses), each at a lower CPU priority (Linux nice 10, set per thread) so that ingest keeps the cores it needs.
/// Work is queued; the queue's length is what a metric reports.
/// </summary>
public sealed class CompressionPool : IDisposable
{
    private readonly BlockingCollection<Action> _queue = [];
    private readonly Thread[] _threads;
    private int _queued;

    public CompressionPool(int workers)
    {
        _threads = new Thread[Math.Max(1, workers)];
        for (int i = 0; i < _threads.Length; i++)
        {
            _threads[i] = new Thread(Run) { IsBackground = true, Name = $"compression-{i}" };
            _threads[i].Start();
        }
    }

    /// <summary>Work waiting for a thread, and running.</summary>
    public int Queued => Volatile.Read(ref _queued);

    public int Workers => _threads.Length;

    /// <summary>Runs <paramref name="work"/> on one of the pool's threads.</summary>
    public Task<T> RunAsync<T>(Func<T> work, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.Increment(ref _queued);
        _queue.Add(() =>
        {
            try
            {
                cancellationToken.ThrowIfCancellationRequested();
                done.TrySetResult(work());
            }
            catch (OperationCanceledException)
            {
                done.TrySetCanceled(cancellationToken);
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
            finally
            {
                Interlocked.Decrement(ref _queued);
            }
        }, CancellationToken.None);
        return done.Task;
    }

    private void Run()
    {
        LowerPriority();
        try
        {
            foreach (var work in _queue.GetConsumingEnumerable()) work();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>Linux: this thread's nice value to 10 (a thread is a task of its own there); elsewhere .NET's below-normal priority.</summary>
    private static void LowerPriority()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                setpriority(0 /* PRIO_PROCESS */, gettid(), 10);
                return;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
            }
        }
        Thread.CurrentThread.Priority = ThreadPriority.BelowNormal;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setpriority(int which, int who, int priority);

    [DllImport("libc")]
    private static extern int gettid();

    public void Dispose() => _queue.CompleteAdding();
}
