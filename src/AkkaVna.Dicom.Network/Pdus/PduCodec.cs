using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace AkkaVna.Dicom.Network.Pdus;

/// <summary>A PDU that cannot be decoded: the A-ABORT reason (PS3.8 Table 9-26) to answer it with, and why.</summary>
public sealed class PduFormatException(byte abortReason, string message) : Exception(message)
{
    public byte AbortReason { get; } = abortReason;
}

/// <summary>
/// Encodes and decodes PDUs (PS3.8 9.3). Every PDU starts with the same header:
/// <code>
///  byte 1      2         3-6
///  +--------+--------+-----------------------------+----------------------
///  |  type  |reserved|  PDU length (uint32, BE)    |  variable part (length bytes)
///  +--------+--------+-----------------------------+----------------------
/// </code>
/// The association PDUs (RQ/AC) continue with a fixed part and items:
/// <code>
///  7-8 protocol version | 9-10 reserved | 11-26 called AE | 27-42 calling AE | 43-74 reserved | 75- items
///  item: type (1) | reserved (1) | item length (uint16, BE) | value
/// </code>
/// Integers are big endian on the wire, unlike DICOM datasets.
/// </summary>
public static class PduCodec
{
    public const int HeaderLength = 6;
    private const int AssociateFixedLength = 68;

    // ---------------------------------------------------------------- decode

    /// <summary>Decodes the variable part of a non-P-DATA PDU. Throws <see cref="PduFormatException"/> when it is malformed.</summary>
    public static Pdu Decode(PduType type, ReadOnlySequence<byte> body)
    {
        switch (type)
        {
            case PduType.AssociateRequest:
            case PduType.AssociateAccept:
                return DecodeAssociate(type, body.IsSingleSegment ? body.FirstSpan : body.ToArray());
            case PduType.AssociateReject:
            {
                var b = Fixed4(body, "A-ASSOCIATE-RJ");
                if (b[1] is not (1 or 2)) throw new PduFormatException(Abort.InvalidPduParameterValue, $"A-ASSOCIATE-RJ result {b[1]} is not 1 or 2");
                if (b[2] is not (1 or 2 or 3)) throw new PduFormatException(Abort.InvalidPduParameterValue, $"A-ASSOCIATE-RJ source {b[2]} is not 1, 2 or 3");
                return new AssociateReject((RejectResult)b[1], (RejectSource)b[2], b[3]);
            }
            case PduType.PData:
                return new PDataReceived(body);
            case PduType.ReleaseRequest:
                Fixed4(body, "A-RELEASE-RQ");
                return ReleaseRequest.Instance;
            case PduType.ReleaseResponse:
                Fixed4(body, "A-RELEASE-RP");
                return ReleaseResponse.Instance;
            case PduType.Abort:
            {
                var b = Fixed4(body, "A-ABORT");
                // Source 1 is reserved; read it as is (the reason is not tested when the source is the user).
                return new Abort((AbortSource)b[2], b[3]);
            }
            default:
                throw new PduFormatException(Abort.UnrecognizedPdu, $"unrecognized PDU type {(byte)type:X2}H");
        }
    }

    public static bool IsKnownType(byte type) => type is >= 1 and <= 7;

    private static byte[] Fixed4(ReadOnlySequence<byte> body, string name)
    {
        if (body.Length != 4) throw new PduFormatException(Abort.InvalidPduParameterValue, $"{name} PDU length is {body.Length}, not 4");
        return body.ToArray();
    }

