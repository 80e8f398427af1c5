using System.Collections.Immutable;
using System.Runtime.Serialization;
using System.Text;
using Akka.Actor;
using Akka.Serialization;
using AkkaVna.Core.Ingest;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;

namespace AkkaVna.Actors.Studies;

/// <summary>
/// Writes the study protocol — journal events, snapshots and the messages that cross nodes — in a compact binary form
/// under short, stable manifests, so renaming a C# type never breaks recovery of a 20-year-old journal. Each payload
/// starts with a format version byte; readers keep accepting every version they ever wrote.
/// </summary>
public sealed class StudySerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int SerializerId = 4101;

    /// <summary>The HOCON that binds the study protocol to this serializer.</summary>
    public const string Binding = """
        akka.actor.serializers.akka-vna-study = "AkkaVna.Actors.Studies.StudySerializer, AkkaVna.Actors"
        akka.actor.serialization-bindings { "AkkaVna.Core.Studies.IStudyProtocol, AkkaVna.Core" = akka-vna-study }
        """;
    // Version 1: the first format. Version 2: a content checksum after each instance and instance entry, the archived
    // checksum in a store result, and InstanceWithdrawn. Version 3 (written now): blob references (store, key,
    // representation, tier) where versions 1 and 2 held a key of the primary store. Version 4 (written now): an instance
    // header ends with Institution Name and the procedure codes. Every earlier version is still read.
    private const byte Version1 = 1, Version2 = 2, Version3 = 3, Version4 = 4;

    public override int Identifier => SerializerId;

    private const string InstanceStoredManifest = "IS", InstanceReplacedManifest = "IR", StudyStabilizedManifest = "SS", StudyReopenedManifest = "SR",
        StateManifest = "ST", StoreInstanceManifest = "CS", StoreResultManifest = "RS", CheckStabilityManifest = "CK", GetSummaryManifest = "GS",
        SummaryManifest = "SU", StopManifest = "SP",
        InstanceWithdrawnManifest = "IW", InstanceCompressedManifest = "IC", CompressionRefusedManifest = "CR", OriginalsDeletedManifest = "OD",
        StudyCompressedManifest = "SC", CheckCompressionManifest = "CC", CheckLifecycleManifest = "CL", InstanceMovedManifest = "IM";

    public override string Manifest(object o) => o switch
    {
        InstanceStored => InstanceStoredManifest,
        InstanceReplaced => InstanceReplacedManifest,
        StudyStabilized => StudyStabilizedManifest,
        StudyReopened => StudyReopenedManifest,
        InstanceWithdrawn => InstanceWithdrawnManifest,
        InstanceCompressed => InstanceCompressedManifest,
        InstanceMoved => InstanceMovedManifest,
        InstanceCompressionRefused => CompressionRefusedManifest,
        OriginalsDeleted => OriginalsDeletedManifest,
        StudyCompressed => StudyCompressedManifest,
        CheckCompression => CheckCompressionManifest,
        CheckLifecycle => CheckLifecycleManifest,
        StudyState => StateManifest,
        StoreInstance => StoreInstanceManifest,
        StoreInstanceResult => StoreResultManifest,
        CheckStability => CheckStabilityManifest,
        GetStudySummary => GetSummaryManifest,
        StudySummary => SummaryManifest,
        StopStudy => StopManifest,
        _ => throw new ArgumentException($"{o.GetType()} is not part of the study protocol", nameof(o)),
    };

    public override byte[] ToBinary(object obj)
    {
        using var ms = new MemoryStream(256);
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Version4);
            switch (obj)
            {
                case InstanceStored e: Write(w, e.Instance); break;
                case InstanceReplaced e:
                    Write(w, e.Instance);
                    w.Write(e.PreviousSha256);
                    w.Write(e.PreviousSeriesInstanceUid);
                    Write(w, e.PreviousBlob);
                    break;
                case StudyStabilized e: w.Write(e.StudyInstanceUid); Write(w, e.At); break;
                case StudyReopened e: w.Write(e.StudyInstanceUid); Write(w, e.At); break;
                case InstanceWithdrawn e:
                    w.Write(e.StudyInstanceUid);
                    w.Write(e.SeriesInstanceUid);
                    w.Write(e.SopInstanceUid);
                    w.Write(e.Reason);
                    break;
                case InstanceCompressed e:
                    Write(w, e.Instance);
                    Write(w, e.PreviousBlob);
                    w.Write(e.PreviousSha256);
                    w.Write(e.PreviousSize);
                    w.Write(e.PreviousTransferSyntaxUid);
                    w.Write(e.OriginalKept);
                    break;
                case InstanceMoved e:
                    Write(w, e.Instance);
                    Write(w, e.PreviousBlob);
                    w.Write(e.KeptBlob is not null && e.KeptPreviousBlob is not null);
                    if (e.KeptBlob is not null && e.KeptPreviousBlob is not null)
                    {
                        Write(w, e.KeptPreviousBlob);
                        Write(w, e.KeptBlob);
                    }
                    break;
                case InstanceCompressionRefused e:
                    w.Write(e.StudyInstanceUid);
                    w.Write(e.SopInstanceUid);
                    w.Write(e.Sha256);
                    w.Write(e.Reason);
                    break;
                case OriginalsDeleted e:
                    w.Write(e.StudyInstanceUid);
                    w.Write(e.Blobs.Count);
                    foreach (var b in e.Blobs) Write(w, b);
                    break;
                case StudyCompressed e: w.Write(e.StudyInstanceUid); Write(w, e.At); break;
                case CheckCompression c: w.Write(c.StudyInstanceUid); break;
                case CheckLifecycle c: w.Write(c.StudyInstanceUid); break;
                case StudyState s: Write(w, s); break;
                case StoreInstance c: Write(w, c.Instance); WriteOpt(w, c.CommitBy); break;
                case StoreInstanceResult r:
                    w.Write(r.SopInstanceUid);
                    w.Write((byte)r.Outcome);
                    WriteOpt(w, r.Reason);
                    w.Write(r.ObsoleteBlob is not null);
                    if (r.ObsoleteBlob is not null) Write(w, r.ObsoleteBlob);
                    WriteOpt(w, r.ArchivedSha256);
                    break;
                case CheckStability c: w.Write(c.StudyInstanceUid); break;
                case GetStudySummary g: w.Write(g.StudyInstanceUid); break;
                case StudySummary s:
                    w.Write(s.StudyInstanceUid);
                    w.Write(s.SeriesCount);
                    w.Write(s.InstanceCount);
                    w.Write(s.SizeBytes);
                    w.Write(s.Stable);
                    WriteOpt(w, s.StableDue);
                    WriteOpt(w, s.StableAt);
                    w.Write(s.SequenceNr);
                    w.Write(s.Node ?? "");
                    break;
                case StopStudy: break;
                default: throw new ArgumentException($"{obj.GetType()} is not part of the study protocol", nameof(obj));
            }
        }
        return ms.ToArray();
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        using var r = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
        byte version = r.ReadByte();
        if (version is not (Version1 or Version2 or Version3 or Version4))
            throw new SerializationException($"study protocol '{manifest}' has format version {version}, which this build does not know");
        var v = new Format(version);
        return manifest switch
        {
            InstanceStoredManifest => new InstanceStored(ReadInstance(r, v)),
            InstanceReplacedManifest => new InstanceReplaced(ReadInstance(r, v), r.ReadString(), r.ReadString(), ReadBlob(r, v)),
            StudyStabilizedManifest => new StudyStabilized(r.ReadString(), ReadTime(r)),
            StudyReopenedManifest => new StudyReopened(r.ReadString(), ReadTime(r)),
            InstanceWithdrawnManifest => new InstanceWithdrawn(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString()),
            InstanceCompressedManifest => new InstanceCompressed(ReadInstance(r, v), ReadBlob(r, v), r.ReadString(), r.ReadInt64(), r.ReadString())
            {
                // An earlier build's event ends before the flag: the original was not kept.
                OriginalKept = r.BaseStream.Position < r.BaseStream.Length && r.ReadBoolean(),
            },
            InstanceMovedManifest => ReadMoved(r, v),
            CompressionRefusedManifest => new InstanceCompressionRefused(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString()),
            OriginalsDeletedManifest => new OriginalsDeleted(r.ReadString(), ReadBlobs(r, v)),
            StudyCompressedManifest => new StudyCompressed(r.ReadString(), ReadTime(r)),
            CheckCompressionManifest => new CheckCompression(r.ReadString()),
            CheckLifecycleManifest => new CheckLifecycle(r.ReadString()),
            StateManifest => ReadState(r, v),
            StoreInstanceManifest => new StoreInstance(ReadInstance(r, v))
            {
                // An earlier build's command ends after the instance: no deadline.
                CommitBy = r.BaseStream.Position < r.BaseStream.Length ? ReadOptTime(r) : null,
            },
            StoreResultManifest => new StoreInstanceResult(r.ReadString(), (StoreOutcome)r.ReadByte(), ReadOpt(r), r.ReadBoolean() ? ReadBlob(r, v) : null,
                v.HasContentChecksums ? ReadOpt(r) : null),
            CheckStabilityManifest => new CheckStability(r.ReadString()),
            GetSummaryManifest => new GetStudySummary(r.ReadString()),
            SummaryManifest => new StudySummary(r.ReadString(), r.ReadInt32(), r.ReadInt32(), r.ReadInt64(), r.ReadBoolean(), ReadOptTime(r), ReadOptTime(r), r.ReadInt64())
            {
                // An earlier build's summary ends before the node.
                Node = r.BaseStream.Position < r.BaseStream.Length && r.ReadString() is { Length: > 0 } node ? node : null,
            },
            StopManifest => StopStudy.Instance,
            _ => throw new SerializationException($"unknown study protocol manifest '{manifest}'"),
        };
    }

    private static InstanceMoved ReadMoved(BinaryReader r, Format v)
    {
        var moved = new InstanceMoved(ReadInstance(r, v), ReadBlob(r, v));
        if (!r.ReadBoolean()) return moved;
        var keptFrom = ReadBlob(r, v);
        return moved with { KeptPreviousBlob = keptFrom, KeptBlob = ReadBlob(r, v) };
    }

    private static void WriteOpt(BinaryWriter w, string? s)
    {
        w.Write(s is not null);
        if (s is not null) w.Write(s);
    }

    private static string? ReadOpt(BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;

    private static void WriteOpt(BinaryWriter w, int? v)
    {
        w.Write(v.HasValue);
        if (v.HasValue) w.Write(v.Value);
    }

    private static int? ReadOptInt(BinaryReader r) => r.ReadBoolean() ? r.ReadInt32() : null;

    private static void Write(BinaryWriter w, DateTimeOffset t) => w.Write(t.ToUnixTimeMilliseconds());

    private static DateTimeOffset ReadTime(BinaryReader r) => DateTimeOffset.FromUnixTimeMilliseconds(r.ReadInt64());

    private static void WriteOpt(BinaryWriter w, DateTimeOffset? t)
    {
        w.Write(t.HasValue);
        if (t.HasValue) Write(w, t.Value);
    }

    private static DateTimeOffset? ReadOptTime(BinaryReader r) => r.ReadBoolean() ? ReadTime(r) : null;

    private static void Write(BinaryWriter w, InstanceHeader h)
    {
        w.Write(h.PatientId);
        w.Write(h.IssuerOfPatientId);
        WriteOpt(w, h.PatientName);
        WriteOpt(w, h.PatientBirthDate);
        WriteOpt(w, h.PatientSex);
        w.Write(h.StudyInstanceUid);
        WriteOpt(w, h.StudyDate);
        WriteOpt(w, h.StudyTime);
        WriteOpt(w, h.AccessionNumber);
        WriteOpt(w, h.StudyId);
        WriteOpt(w, h.StudyDescription);
        WriteOpt(w, h.ReferringPhysicianName);
        w.Write(h.SeriesInstanceUid);
        WriteOpt(w, h.Modality);
        WriteOpt(w, h.SeriesNumber);
        WriteOpt(w, h.SeriesDescription);
        WriteOpt(w, h.BodyPartExamined);
        WriteOpt(w, h.SeriesDate);
        w.Write(h.SopClassUid);
        w.Write(h.SopInstanceUid);
        w.Write(h.TransferSyntaxUid);
        WriteOpt(w, h.InstanceNumber);
        WriteOpt(w, h.NumberOfFrames);
        WriteOpt(w, h.Rows);
        WriteOpt(w, h.Columns);
        WriteOpt(w, h.InstitutionName);
        WriteOpt(w, h.ProcedureCodes);
    }

    private static InstanceHeader ReadHeader(BinaryReader r, Format v)
    {
        string pid = r.ReadString(), issuer = r.ReadString();
        string? name = ReadOpt(r), birth = ReadOpt(r), sex = ReadOpt(r);
        string study = r.ReadString();
        string? date = ReadOpt(r), time = ReadOpt(r), acc = ReadOpt(r), sid = ReadOpt(r), sdesc = ReadOpt(r), referring = ReadOpt(r);
        string series = r.ReadString();
        string? modality = ReadOpt(r);
        int? seriesNumber = ReadOptInt(r);
        string? seriesDesc = ReadOpt(r), body = ReadOpt(r), seriesDate = ReadOpt(r);
        string sopClass = r.ReadString(), sop = r.ReadString(), ts = r.ReadString();
        int? number = ReadOptInt(r), frames = ReadOptInt(r), rows = ReadOptInt(r), columns = ReadOptInt(r);
        string? institution = v.HasHeaderV4 ? ReadOpt(r) : null, procedures = v.HasHeaderV4 ? ReadOpt(r) : null;
        return new InstanceHeader
        {
            PatientId = pid, IssuerOfPatientId = issuer, PatientName = name, PatientBirthDate = birth, PatientSex = sex,
            StudyInstanceUid = study, StudyDate = date, StudyTime = time, AccessionNumber = acc, StudyId = sid, StudyDescription = sdesc,
            ReferringPhysicianName = referring, SeriesInstanceUid = series, Modality = modality, SeriesNumber = seriesNumber,
            SeriesDescription = seriesDesc, BodyPartExamined = body, SeriesDate = seriesDate, SopClassUid = sopClass, SopInstanceUid = sop,
            TransferSyntaxUid = ts, InstanceNumber = number, NumberOfFrames = frames, Rows = rows, Columns = columns,
            InstitutionName = institution, ProcedureCodes = procedures,
        };
    }

    private static void Write(BinaryWriter w, StoredInstance i)
    {
        Write(w, i.Header);
        Write(w, i.Blob);
        w.Write(i.Size);
        w.Write(i.Sha256);
        Write(w, i.ReceivedAt);
        w.Write(i.CallingAE);
        WriteOpt(w, i.ContentSha256);
    }

    private static StoredInstance ReadInstance(BinaryReader r, Format v) =>
        new(ReadHeader(r, v), ReadBlob(r, v), r.ReadInt64(), r.ReadString(), ReadTime(r), r.ReadString()) { ContentSha256 = v.HasContentChecksums ? ReadOpt(r) : null };

    /// <summary>What a payload's format version holds.</summary>
    private readonly record struct Format(byte Version)
    {
        public bool HasContentChecksums => Version >= Version2;
        public bool HasBlobRefs => Version >= Version3;
        public bool HasHeaderV4 => Version >= Version4;
    }

    private static void Write(BinaryWriter w, BlobRef b)
    {
        w.Write(b.Store);
        w.Write(b.Key);
        w.Write(b.Representation);
        w.Write(b.Tier);
    }

    /// <summary>A blob reference; formats before 3 held only a key of the primary store.</summary>
    private static BlobRef ReadBlob(BinaryReader r, Format v) =>
        v.HasBlobRefs ? new BlobRef(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString()) : new BlobRef(BlobRef.PrimaryStore, r.ReadString());

    private static void Write(BinaryWriter w, StudyState s)
    {
        w.Write(s.StudyInstanceUid);
        w.Write(s.Latest is not null);
        if (s.Latest is not null) Write(w, s.Latest);
        w.Write(s.Series.Count);
        foreach (var (uid, series) in s.Series)
        {
            w.Write(uid);
            Write(w, series.Latest);
            w.Write(series.InstanceCount);
        }
        w.Write(s.Instances.Count);
        foreach (var (sop, e) in s.Instances)
        {
            w.Write(sop);
            w.Write(e.SeriesInstanceUid);
            w.Write(e.Sha256);
            w.Write(e.Size);
            Write(w, e.Blob);
            WriteOpt(w, e.ContentSha256);
        }
        w.Write(s.SizeBytes);
        WriteOpt(w, s.LastReceived);
        w.Write(s.Stable);
        WriteOpt(w, s.StableAt);
        // Compression's part (absent from snapshots of earlier builds).
        w.Write(s.CompressionRefused.Count);
        foreach (var (sop, sha) in s.CompressionRefused)
        {
            w.Write(sop);
            w.Write(sha);
        }
        w.Write(s.ObsoleteBlobs.Count);
        foreach (var b in s.ObsoleteBlobs) Write(w, b);
        WriteOpt(w, s.CompressedAt);
        // Kept originals (absent from snapshots of earlier builds).
        w.Write(s.KeptOriginals.Count);
        foreach (var k in s.KeptOriginals.Values)
        {
            w.Write(k.SopInstanceUid);
            Write(w, k.Blob);
            w.Write(k.Size);
            w.Write(k.Sha256);
            w.Write(k.TransferSyntaxUid);
        }
    }

    private static BlobRef[] ReadBlobs(BinaryReader r, Format v)
    {
        int n = r.ReadInt32();
        if (n < 0 || n > 1_000_000) throw new SerializationException($"a list of {n} blobs");
        var blobs = new BlobRef[n];
        for (int i = 0; i < n; i++) blobs[i] = ReadBlob(r, v);
        return blobs;
    }

    private static StudyState ReadState(BinaryReader r, Format v)
    {
        string study = r.ReadString();
        var latest = r.ReadBoolean() ? ReadHeader(r, v) : null;
        var series = ImmutableDictionary.CreateBuilder<string, SeriesEntry>();
        for (int n = r.ReadInt32(), i = 0; i < n; i++) series.Add(r.ReadString(), new SeriesEntry(ReadHeader(r, v), r.ReadInt32()));
        var instances = ImmutableDictionary.CreateBuilder<string, InstanceEntry>();
        for (int n = r.ReadInt32(), i = 0; i < n; i++) instances.Add(r.ReadString(), new InstanceEntry(r.ReadString(), r.ReadString(), r.ReadInt64(), ReadBlob(r, v), v.HasContentChecksums ? ReadOpt(r) : null));
        var state = new StudyState(study, latest, instances.ToImmutable(), series.ToImmutable(), r.ReadInt64(), ReadOptTime(r), r.ReadBoolean(), ReadOptTime(r));
        if (r.BaseStream.Position >= r.BaseStream.Length) return state;
        var refused = ImmutableDictionary.CreateBuilder<string, string>();
        for (int n = r.ReadInt32(), i = 0; i < n; i++) refused.Add(r.ReadString(), r.ReadString());
        state = state with { CompressionRefused = refused.ToImmutable(), ObsoleteBlobs = [.. ReadBlobs(r, v)], CompressedAt = ReadOptTime(r) };
        if (r.BaseStream.Position >= r.BaseStream.Length) return state;
        var kept = ImmutableDictionary.CreateBuilder<string, KeptBlob>();
        int count = r.ReadInt32();
        if (count < 0 || count > 10_000_000) throw new SerializationException($"{count} kept originals");
        for (int i = 0; i < count; i++)
        {
            string sop = r.ReadString();
            kept[sop] = new KeptBlob(study, sop, ReadBlob(r, v), r.ReadInt64(), r.ReadString(), r.ReadString());
        }
        return state with { KeptOriginals = kept.ToImmutable() };
    }
}
