using AkkaVna.Dicom.Network.Dimse;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Dicom.Network.Services;

/// <summary>A final or pending response: the command and, when it has one, its data set.</summary>
public readonly record struct DimseReply(DimseCommand Command, DicomDataset? DataSet = null);

/// <summary>
/// One request as a service performs it: who asked and on which presentation context, the command, the data set (kept
/// in memory when small, or the sink it streamed into), how to send pending responses, and the cancellation a C-CANCEL
/// raises. The association builds it; the service only performs.
/// </summary>
public sealed class DimseOperation
{
    internal DimseOperation(DicomAssociation association, DimseCommand command, PresentationContext context, ILogger log)
    {
        Association = association;
        Command = command;
        Context = context;
        Log = log;
    }

    public DicomAssociation Association { get; }
    public AssociationInfo Info => Association.Info;
    public DimseCommand Command { get; }
    public PresentationContext Context { get; }
    public ILogger Log { get; }

    /// <summary>The data set's bytes when it was small and kept in memory (identifiers); null when there is none or it streamed.</summary>
    public ReadOnlyMemory<byte>? DataSetBytes { get; internal set; }

    /// <summary>For a service whose data set streams: the sink it opened (null when it refused the request).</summary>
    public IStoreSink? Sink { get; internal set; }

    /// <summary>For a service whose data set streams: why the request was refused while its data set arrived.</summary>
    public DimseResult? Refusal { get; internal set; }

    /// <summary>Sends a pending response (with its data set, encoded in the context's syntax).</summary>
    public Func<DimseReply, Task> SendPending { get; internal set; } = _ => Task.CompletedTask;

    /// <summary>Raised by the requestor's C-CANCEL (for services performed in the window).</summary>
    public CancellationToken Cancellation { get; internal set; }

    /// <summary>The data set kept in memory, parsed; throws <see cref="DimseFormatException"/> when there is none or it is malformed.</summary>
    public DicomDataset ParseDataSet() => DataSetBytes is { } bytes
        ? DimseDataSets.Parse(bytes, Context.TransferSyntax)
        : throw new DimseFormatException("the request has no data set");
}

/// <summary>
/// A DIMSE service of the SCP side: which requests it performs and how. Services are dispatched through a
/// <see cref="DimseServiceRegistry"/>, so a new one (Storage Commitment's N-ACTION, N-EVENT-REPORT) joins without
/// editing the association, which keeps the plumbing: message reassembly, the asynchronous operations window,
/// C-CANCEL, and sending the responses.
/// </summary>
public abstract class DimseService
{
    /// <summary>The command fields of the requests this service performs.</summary>
    public abstract IReadOnlyCollection<DimseCommandField> Requests { get; }

    /// <summary>
    /// Performed within the negotiated asynchronous operations window, refused at once when it is full, and cancellable
    /// by C-CANCEL (query and retrieve).
    /// </summary>
    public virtual bool Windowed => false;

    /// <summary>
    /// The request's data set streams into a sink opened when its command arrives (C-STORE): the association waits for a
    /// slot of the window first, so reading stops while the window is full (back-pressure).
    /// </summary>
    public virtual bool StreamsDataSet => false;

    /// <summary>Opens the sink a streaming data set goes into; throwing <see cref="DimseException"/> refuses the request (its data set is read and dropped).</summary>
    public virtual ValueTask<IStoreSink> OpenDataSetAsync(DimseOperation operation) =>
        throw new NotSupportedException($"{GetType().Name} does not stream data sets");

    /// <summary>Performs the request once it is whole and returns the final response (pending ones go through <see cref="DimseOperation.SendPending"/>).</summary>
    public abstract Task<DimseReply> PerformAsync(DimseOperation operation);

    /// <summary>The final response that refuses <paramref name="request"/> with a status and a reason (window full, duplicate message ID, a failure).</summary>
    public abstract DimseReply Refuse(DimseCommand request, DimseStatus status, string reason);
}

/// <summary>The services an association dispatches to, by request command field.</summary>
public sealed class DimseServiceRegistry
{
    private readonly Dictionary<DimseCommandField, DimseService> _services = [];

    public DimseServiceRegistry(IEnumerable<DimseService> services)
    {
        foreach (var service in services)
            foreach (var field in service.Requests)
                if (!_services.TryAdd(field, service))
                    throw new ArgumentException($"two services perform {field}: {_services[field].GetType().Name} and {service.GetType().Name}", nameof(services));
    }

    /// <summary>The built-in services for the handlers given (C-ECHO always, C-STORE always — refusing when there is no store handler — and C-FIND, C-MOVE, C-GET when handled), then the extra ones.</summary>
    public static DimseServiceRegistry For(DicomServices? services)
    {
        var list = new List<DimseService> { new EchoService(services?.Echo), new StoreService(services?.Store) };
        if (services?.Find is { } find) list.Add(new FindService(find));
        if (services?.Retrieve is { } retrieve) list.Add(new RetrieveService(retrieve, services.Retrieval));
        if (services is not null) list.AddRange(services.Extra);
        return new DimseServiceRegistry(list);
    }

    public DimseService? Find(DimseCommandField field) => _services.GetValueOrDefault(field);
}
