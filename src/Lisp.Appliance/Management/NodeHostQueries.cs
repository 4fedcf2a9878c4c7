using Lisp.Appliance.Config;

namespace Lisp.Appliance.Hosting;

// Management reads of role state. The roles are owned by the control shards and are not thread-safe, so an
// HTTP thread never touches them: it posts a read to shard 0's inbox, shard 0 parks the other shards (each
// finishes its batch and waits), runs the read over every slice, lets them go, and the caller waits for the
// result with a bounded timeout.
public sealed partial class NodeHost
{
    /// <summary>Reads waiting for the control thread; bounded so a burst of HTTP requests cannot grow memory.</summary>
    public const int QueryCapacity = 64;

    private int _queriesWaiting;

    /// <summary>The validated config this node runs (immutable).</summary>
    public NodeConfig Config => _config;

    /// <summary>Datagrams the control transport or a shard's batched send failed to send (read from any thread).</summary>
    public long SendErrors => _transport.SendErrors + Interlocked.Read(ref _sendErrors);

    /// <summary>
    /// Runs <paramref name="read"/> on shard 0 with every other shard parked and returns what it returns (it must
    /// only read, and build a detached copy). Faults with <see cref="TimeoutException"/> when the shards do not get
    /// to it within <paramref name="timeout"/>, and with <see cref="InvalidOperationException"/> when
    /// <see cref="QueryCapacity"/> reads are already waiting.
    /// </summary>
    public Task<T> QueryAsync<T>(Func<ControlNodeSet, DateTimeOffset, T> read, TimeSpan timeout)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Run()
        {
            Interlocked.Decrement(ref _queriesWaiting);
            if (done.Task.IsCompleted) return; // the caller gave up already
            try
            {
                done.TrySetResult(Parked(() => read(Nodes, Clock.GetUtcNow()), timeout));
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        }
        if (Interlocked.Increment(ref _queriesWaiting) > QueryCapacity)
        {
            Interlocked.Decrement(ref _queriesWaiting);
            return Task.FromException<T>(new InvalidOperationException($"{QueryCapacity} management reads are already waiting for the control thread"));
        }
        Post(_shards[0], (Action)Run, force: true);
        return done.Task.WaitAsync(timeout);
    }

    /// <summary>Shard 0: runs <paramref name="read"/> while every other shard waits between batches.</summary>
    private T Parked<T>(Func<T> read, TimeSpan timeout)
    {
        if (_shards.Length == 1) return read();
        var parked = new CountdownEvent(_shards.Length - 1);
        var release = new ManualResetEventSlim();
        for (int i = 1; i < _shards.Length; i++)
        {
            Post(_shards[i], (Action)(() =>
            {
                parked.Signal();
                release.Wait(TimeSpan.FromSeconds(10)); // bounded: a lost release cannot stop a shard for good
            }), force: true);
        }
        try
        {
            if (!parked.Wait(timeout)) throw new TimeoutException("the control shards did not pause for the read");
            return read();
        }
        finally
        {
            release.Set();
        }
    }
}
