using System.Buffers;
using Microsoft.Extensions.Logging;

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
    private DimseResult? _refusal;

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
        if (Command!.Field == DimseCommandField.CStoreRequest) return; // refused before the sink opened
        MemoryData ??= new ArrayBufferWriter<byte>(1024);
        if (MemoryData.WrittenCount + data.Length > memoryLimit)
            throw new DimseFormatException($"the data set of {Command} is longer than {memoryLimit} bytes");
        foreach (var segment in data) MemoryData.Write(segment.Span);
    }

    /// <summary>The C-STORE outcome: the refusal, or what the sink says once it made the instance durable.</summary>
    public async Task<DimseResult> CompleteStoreAsync(ILogger log, AssociationInfo association)
    {
        if (_refusal is { } r) return r;
        if (Sink is not { } sink) return new DimseResult(DimseStatus.ProcessingFailure, "no sink");
        try
        {
            return await sink.CompleteAsync(CancellationToken.None);
        }
        catch (DimseException e)
        {
            return new DimseResult(e.Status, e.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.LogError(e, "{Association}: storing {SopInstance} failed", association, Command?.AffectedSopInstanceUid);
            return new DimseResult(DimseStatus.StoreOutOfResources, "storage failed: " + e.Message);
        }
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
