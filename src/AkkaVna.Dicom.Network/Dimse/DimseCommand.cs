using System.Buffers;
using System.Buffers.Binary;
using AkkaVna.Dicom.IO;

namespace AkkaVna.Dicom.Network.Dimse;

/// <summary>Command Field (0000,0100) values (PS3.7 E.1).</summary>
public enum DimseCommandField : ushort
{
    CStoreRequest = 0x0001, CStoreResponse = 0x8001,
    CGetRequest = 0x0010, CGetResponse = 0x8010,
    CFindRequest = 0x0020, CFindResponse = 0x8020,
    CMoveRequest = 0x0021, CMoveResponse = 0x8021,
    CEchoRequest = 0x0030, CEchoResponse = 0x8030,
    NEventReportRequest = 0x0100, NEventReportResponse = 0x8100,
    NGetRequest = 0x0110, NGetResponse = 0x8110,
    NSetRequest = 0x0120, NSetResponse = 0x8120,
    NActionRequest = 0x0130, NActionResponse = 0x8130,
    NCreateRequest = 0x0140, NCreateResponse = 0x8140,
    NDeleteRequest = 0x0150, NDeleteResponse = 0x8150,
    CCancelRequest = 0x0FFF,
}

public enum DimsePriority : ushort { Medium = 0, High = 1, Low = 2 }

/// <summary>Sub-operation counts of a C-MOVE or C-GET (a count above 65535 is reported as 65535, the field's limit).</summary>
public readonly record struct SubOperationCounts(int Remaining, int Completed, int Failed, int Warning);

/// <summary>
/// A DIMSE command set (group 0000, always implicit VR little endian, PS3.7 6.3 and E.1): a dataset with typed
/// accessors for the command elements. Built with the factory methods for each message, read with <see cref="Decode"/>.
/// </summary>
public sealed class DimseCommand
{
    /// <summary>(0000,0800) value meaning "no data set" (PS3.7 E.1: any other value means a data set follows).</summary>
    public const ushort NoDataSet = 0x0101;

    /// <summary>Commands are small; a larger one is hostile (the limit bounds the buffer).</summary>
    public const int MaxEncodedLength = 64 * 1024;

    public DimseCommand(DicomDataset dataset) => Dataset = dataset;

    public DicomDataset Dataset { get; }

    public DimseCommandField Field => (DimseCommandField)(Dataset.GetUInt16(DicomTags.CommandField) ?? 0);
    public bool IsResponse => ((ushort)Field & 0x8000) != 0;
    public ushort MessageId => Dataset.GetUInt16(DicomTags.MessageID) ?? 0;
    public ushort MessageIdBeingRespondedTo => Dataset.GetUInt16(DicomTags.MessageIDBeingRespondedTo) ?? 0;
    public bool HasDataSet => (Dataset.GetUInt16(DicomTags.CommandDataSetType) ?? NoDataSet) != NoDataSet;
    public DimseStatus Status => new(Dataset.GetUInt16(DicomTags.Status) ?? 0xFFFF);
    public string? AffectedSopClassUid => Dataset.GetString(DicomTags.AffectedSOPClassUID);
    public string? AffectedSopInstanceUid => Dataset.GetString(DicomTags.AffectedSOPInstanceUID);
    public string? RequestedSopClassUid => Dataset.GetString(DicomTags.RequestedSOPClassUID);
    public string? ErrorComment => Dataset.GetString(DicomTags.ErrorComment);
    public DimsePriority Priority => (DimsePriority)(Dataset.GetUInt16(DicomTags.Priority) ?? 0);
    public string? MoveDestination => Dataset.GetString(DicomTags.MoveDestination);
    public string? MoveOriginatorAETitle => Dataset.GetString(DicomTags.MoveOriginatorApplicationEntityTitle);
    public ushort? MoveOriginatorMessageId => Dataset.GetUInt16(DicomTags.MoveOriginatorMessageID);