    private static Pdu DecodeAssociate(PduType type, ReadOnlySpan<byte> b)
    {
        string name = type == PduType.AssociateRequest ? "A-ASSOCIATE-RQ" : "A-ASSOCIATE-AC";
        if (b.Length < AssociateFixedLength)
            throw new PduFormatException(Abort.InvalidPduParameterValue, $"{name} PDU length {b.Length} is shorter than its fixed part ({AssociateFixedLength})");
        ushort version = BinaryPrimitives.ReadUInt16BigEndian(b);
        string called = ReadAE(b.Slice(4, 16));
        string calling = ReadAE(b.Slice(20, 16));

        string? appContext = null;
        var proposals = new List<PresentationContextProposal>();
        var results = new List<PresentationContextResult>();
        UserInformation? user = null;
        var items = b[AssociateFixedLength..];
        while (items.Length > 0)
        {
            byte itemType = NextItem(ref items, name, out var value);
            switch (itemType)
            {
                case 0x10:
                    appContext = ReadUid(value);
                    break;
                case 0x20 when type == PduType.AssociateRequest:
                    proposals.Add(DecodeProposal(value));
                    break;
                case 0x21 when type == PduType.AssociateAccept:
                    results.Add(DecodeResult(value));
                    break;
                case 0x50:
                    user = DecodeUserInformation(value, name);
                    break;
                default:
                    throw new PduFormatException(Abort.UnexpectedPduParameter, $"{name} holds an item of type {itemType:X2}H, not allowed there");
            }
        }
        if (appContext is null) throw new PduFormatException(Abort.InvalidPduParameterValue, $"{name} has no application context item");
        if (user is null) throw new PduFormatException(Abort.InvalidPduParameterValue, $"{name} has no user information item");
        if (type == PduType.AssociateRequest)
        {
            return new AssociateRequest
            {
                ProtocolVersion = version, CalledAE = called, CallingAE = calling, ApplicationContext = appContext,
                PresentationContexts = proposals, UserInformation = user,
            };
        }
        return new AssociateAccept
        {
            ProtocolVersion = version, CalledAE = called, CallingAE = calling, ApplicationContext = appContext,
            PresentationContexts = results, UserInformation = user,
        };
    }

    private static byte NextItem(ref ReadOnlySpan<byte> items, string where, out ReadOnlySpan<byte> value)
    {
        if (items.Length < 4) throw new PduFormatException(Abort.InvalidPduParameterValue, $"{where}: {items.Length} trailing bytes are too few for an item header");
        byte t = items[0];
        int len = BinaryPrimitives.ReadUInt16BigEndian(items[2..]);
        if (4 + len > items.Length)
            throw new PduFormatException(Abort.InvalidPduParameterValue, $"{where}: item {t:X2}H says {len} bytes but only {items.Length - 4} remain");
        value = items.Slice(4, len);
        items = items[(4 + len)..];
        return t;
    }

    private static PresentationContextProposal DecodeProposal(ReadOnlySpan<byte> v)
    {
        if (v.Length < 4) throw new PduFormatException(Abort.InvalidPduParameterValue, "presentation context item shorter than 4 bytes");
        byte id = v[0];
        if (id % 2 == 0) throw new PduFormatException(Abort.InvalidPduParameterValue, $"presentation context ID {id} is not odd");
        string? abs = null;
        var ts = new List<string>();
        var sub = v[4..];
        while (sub.Length > 0)
        {
            byte t = NextItem(ref sub, $"presentation context {id}", out var value);
            switch (t)
            {
                case 0x30:
                    if (abs is not null) throw new PduFormatException(Abort.UnexpectedPduParameter, $"presentation context {id} has two abstract syntaxes");
                    abs = ReadUid(value);
                    break;
                case 0x40: ts.Add(ReadUid(value)); break;
                default: throw new PduFormatException(Abort.UnexpectedPduParameter, $"presentation context {id} holds a sub-item of type {t:X2}H");
            }
        }
        if (abs is null) throw new PduFormatException(Abort.InvalidPduParameterValue, $"presentation context {id} has no abstract syntax");
        if (ts.Count == 0) throw new PduFormatException(Abort.InvalidPduParameterValue, $"presentation context {id} has no transfer syntax");
        return new PresentationContextProposal(id, abs, ts);
    }

    private static PresentationContextResult DecodeResult(ReadOnlySpan<byte> v)
    {
        if (v.Length < 4) throw new PduFormatException(Abort.InvalidPduParameterValue, "presentation context result item shorter than 4 bytes");
        byte id = v[0];
        byte result = v[2];
        if (result > 4) throw new PduFormatException(Abort.InvalidPduParameterValue, $"presentation context {id} result {result} is not 0-4");
        string ts = "";
        var sub = v[4..];
        while (sub.Length > 0)
        {
            byte t = NextItem(ref sub, $"presentation context {id}", out var value);
            if (t == 0x40) ts = ReadUid(value);
            else throw new PduFormatException(Abort.UnexpectedPduParameter, $"presentation context result {id} holds a sub-item of type {t:X2}H");
        }
        return new PresentationContextResult(id, (PresentationContextResultReason)result, ts);
    }

