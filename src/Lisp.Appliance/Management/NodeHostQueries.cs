using System.Threading.Channels;
using Lisp.Appliance.Config;

namespace Lisp.Appliance.Hosting;

// Management reads of role state. The roles are owned by the control thread and are not thread-safe, so an
// HTTP thread never touches them: it posts a read here, the control loop runs it between batches (the loop
// wakes for it as for a packet), and the caller waits for the result with a bounded timeout.
public sealed partial class NodeHost
{
    /// <summary>Reads waiting for the control thread; bounded so a burst of HTTP requests cannot grow memory.</summary>
    public const int QueryCapacity = 64;

    private readonly Channel<Action> _queries = Channel.CreateBounded<Action>(new BoundedChannelOptions(QueryCapacity)
    {
        FullMode = BoundedChannelFullMode.Wait, // TryWrite fails when full: the caller answers "busy"
        SingleReader = true,
    });

    /// <summary>The validated config this node runs (immutable).</summary>
    public NodeConfig Config => _config;

    /// <summary>Datagrams the control transport failed to send (read from any thread).</summary>
    public long SendErrors => _transport.SendErrors;

    /// <summary>
    /// Runs <paramref name="read"/> on the control thread and returns what it returns (it must only read, and
    /// build a detached copy). Faults with <see cref="TimeoutException"/> when the control thread does not get
    /// to it within <paramref name="timeout"/>, and with <see cref="InvalidOperationException"/> when
    /// <see cref="QueryCapacity"/> reads are already waiting.
    /// </summary>
    public Task<T> QueryAsync<T>(Func<ControlNodeSet, DateTimeOffset, T> read, TimeSpan timeout)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Run()
        {
            if (done.Task.IsCompleted) return; // the caller gave up already
            try
            {
                done.TrySetResult(read(Nodes, Clock.GetUtcNow()));
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        }
        if (!_queries.Writer.TryWrite(Run))
        {
            return Task.FromException<T>(new InvalidOperationException($"{QueryCapacity} management reads are already waiting for the control thread"));
        }
        Wake();
        return done.Task.WaitAsync(timeout);
    }

    /// <summary>Control thread: run the waiting reads (at most a queue's worth per loop turn).</summary>
    private void RunQueries()
    {
        for (int i = 0; i < QueryCapacity && _queries.Reader.TryRead(out var q); i++) q();
    }
}