    public override string ToString() => $"{Field} id={(IsResponse ? MessageIdBeingRespondedTo : MessageId)}" + (IsResponse ? $" status={Status}" : "");

    // ------------------------------------------------------------ factories

    public static DimseCommand EchoRequest(ushort messageId) =>
        Build(DimseCommandField.CEchoRequest, DicomUids.Verification, messageId, null, hasDataSet: false);

    public static DimseCommand EchoResponse(DimseCommand request, DimseStatus status) =>
        Response(DimseCommandField.CEchoResponse, request, status, hasDataSet: false);

    public static DimseCommand StoreRequest(ushort messageId, string sopClassUid, string sopInstanceUid, DimsePriority priority = DimsePriority.Medium,
        string? moveOriginatorAE = null, ushort? moveOriginatorMessageId = null)
    {
        var cmd = Build(DimseCommandField.CStoreRequest, sopClassUid, messageId, null, hasDataSet: true);
        cmd.Dataset.AddUInt16(DicomTags.Priority, (ushort)priority);
        cmd.Dataset.AddString(DicomTags.AffectedSOPInstanceUID, DicomVR.UI, sopInstanceUid);
        if (moveOriginatorAE is not null) cmd.Dataset.AddString(DicomTags.MoveOriginatorApplicationEntityTitle, DicomVR.AE, moveOriginatorAE);
        if (moveOriginatorMessageId is { } mid) cmd.Dataset.AddUInt16(DicomTags.MoveOriginatorMessageID, mid);
        return cmd;
    }

    public static DimseCommand StoreResponse(DimseCommand request, DimseStatus status, string? errorComment = null)
    {
        var rsp = Response(DimseCommandField.CStoreResponse, request, status, hasDataSet: false);
        if (request.AffectedSopInstanceUid is { } uid) rsp.Dataset.AddString(DicomTags.AffectedSOPInstanceUID, DicomVR.UI, uid);
        if (errorComment is not null) rsp.Dataset.AddString(DicomTags.ErrorComment, DicomVR.LO, Truncate(errorComment, 64));
        return rsp;
    }

    /// <summary>C-FIND-RQ (PS3.7 9.3.2.1): the identifier follows as the data set.</summary>
    public static DimseCommand FindRequest(ushort messageId, string sopClassUid, DimsePriority priority = DimsePriority.Medium)
    {
        var cmd = Build(DimseCommandField.CFindRequest, sopClassUid, messageId, null, hasDataSet: true);
        cmd.Dataset.AddUInt16(DicomTags.Priority, (ushort)priority);
        return cmd;
    }

    /// <summary>C-MOVE-RQ (PS3.7 9.3.4.1) to <paramref name="destination"/>; the identifier follows.</summary>
    public static DimseCommand MoveRequest(ushort messageId, string sopClassUid, string destination, DimsePriority priority = DimsePriority.Medium)
    {
        var cmd = Build(DimseCommandField.CMoveRequest, sopClassUid, messageId, null, hasDataSet: true);
        cmd.Dataset.AddUInt16(DicomTags.Priority, (ushort)priority);
        cmd.Dataset.AddString(DicomTags.MoveDestination, DicomVR.AE, destination);
        return cmd;
    }

    /// <summary>C-GET-RQ (PS3.7 9.3.3.1); the identifier follows.</summary>
    public static DimseCommand GetRequest(ushort messageId, string sopClassUid, DimsePriority priority = DimsePriority.Medium)
    {
        var cmd = Build(DimseCommandField.CGetRequest, sopClassUid, messageId, null, hasDataSet: true);
        cmd.Dataset.AddUInt16(DicomTags.Priority, (ushort)priority);
        return cmd;
    }