    private static UserInformation DecodeUserInformation(ReadOnlySpan<byte> v, string where)
    {
        var info = new UserInformation();
        var roles = new List<RoleSelection>();
        var ext = new List<ExtendedNegotiation>();
        var common = new List<CommonExtendedNegotiation>();
        var unknown = new List<(byte, byte[])>();
        while (v.Length > 0)
        {
            byte t = NextItem(ref v, where + " user information", out var value);
            switch (t)
            {
                case 0x51:
                    if (value.Length != 4) throw new PduFormatException(Abort.InvalidPduParameterValue, $"maximum length sub-item is {value.Length} bytes, not 4");
                    info = info with { MaximumLength = BinaryPrimitives.ReadUInt32BigEndian(value) };
                    break;
                case 0x52:
                    info = info with { ImplementationClassUid = ReadUid(value) };
                    break;
                case 0x55:
                    info = info with { ImplementationVersionName = Encoding.ASCII.GetString(value).Trim() };
                    break;
                case 0x53:
                    if (value.Length != 4) throw new PduFormatException(Abort.InvalidPduParameterValue, $"asynchronous operations window sub-item is {value.Length} bytes, not 4");
                    info = info with { AsyncOperations = (BinaryPrimitives.ReadUInt16BigEndian(value), BinaryPrimitives.ReadUInt16BigEndian(value[2..])) };
                    break;
                case 0x54:
                {
                    var r = value;
                    string uid = ReadLengthPrefixedUid(ref r, "role selection");
                    if (r.Length != 2) throw new PduFormatException(Abort.InvalidPduParameterValue, "role selection sub-item has no SCU/SCP role bytes");
                    roles.Add(new RoleSelection(uid, r[0] == 1, r[1] == 1));
                    break;
                }
                case 0x56:
                {
                    var r = value;
                    string uid = ReadLengthPrefixedUid(ref r, "extended negotiation");
                    ext.Add(new ExtendedNegotiation(uid, r.ToArray()));
                    break;
                }
                case 0x57:
                {
                    var r = value;
                    string sop = ReadLengthPrefixedUid(ref r, "common extended negotiation");
                    string service = ReadLengthPrefixedUid(ref r, "common extended negotiation");
                    if (r.Length < 2) throw new PduFormatException(Abort.InvalidPduParameterValue, "common extended negotiation has no related general SOP class length");
                    int relLen = BinaryPrimitives.ReadUInt16BigEndian(r);
                    r = r[2..];
                    if (relLen > r.Length) throw new PduFormatException(Abort.InvalidPduParameterValue, "common extended negotiation related classes overrun the sub-item");
                    var rel = r[..relLen];
                    var related = new List<string>();
                    while (rel.Length > 0) related.Add(ReadLengthPrefixedUid(ref rel, "related general SOP class"));
                    common.Add(new CommonExtendedNegotiation(sop, service, related));
                    break;
                }
                case 0x58:
                {
                    if (value.Length < 4) throw new PduFormatException(Abort.InvalidPduParameterValue, "user identity sub-item shorter than 4 bytes");
                    byte idType = value[0];
                    if (idType is < 1 or > 5) throw new PduFormatException(Abort.InvalidPduParameterValue, $"user identity type {idType} is not 1-5");
                    bool positive = value[1] == 1;
                    var r = value[2..];
                    var primary = ReadLengthPrefixed(ref r, "user identity primary field");
                    var secondary = r.Length >= 2 ? ReadLengthPrefixed(ref r, "user identity secondary field") : [];
                    info = info with { UserIdentity = new UserIdentityRequest((UserIdentityType)idType, positive, primary, secondary) };
                    break;
                }
                case 0x59:
                {
                    var r = value;
                    info = info with { UserIdentityServerResponse = ReadLengthPrefixed(ref r, "user identity server response") };
                    break;
                }
                default:
                    unknown.Add((t, value.ToArray()));
                    break;
            }
        }
        return info with { RoleSelections = roles, ExtendedNegotiations = ext, CommonExtendedNegotiations = common, Unknown = unknown };
    }

    private static byte[] ReadLengthPrefixed(ref ReadOnlySpan<byte> r, string what)
    {
        if (r.Length < 2) throw new PduFormatException(Abort.InvalidPduParameterValue, $"{what}: no length");
        int len = BinaryPrimitives.ReadUInt16BigEndian(r);
        if (2 + len > r.Length) throw new PduFormatException(Abort.InvalidPduParameterValue, $"{what}: length {len} overruns the sub-item");
        var v = r.Slice(2, len).ToArray();
        r = r[(2 + len)..];
        return v;
    }

    private static string ReadLengthPrefixedUid(ref ReadOnlySpan<byte> r, string what) => ReadUid(ReadLengthPrefixed(ref r, what));

