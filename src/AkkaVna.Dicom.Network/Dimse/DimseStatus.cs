namespace AkkaVna.Dicom.Network.Dimse;

public enum DimseStatusCategory { Success, Warning, Failure, Cancel, Pending }

/// <summary>
/// A DIMSE status (0000,0900) with its meaning. The general statuses are those of PS3.7 Annex C; the service-specific
/// ones come from the service's table in PS3.4 (C-STORE B.2.3, C-FIND C.4.1.1.4, C-MOVE C.4.2.1.5, C-GET C.4.3.1.4).
/// </summary>
public readonly record struct DimseStatus(ushort Code)
{
    public DimseStatusCategory Category => Code switch
    {
        0x0000 => DimseStatusCategory.Success,
        0xFE00 => DimseStatusCategory.Cancel,
        0xFF00 or 0xFF01 => DimseStatusCategory.Pending,
        0x0001 or 0x0107 or 0x0116 => DimseStatusCategory.Warning,
        >= 0xB000 and <= 0xBFFF => DimseStatusCategory.Warning,
        _ => DimseStatusCategory.Failure,
    };

    public bool IsSuccess => Category == DimseStatusCategory.Success;
    public bool IsPending => Category == DimseStatusCategory.Pending;
    /// <summary>Final and not a failure: success or warning (a stored instance with a warning is stored).</summary>
    public bool IsStored => Category is DimseStatusCategory.Success or DimseStatusCategory.Warning;

    // General (PS3.7 C)
    public static readonly DimseStatus Success = new(0x0000);
    public static readonly DimseStatus Cancel = new(0xFE00);
    public static readonly DimseStatus Pending = new(0xFF00);
    public static readonly DimseStatus PendingOptionalKeysNotSupported = new(0xFF01);
    public static readonly DimseStatus AttributeListError = new(0x0107);
    public static readonly DimseStatus NoSuchAttribute = new(0x0105);
    public static readonly DimseStatus InvalidAttributeValue = new(0x0106);
    public static readonly DimseStatus ProcessingFailure = new(0x0110);
    public static readonly DimseStatus DuplicateSopInstance = new(0x0111);
    public static readonly DimseStatus NoSuchSopInstance = new(0x0112);
    public static readonly DimseStatus NoSuchSopClass = new(0x0118);
    public static readonly DimseStatus ClassInstanceConflict = new(0x0119);
    public static readonly DimseStatus MissingAttribute = new(0x0120);
    public static readonly DimseStatus SopClassNotSupported = new(0x0122);
    public static readonly DimseStatus NotAuthorized = new(0x0124);
    public static readonly DimseStatus DuplicateInvocation = new(0x0210);
    public static readonly DimseStatus UnrecognizedOperation = new(0x0211);
    public static readonly DimseStatus MistypedArgument = new(0x0212);
    public static readonly DimseStatus ResourceLimitation = new(0x0213);

    // C-STORE (PS3.4 B.2.3)
    public static readonly DimseStatus StoreOutOfResources = new(0xA700);
    public static readonly DimseStatus StoreDataSetDoesNotMatchSopClass = new(0xA900);
    public static readonly DimseStatus StoreCannotUnderstand = new(0xC000);
    public static readonly DimseStatus StoreCoercionOfDataElements = new(0xB000);
    public static readonly DimseStatus StoreElementsDiscarded = new(0xB006);
    public static readonly DimseStatus StoreDataSetDoesNotMatchSopClassWarning = new(0xB007);

    // Query/Retrieve (PS3.4 C.4)
    public static readonly DimseStatus QueryOutOfResources = new(0xA700);
    public static readonly DimseStatus RetrieveOutOfResourcesNumberOfMatches = new(0xA701);
    public static readonly DimseStatus RetrieveOutOfResourcesSubOperations = new(0xA702);
    public static readonly DimseStatus MoveDestinationUnknown = new(0xA801);
    public static readonly DimseStatus IdentifierDoesNotMatchSopClass = new(0xA900);
    public static readonly DimseStatus UnableToProcess = new(0xC000);
    public static readonly DimseStatus SubOperationsCompleteWithFailures = new(0xB000);

    public string Describe(DimseCommandField? service = null)
    {
        string? specific = (service, Code) switch
        {
            (DimseCommandField.CStoreResponse or DimseCommandField.CStoreRequest, >= 0xA700 and <= 0xA7FF) => "Refused: out of resources",
            (DimseCommandField.CStoreResponse or DimseCommandField.CStoreRequest, >= 0xA900 and <= 0xA9FF) => "Error: data set does not match SOP class",
            (DimseCommandField.CStoreResponse or DimseCommandField.CStoreRequest, >= 0xC000 and <= 0xCFFF) => "Error: cannot understand",
            (DimseCommandField.CStoreResponse or DimseCommandField.CStoreRequest, 0xB000) => "Warning: coercion of data elements",
            (DimseCommandField.CStoreResponse or DimseCommandField.CStoreRequest, 0xB006) => "Warning: elements discarded",
            (DimseCommandField.CStoreResponse or DimseCommandField.CStoreRequest, 0xB007) => "Warning: data set does not match SOP class",
            (DimseCommandField.CFindResponse or DimseCommandField.CFindRequest, 0xA700) => "Refused: out of resources",
            (DimseCommandField.CFindResponse or DimseCommandField.CFindRequest, 0xA900) => "Failed: identifier does not match SOP class",
            (DimseCommandField.CFindResponse or DimseCommandField.CFindRequest, >= 0xC000 and <= 0xCFFF) => "Failed: unable to process",
            (DimseCommandField.CMoveResponse or DimseCommandField.CGetResponse or DimseCommandField.CMoveRequest or DimseCommandField.CGetRequest, 0xA701) => "Refused: out of resources, unable to calculate number of matches",
            (DimseCommandField.CMoveResponse or DimseCommandField.CGetResponse or DimseCommandField.CMoveRequest or DimseCommandField.CGetRequest, 0xA702) => "Refused: out of resources, unable to perform sub-operations",
            (DimseCommandField.CMoveResponse or DimseCommandField.CMoveRequest, 0xA801) => "Refused: move destination unknown",
            (DimseCommandField.CMoveResponse or DimseCommandField.CGetResponse or DimseCommandField.CMoveRequest or DimseCommandField.CGetRequest, 0xA900) => "Failed: identifier does not match SOP class",
            (DimseCommandField.CMoveResponse or DimseCommandField.CGetResponse or DimseCommandField.CMoveRequest or DimseCommandField.CGetRequest, >= 0xC000 and <= 0xCFFF) => "Failed: unable to process",
            (DimseCommandField.CMoveResponse or DimseCommandField.CGetResponse or DimseCommandField.CMoveRequest or DimseCommandField.CGetRequest, 0xB000) => "Warning: sub-operations complete, one or more failures",
            _ => null,
        };
        return specific ?? Code switch
        {
            0x0000 => "Success",
            0xFE00 => "Cancel",
            0xFF00 => "Pending",
            0xFF01 => "Pending: optional keys not supported",
            0x0001 => "Warning: requested optional attributes are not supported",
            0x0107 => "Warning: attribute list error",
            0x0116 => "Warning: attribute value out of range",
            0x0105 => "Failure: no such attribute",
            0x0106 => "Failure: invalid attribute value",
            0x0110 => "Failure: processing failure",
            0x0111 => "Failure: duplicate SOP instance",
            0x0112 => "Failure: no such SOP instance",
            0x0117 => "Failure: invalid object instance",
            0x0118 => "Failure: no such SOP class",
            0x0119 => "Failure: class-instance conflict",
            0x0120 => "Failure: missing attribute",
            0x0121 => "Failure: missing attribute value",
            0x0122 => "Failure: SOP class not supported",
            0x0124 => "Failure: not authorized",
            0x0210 => "Failure: duplicate invocation",
            0x0211 => "Failure: unrecognized operation",
            0x0212 => "Failure: mistyped argument",
            0x0213 => "Failure: resources limitation",
            _ => Category.ToString(),
        };
    }

    public override string ToString() => $"{Code:X4}H";
}
