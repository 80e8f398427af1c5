using System.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Dimse;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.Scp;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Network.Tests.Scp;

/// <summary>Many associations at once, asynchronous operations, and back-pressure from a slow sink — over real sockets.</summary>
public sealed class ConcurrencyTests
{
    private static DicomServer Start(ICStoreHandler store, DicomAssociationOptions? association = null)
    {
        var server = new DicomServer(new DicomServerOptions { Port = 0, Association = association ?? new DicomAssociationOptions() },
            new DicomServices { Store = store });
        server.Start();
        return server;
    }

    [Fact]
    public async Task Sixty_four_associations_at_once_store_every_instance_intact()
    {
        using var dir = new TempDir();
        var files = Instances.WriteStudy(dir.File("src"), 192, 64 * 1024).Select(StoreFile.Read).ToList();
        await using var server = Start(new FolderStoreHandler(dir.File("out")));
        var lists = Enumerable.Range(0, 64).Select(i => files.Where((_, k) => k % 64 == i).ToList()).ToList();
        var outcomes = (await Task.WhenAll(lists.Select(l => StoreScu.SendAsync("127.0.0.1", server.LocalEndPoint.Port, l,
            new StoreScuOptions { CalledAE = "AKKAVNA" })))).SelectMany(o => o).ToList();

        Assert.Equal(192, outcomes.Count);
        Assert.All(outcomes, o => Assert.True(o.Stored, $"{o.Path}: {o.Status} {o.Error}"));
        foreach (var f in files)
        {
            using var sent = DicomFile.Open(f.Path);
            using var received = DicomFile.Open(Path.Combine(dir.File("out"), FolderStoreHandler.FileNameFor(f.SopInstanceUid)));
            DatasetAssert.Equal(sent.Dataset, received.Dataset);
        }
    }

    [Fact]
    public async Task Asynchronous_operations_keep_several_stores_outstanding_on_one_association()
    {
        using var dir = new TempDir();
        var files = Instances.WriteStudy(dir.File("src"), 32, 16 * 1024).Select(StoreFile.Read).ToList();
        var handler = new SlowCompletion(new FolderStoreHandler(dir.File("out")), TimeSpan.FromMilliseconds(100));
        await using var server = Start(handler);
        var outcomes = await StoreScu.SendAsync("127.0.0.1", server.LocalEndPoint.Port, files, new StoreScuOptions { CalledAE = "AKKAVNA", AsyncWindow = 8 });

        Assert.All(outcomes, o => Assert.True(o.Stored, $"{o.Path}: {o.Status} {o.Error}"));
        Assert.Equal(32, Directory.GetFiles(dir.File("out"), "*.dcm").Length);
        // With a window of 8 negotiated, the SCP had several instances in hand at once (it performs them in parallel).
        Assert.InRange(handler.MaxConcurrent, 2, 8);
    }

    [Fact]
    public async Task A_window_is_only_used_when_negotiated()
    {
        using var dir = new TempDir();
        var files = Instances.WriteStudy(dir.File("src"), 8, 4096).Select(StoreFile.Read).ToList();
        var handler = new SlowCompletion(new FolderStoreHandler(dir.File("out")), TimeSpan.FromMilliseconds(30));
        await using var server = Start(handler);
        var outcomes = await StoreScu.SendAsync("127.0.0.1", server.LocalEndPoint.Port, files, new StoreScuOptions { CalledAE = "AKKAVNA", AsyncWindow = 1 });
        Assert.All(outcomes, o => Assert.True(o.Stored));
        Assert.Equal(1, handler.MaxConcurrent);
    }

    [Fact]
    public async Task A_sink_that_does_not_take_data_stops_the_reading_and_the_sender()
    {
        using var dir = new TempDir();
        var blocking = new BlockingHandler();
        await using var server = Start(blocking, new DicomAssociationOptions { DimseTimeout = TimeSpan.FromMinutes(2) });
        var rq = new AssociateRequest
        {
            CalledAE = "AKKAVNA", CallingAE = "TEST",
            PresentationContexts = [new PresentationContextProposal(1, DicomUids.CTImageStorage, [DicomUids.ExplicitVRLittleEndian])],
            UserInformation = new UserInformation { MaximumLength = 256 * 1024 },
        };
        await using var association = await DicomAssociation.ConnectAsync("127.0.0.1", server.LocalEndPoint.Port, rq,
            new DicomAssociationOptions { DimseTimeout = TimeSpan.FromMinutes(2) });
        const long size = 256L * 1024 * 1024;
        var source = new CountingStream(size);
        var store = association.SendRequestAsync(1, DimseCommand.StoreRequest(association.NextMessageId(), DicomUids.CTImageStorage, Instances.NewUid()), source, size);

        await blocking.FirstWrite.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(TimeSpan.FromSeconds(2));
        long sentWhileBlocked = source.Position;
        // What the sender got out is what the socket buffers and one PDU hold — not the 256 MB data set.
        Assert.True(sentWhileBlocked < 48L * 1024 * 1024, $"{sentWhileBlocked} bytes left the sender while the sink was blocked");

        blocking.Release.SetResult();
        var rsp = await store.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.True(rsp.Status.IsSuccess);
        Assert.Equal(size, blocking.Received);
        await association.ReleaseAsync();
    }

    /// <summary>A data set source of a given length that counts how much was read.</summary>
    private sealed class CountingStream(long length) : Stream
    {
        private long _position;
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            int n = (int)Math.Min(buffer.Length, length - _position);
            buffer[..n].Fill(0x5A);
            Interlocked.Add(ref _position, n);
            return n;
        }
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => Interlocked.Read(ref _position); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class BlockingHandler : ICStoreHandler, IStoreSink
    {
        public TaskCompletionSource FirstWrite { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public long Received;

        public ValueTask<IStoreSink> BeginAsync(StoreRequest request, CancellationToken cancellationToken) => ValueTask.FromResult<IStoreSink>(this);

        public async ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken)
        {
            FirstWrite.TrySetResult();
            await Release.Task;
            Received += data.Length;
        }

        public ValueTask<DimseResult> CompleteAsync(CancellationToken cancellationToken) => ValueTask.FromResult(DimseResult.Success);
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>Delays each completion (a commit that takes time) and records how many were in progress at once.</summary>
    private sealed class SlowCompletion(ICStoreHandler inner, TimeSpan delay) : ICStoreHandler
    {
        private int _current;
        private int _max;
        private readonly TimeSpan _delay = delay;
        public int MaxConcurrent => Volatile.Read(ref _max);

        public async ValueTask<IStoreSink> BeginAsync(StoreRequest request, CancellationToken cancellationToken) =>
            new Sink(await inner.BeginAsync(request, cancellationToken), this);

        private sealed class Sink(IStoreSink sink, SlowCompletion owner) : IStoreSink
        {
            public ValueTask WriteAsync(ReadOnlySequence<byte> data, CancellationToken cancellationToken) => sink.WriteAsync(data, cancellationToken);

            public async ValueTask<DimseResult> CompleteAsync(CancellationToken cancellationToken)
            {
                int now = Interlocked.Increment(ref owner._current);
                int seen;
                while (now > (seen = Volatile.Read(ref owner._max)) && Interlocked.CompareExchange(ref owner._max, now, seen) != seen) { }
                try
                {
                    await Task.Delay(owner._delay, cancellationToken);
                    return await sink.CompleteAsync(cancellationToken);
                }
                finally
                {
                    Interlocked.Decrement(ref owner._current);
                }
            }

            public ValueTask DisposeAsync() => sink.DisposeAsync();
        }
    }
}
