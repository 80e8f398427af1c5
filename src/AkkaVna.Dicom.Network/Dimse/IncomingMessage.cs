using System.Buffers;

namespace AkkaVna.Dicom.Network.Dimse;

/// <summary>
/// A DIMSE message being received: its command bytes, then its data set, which goes to a store sink (C-STORE), is
/// discarded (a refused C-STORE), or is kept in memory up to a limit (identifiers and other small data sets).
/// </summary>
internal sealed class IncomingMessage(byte presentationContextId) : IAsyncDisposable
{
    public byte PresentationContextId { get; } = presentationContextId;
    public ArrayBufferWriter<byte> CommandBytes { get; } = new(256);
    public DimseCommand? Command { get; set; }
    public IStoreSink? Sink { get; set; }
    public ArrayBufferWriter<byte>? MemoryData { get; private set; }
    public bool HoldsPerformSlot { get; set; }

    /// <summary>The operation a streaming service opened its sink for (null for other requests until they are performed).</summary>
    public Services.DimseOperation? Operation { get; set; }

    private DimseResult? _refusal;

    /// <summary>Why the request was refused while its data set arrived (a service's refusal, or its sink failing).</summary>
    public DimseResult? Refusal => _refusal;

    /// <summary>Refuses the operation: the rest of the data set is read and dropped.</summary>
    public void Refuse(DimseResult result) => _refusal ??= result;

    public async ValueTask WriteAsync(ReadOnlySequence<byte> data, int memoryLimit)
    {
        if (_refusal is not null) return;
        if (Sink is { } sink)
        {
            try
            {
                await sink.WriteAsync(data, CancellationToken.None);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The sink failed (disk full, storage down): refuse the instance, keep the association.
                _refusal = new DimseResult(DimseStatus.StoreOutOfResources, "storage failed: " + e.Message);
                Sink = null;
                await sink.DisposeAsync();
            }
            return;
        }
        if (Operation is not null) return; // a streaming request refused before its sink opened
        MemoryData ??= new ArrayBufferWriter<byte>(1024);
        if (MemoryData.WrittenCount + data.Length > memoryLimit)
            throw new DimseFormatException($"the data set of {Command} is longer than {memoryLimit} bytes");
        foreach (var segment in data) MemoryData.Write(segment.Span);
    }

    public async ValueTask DisposeAsync()
    {
        if (Sink is { } sink)
        {
            Sink = null;
            await sink.DisposeAsync();
        }
    }
}
