namespace AkkaVna.Dicom.Network.Scp;

/// <summary>The start of a Part 10 file for a received instance, from the command and the presentation context.</summary>
public static class Part10Header
{
    public static byte[] For(StoreRequest request) =>
        IO.Part10Header.For(request.SopClassUid, request.SopInstanceUid, request.TransferSyntax, request.Association.CallingAE);
}