    /// <summary>C-CANCEL-RQ (PS3.7 9.3.2.3) for the operation with <paramref name="messageIdBeingRespondedTo"/>.</summary>
    public static DimseCommand CancelRequest(ushort messageIdBeingRespondedTo)
    {
        var cmd = new DimseCommand(new DicomDataset());
        cmd.Dataset.AddUInt16(DicomTags.CommandField, (ushort)DimseCommandField.CCancelRequest);
        cmd.Dataset.AddUInt16(DicomTags.MessageIDBeingRespondedTo, messageIdBeingRespondedTo);
        cmd.Dataset.AddUInt16(DicomTags.CommandDataSetType, NoDataSet);
        return cmd;
    }

    /// <summary>C-FIND-RSP: pending with a match (<paramref name="hasIdentifier"/>), or final.</summary>
    public static DimseCommand FindResponse(DimseCommand request, DimseStatus status, bool hasIdentifier, string? errorComment = null)
    {
        var rsp = Response(DimseCommandField.CFindResponse, request, status, hasIdentifier);
        if (errorComment is not null) rsp.Dataset.AddString(DicomTags.ErrorComment, DicomVR.LO, Truncate(errorComment, 64));
        return rsp;
    }

    /// <summary>
    /// C-MOVE-RSP or C-GET-RSP with the sub-operation counts (PS3.7 9.3.3.2, 9.3.4.2): remaining only while pending;
    /// <paramref name="hasIdentifier"/> when a Failed SOP Instance UID List follows.
    /// </summary>
    public static DimseCommand RetrieveResponse(DimseCommand request, DimseStatus status, SubOperationCounts counts, bool hasIdentifier, string? errorComment = null)
    {
        var field = request.Field == DimseCommandField.CGetRequest ? DimseCommandField.CGetResponse : DimseCommandField.CMoveResponse;
        var rsp = Response(field, request, status, hasIdentifier);
        if (status.IsPending) rsp.Dataset.AddUInt16(DicomTags.NumberOfRemainingSuboperations, (ushort)Math.Min(counts.Remaining, ushort.MaxValue));
        rsp.Dataset.AddUInt16(DicomTags.NumberOfCompletedSuboperations, (ushort)Math.Min(counts.Completed, ushort.MaxValue));
        rsp.Dataset.AddUInt16(DicomTags.NumberOfFailedSuboperations, (ushort)Math.Min(counts.Failed, ushort.MaxValue));
        rsp.Dataset.AddUInt16(DicomTags.NumberOfWarningSuboperations, (ushort)Math.Min(counts.Warning, ushort.MaxValue));
        if (errorComment is not null) rsp.Dataset.AddString(DicomTags.ErrorComment, DicomVR.LO, Truncate(errorComment, 64));
        return rsp;
    }

    public ushort? Remaining => Dataset.GetUInt16(DicomTags.NumberOfRemainingSuboperations);
    public ushort? Completed => Dataset.GetUInt16(DicomTags.NumberOfCompletedSuboperations);
    public ushort? Failed => Dataset.GetUInt16(DicomTags.NumberOfFailedSuboperations);
    public ushort? Warning => Dataset.GetUInt16(DicomTags.NumberOfWarningSuboperations);

    /// <summary>A request of any service (what a new service's SCU sends; N-ACTION, N-EVENT-REPORT...).</summary>
    public static DimseCommand Request(DimseCommandField field, string sopClassUid, ushort messageId, bool hasDataSet) =>
        Build(field, sopClassUid, messageId, null, hasDataSet);

    /// <summary>The response to <paramref name="request"/> of any service (its command field with the response bit).</summary>
    public static DimseCommand ResponseTo(DimseCommand request, DimseStatus status, bool hasDataSet = false) =>
        Response((DimseCommandField)((ushort)request.Field | 0x8000), request, status, hasDataSet);

    /// <summary>A response to a request this stack does not perform (PS3.7 C.5.10: unrecognized operation).</summary>
    public static DimseCommand UnrecognizedResponse(DimseCommand request, string comment)
    {
        var field = (DimseCommandField)((ushort)request.Field | 0x8000);
        var rsp = Response(field, request, DimseStatus.UnrecognizedOperation, hasDataSet: false);
        rsp.Dataset.AddString(DicomTags.ErrorComment, DicomVR.LO, Truncate(comment, 64));
        return rsp;
    }