    private static string ReadUid(ReadOnlySpan<byte> v)
    {
        // UIDs are padded with NUL (or, from lenient writers, a space) to even length.
        string s = Encoding.ASCII.GetString(v).TrimEnd('\0', ' ');
        if (s.Length > 64) throw new PduFormatException(Abort.InvalidPduParameterValue, $"UID of {s.Length} characters exceeds 64");
        return s;
    }

    private static string ReadAE(ReadOnlySpan<byte> v) => Encoding.ASCII.GetString(v).Trim(' ', '\0');

    // ---------------------------------------------------------------- encode

    /// <summary>Encodes a whole non-P-DATA PDU (header included).</summary>
    public static byte[] Encode(Pdu pdu)
    {
        var w = new ArrayBufferWriter<byte>(256);
        switch (pdu)
        {
            case AssociateRequest rq:
                EncodeAssociate(w, PduType.AssociateRequest, rq.ProtocolVersion, rq.CalledAE, rq.CallingAE, rq.ApplicationContext, body =>
                {
                    foreach (var pc in rq.PresentationContexts)
                    {
                        Item(body, 0x20, i =>
                        {
                            i.Write<byte>([pc.Id, 0, 0, 0]);
                            Item(i, 0x30, s => Ascii(s, pc.AbstractSyntax));
                            foreach (var ts in pc.TransferSyntaxes) Item(i, 0x40, s => Ascii(s, ts));
                        });
                    }
                    EncodeUserInformation(body, rq.UserInformation);
                });
                break;
            case AssociateAccept ac:
                EncodeAssociate(w, PduType.AssociateAccept, ac.ProtocolVersion, ac.CalledAE, ac.CallingAE, ac.ApplicationContext, body =>
                {
                    foreach (var pc in ac.PresentationContexts)
                    {
                        Item(body, 0x21, i =>
                        {
                            i.Write<byte>([pc.Id, 0, (byte)pc.Result, 0]);
                            // The transfer syntax sub-item is present even when rejected (its value is then not significant).
                            Item(i, 0x40, s => Ascii(s, pc.TransferSyntax));
                        });
                    }
                    EncodeUserInformation(body, ac.UserInformation);
                });
                break;
            case AssociateReject rj:
                Fixed(w, PduType.AssociateReject, [0, (byte)rj.Result, (byte)rj.Source, rj.Reason]);
                break;
            case ReleaseRequest:
                Fixed(w, PduType.ReleaseRequest, [0, 0, 0, 0]);
                break;
            case ReleaseResponse:
                Fixed(w, PduType.ReleaseResponse, [0, 0, 0, 0]);
                break;
            case Abort ab:
                Fixed(w, PduType.Abort, [0, 0, (byte)ab.Source, ab.Source == AbortSource.ServiceUser ? (byte)0 : ab.Reason]);
                break;
            default:
                throw new ArgumentException($"{pdu.GetType().Name} is not encoded by Encode (P-DATA-TF is streamed)", nameof(pdu));
        }
        return w.WrittenSpan.ToArray();
    }

    /// <summary>Writes a P-DATA-TF header and one PDV header for a fragment of <paramref name="fragmentLength"/> bytes.</summary>
    public static void WritePDataHeader(Span<byte> destination, byte presentationContextId, bool command, bool last, int fragmentLength)
    {
        // PDU header (6) | PDV item length (4) | presentation context ID (1) | message control header (1)
        destination[0] = (byte)PduType.PData;
        destination[1] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(destination[2..], (uint)(fragmentLength + 6));
        BinaryPrimitives.WriteUInt32BigEndian(destination[6..], (uint)(fragmentLength + 2));
        destination[10] = presentationContextId;
        destination[11] = (byte)((command ? 1 : 0) | (last ? 2 : 0));
    }

    public const int PDataOverhead = 12;

    private static void Fixed(ArrayBufferWriter<byte> w, PduType type, byte[] body)
    {
        Span<byte> h = stackalloc byte[HeaderLength];
        h[0] = (byte)type;
        h[1] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(h[2..], (uint)body.Length);
        w.Write(h);
        w.Write(body);
    }