    private static DimseCommand Response(DimseCommandField field, DimseCommand request, DimseStatus status, bool hasDataSet)
    {
        var cmd = new DimseCommand(new DicomDataset());
        if ((request.AffectedSopClassUid ?? request.RequestedSopClassUid) is { } cls) cmd.Dataset.AddString(DicomTags.AffectedSOPClassUID, DicomVR.UI, cls);
        cmd.Dataset.AddUInt16(DicomTags.CommandField, (ushort)field);
        cmd.Dataset.AddUInt16(DicomTags.MessageIDBeingRespondedTo, request.MessageId);
        cmd.Dataset.AddUInt16(DicomTags.CommandDataSetType, hasDataSet ? (ushort)0x0000 : NoDataSet);
        cmd.Dataset.AddUInt16(DicomTags.Status, status.Code);
        return cmd;
    }

    private static DimseCommand Build(DimseCommandField field, string sopClassUid, ushort messageId, DimseStatus? status, bool hasDataSet)
    {
        var cmd = new DimseCommand(new DicomDataset());
        cmd.Dataset.AddString(DicomTags.AffectedSOPClassUID, DicomVR.UI, sopClassUid);
        cmd.Dataset.AddUInt16(DicomTags.CommandField, (ushort)field);
        cmd.Dataset.AddUInt16(DicomTags.MessageID, messageId);
        cmd.Dataset.AddUInt16(DicomTags.CommandDataSetType, hasDataSet ? (ushort)0x0000 : NoDataSet);
        if (status is { } s) cmd.Dataset.AddUInt16(DicomTags.Status, s.Code);
        return cmd;
    }

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max];

    // ------------------------------------------------------------ encoding

    /// <summary>Encodes the command set in implicit VR little endian, led by its Command Group Length (0000,0000).</summary>
    public byte[] Encode()
    {
        using var body = new MemoryStream(256);
        DicomWriter.WriteDataset(body, Dataset, DicomTransferSyntax.ImplicitVRLittleEndian);
        var bytes = new byte[12 + body.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, 0x0000);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2), 0x0000);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), 4);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)body.Length);
        body.Position = 0;
        body.ReadExactly(bytes, 12, (int)body.Length);
        return bytes;
    }

    /// <summary>Decodes a command set. Throws <see cref="DimseFormatException"/> when it is malformed or lacks a Command Field.</summary>
    public static DimseCommand Decode(ReadOnlySequence<byte> bytes)
    {
        var ds = new DicomDataset();
        var parser = new DicomParser(new DicomDatasetBuilder(ds, InMemoryLargeValues.Instance), DicomTransferSyntax.ImplicitVRLittleEndian,
            new DicomParserOptions { LargeValueThreshold = MaxEncodedLength, MaxDepth = 4 }, sniffEncoding: false);
        try
        {
            var status = parser.Parse(bytes, isFinal: true, out _);
            if (status != DicomParseStatus.Completed) throw new DimseFormatException("the command set is incomplete");
        }
        catch (DicomParseException e)
        {
            throw new DimseFormatException("malformed command set " + e.Message);
        }
        foreach (var item in ds)
            if (item.Tag.Group != 0x0000) throw new DimseFormatException($"command set holds {item.Tag} outside group 0000");
        var cmd = new DimseCommand(ds);
        if (ds.GetUInt16(DicomTags.CommandField) is null) throw new DimseFormatException("command set has no Command Field (0000,0100)");
        return cmd;
    }
}

/// <summary>A DIMSE message that breaks PS3.7 (answered with A-ABORT: the association's framing cannot be trusted).</summary>
public sealed class DimseFormatException(string message) : Exception(message);