    private static void EncodeAssociate(ArrayBufferWriter<byte> w, PduType type, ushort version, string called, string calling, string appContext, Action<ArrayBufferWriter<byte>> items)
    {
        var body = new ArrayBufferWriter<byte>(512);
        Span<byte> fixedPart = stackalloc byte[AssociateFixedLength];
        fixedPart.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(fixedPart, version);
        WriteAE(fixedPart.Slice(4, 16), called);
        WriteAE(fixedPart.Slice(20, 16), calling);
        body.Write(fixedPart);
        Item(body, 0x10, s => Ascii(s, appContext));
        items(body);
        Span<byte> h = stackalloc byte[HeaderLength];
        h[0] = (byte)type;
        h[1] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(h[2..], (uint)body.WrittenCount);
        w.Write(h);
        w.Write(body.WrittenSpan);
    }

    private static void EncodeUserInformation(ArrayBufferWriter<byte> w, UserInformation u) => Item(w, 0x50, i =>
    {
        Item(i, 0x51, s => { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, u.MaximumLength); s.Write(b); });
        if (u.ImplementationClassUid is { } cls) Item(i, 0x52, s => Ascii(s, cls));
        if (u.AsyncOperations is { } a)
            Item(i, 0x53, s => { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt16BigEndian(b, a.Invoked); BinaryPrimitives.WriteUInt16BigEndian(b[2..], a.Performed); s.Write(b); });
        foreach (var r in u.RoleSelections)
            Item(i, 0x54, s => { LengthPrefixed(s, Encoding.ASCII.GetBytes(r.SopClassUid)); s.Write<byte>([(byte)(r.ScuRole ? 1 : 0), (byte)(r.ScpRole ? 1 : 0)]); });
        if (u.ImplementationVersionName is { } ver) Item(i, 0x55, s => s.Write(Encoding.ASCII.GetBytes(ver)));
        foreach (var e in u.ExtendedNegotiations)
            Item(i, 0x56, s => { LengthPrefixed(s, Encoding.ASCII.GetBytes(e.SopClassUid)); s.Write(e.ApplicationInformation); });
        foreach (var c in u.CommonExtendedNegotiations)
        {
            Item(i, 0x57, s =>
            {
                LengthPrefixed(s, Encoding.ASCII.GetBytes(c.SopClassUid));
                LengthPrefixed(s, Encoding.ASCII.GetBytes(c.ServiceClassUid));
                var rel = new ArrayBufferWriter<byte>();
                foreach (var r in c.RelatedGeneralSopClasses) LengthPrefixed(rel, Encoding.ASCII.GetBytes(r));
                LengthPrefixed(s, rel.WrittenSpan);
            });
        }
        if (u.UserIdentity is { } id)
        {
            Item(i, 0x58, s =>
            {
                s.Write<byte>([(byte)id.IdentityType, (byte)(id.PositiveResponseRequested ? 1 : 0)]);
                LengthPrefixed(s, id.PrimaryField);
                LengthPrefixed(s, id.SecondaryField);
            });
        }
        if (u.UserIdentityServerResponse is { } resp) Item(i, 0x59, s => LengthPrefixed(s, resp));
        foreach (var (t, v) in u.Unknown) Item(i, t, s => s.Write(v));
    });

    private static void Item(ArrayBufferWriter<byte> w, byte type, Action<ArrayBufferWriter<byte>> value)
    {
        var v = new ArrayBufferWriter<byte>(64);
        value(v);
        if (v.WrittenCount > ushort.MaxValue) throw new ArgumentException($"item {type:X2}H is longer than 65535 bytes");
        Span<byte> h = stackalloc byte[4];
        h[0] = type;
        h[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(h[2..], (ushort)v.WrittenCount);
        w.Write(h);
        w.Write(v.WrittenSpan);
    }

    private static void LengthPrefixed(ArrayBufferWriter<byte> w, ReadOnlySpan<byte> value)
    {
        Span<byte> h = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(h, checked((ushort)value.Length));
        w.Write(h);
        w.Write(value);
    }

    // UIDs in PDU items are not padded (PS3.8 9.3.2.2: "shall not be padded"), unlike in datasets.
    private static void Ascii(ArrayBufferWriter<byte> w, string s) => w.Write(Encoding.ASCII.GetBytes(s));

    private static void WriteAE(Span<byte> dest, string ae)
    {
        dest.Fill((byte)' ');
        Encoding.ASCII.GetBytes(ae.AsSpan(0, Math.Min(16, ae.Length)), dest);
    }

    /// <summary>An AE title as PS3.5 allows it: 1-16 characters of the default repertoire, no backslash or control characters, not all spaces.</summary>
    public static bool IsValidAETitle(string? ae) =>
        ae is { Length: > 0 and <= 16 } && ae.Trim().Length > 0 && ae.All(c => c >= 0x20 && c < 0x7F && c != '\\');
}
