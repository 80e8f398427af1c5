using System.Globalization;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Dicom.Network.Trace;

namespace AkkaVna.Dicom.Network.Replay;

/// <summary>How a folder or a generated set is scheduled: over how many gateways (associations), at what rate.</summary>
/// <param name="Associations">Concurrent associations, each with its own calling AE title.</param>
/// <param name="CallingAE">The calling AE title, numbered when there are several associations (GW1, GW2, ...).</param>
/// <param name="RatePerSecond">C-STOREs per second over all associations (open loop); null: as fast as possible.</param>
/// <param name="ByStudy">
/// Deal whole studies to the associations (study k to association k mod n, each association sending its studies one after
/// the other, as a gateway forwards a study), instead of instance by instance in turn (every association on the same study).
/// </param>
public sealed record ScheduleOptions(int Associations, string CallingAE, string CalledAE, double? RatePerSecond, bool ByStudy = false);

/// <summary>A generated load: realistic studies with fresh UIDs and patients on every run.</summary>
public sealed record GeneratorOptions(int Studies, int InstancesPerStudy, string Modality = "CT", int Rows = 512, int Columns = 512, int Seed = 0);

/// <summary>Where replayed instances come from: a folder of DICOM files, a generator, or a recorded trace.</summary>
public static class ReplaySources
{
    /// <summary>The calling AE of association <paramref name="index"/> (0-based) of <paramref name="count"/>.</summary>
    public static string CallingAE(string prefix, int index, int count)
    {
        if (count == 1) return prefix;
        string suffix = (index + 1).ToString(CultureInfo.InvariantCulture);
        return prefix[..Math.Min(prefix.Length, 16 - suffix.Length)] + suffix;
    }

    /// <summary>The files dealt in turn to the associations, at the rate given (offsets i / rate) or all at once.</summary>
    public static List<ReplayItem> Schedule(IReadOnlyList<StoreFile> files, ScheduleOptions s)
    {
        if (!s.ByStudy)
            return files.Select((f, i) => new ReplayItem(s.RatePerSecond is { } r ? i / r : 0, CallingAE(s.CallingAE, i % s.Associations, s.Associations), s.CalledAE, f)).ToList();
        // Each association's queue holds its studies in turn; the global order (and the rate's clock) takes the queues round robin.
        var queues = Enumerable.Range(0, s.Associations).Select(_ => new Queue<StoreFile>()).ToList();
        foreach (var (study, k) in files.GroupBy(StudyOf, StringComparer.Ordinal).Select((g, k) => (g, k)))
            foreach (var f in study) queues[k % s.Associations].Enqueue(f);
        var items = new List<ReplayItem>(files.Count);
        while (items.Count < files.Count)
            for (int a = 0; a < queues.Count; a++)
                if (queues[a].TryDequeue(out var f))
                    items.Add(new ReplayItem(s.RatePerSecond is { } r ? items.Count / r : 0, CallingAE(s.CallingAE, a, s.Associations), s.CalledAE, f));
        return items;
    }

    private static string StudyOf(StoreFile f)
    {
        using var file = DicomFile.Open(f.Path, new DicomReadOptions { StopBefore = t => t.Group > 0x0020 });
        return file.Dataset.GetString(DicomTags.StudyInstanceUID) ?? "";
    }

    /// <summary>
    /// Every readable DICOM file under <paramref name="folder"/> (files that are not DICOM are listed in
    /// <paramref name="skipped"/> with the reason), in path order.
    /// </summary>
    public static List<StoreFile> Folder(string folder, List<string> skipped)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder} is not a folder");
        var files = new List<StoreFile>();
        foreach (var path in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            try
            {
                files.Add(StoreFile.Read(path));
            }
            catch (Exception e) when (e is DicomParseException or IOException or UnauthorizedAccessException)
            {
                skipped.Add($"{path}: {e.Message}");
            }
        }
        return files;
    }

    /// <summary>Writes the generated studies into <paramref name="folder"/> with AkkaVna's writer; returns their files.</summary>
    public static List<StoreFile> Generate(GeneratorOptions g, string folder)
    {
        Directory.CreateDirectory(folder);
        var random = new Random(g.Seed == 0 ? Environment.TickCount : g.Seed);
        var files = new List<StoreFile>(g.Studies * g.InstancesPerStudy);
        for (int s = 0; s < g.Studies; s++)
        {
            var study = new StudyIdentity(DicomImplementation.NewUid(), DicomImplementation.NewUid(), $"REPLAY{random.Next(1_000_000, 9_999_999)}", $"Replay^Patient{s + 1}", g.Modality);
            for (int i = 0; i < g.InstancesPerStudy; i++)
                files.Add(StoreFile.Read(WriteInstance(folder, study, i + 1, g.Rows, g.Columns, random)));
        }
        return files;
    }

    /// <summary>
    /// A trace made playable: entries with a file send it; entries with a size send a generated instance of about that
    /// size in a fresh study standing for the trace's study (so each run stores new data with the trace's shape).
    /// Offsets are divided by <paramref name="speed"/>; a speed of 0 sends as fast as possible.
    /// </summary>
    public static List<ReplayItem> FromTrace(IReadOnlyList<TraceEntry> trace, string folder, double speed, string? calledAE = null)
    {
        Directory.CreateDirectory(folder);
        var random = new Random();
        var studies = new Dictionary<string, StudyIdentity>(StringComparer.Ordinal);
        var items = new List<ReplayItem>(trace.Count);
        foreach (var e in trace)
        {
            StoreFile file;
            if (e.File is { } path) file = StoreFile.Read(path);
            else
            {
                string key = e.Study ?? $"{e.CallingAE}-{items.Count}";
                if (!studies.TryGetValue(key, out var study))
                    studies[key] = study = new StudyIdentity(DicomImplementation.NewUid(), DicomImplementation.NewUid(), $"REPLAY{random.Next(1_000_000, 9_999_999)}", "Replay^Trace", "CT");
                // Pixel data carries the size; about 1 KB goes to the header.
                long pixels = Math.Max(2, (e.Size!.Value - 1024) / 2);
                int columns = (int)Math.Clamp(Math.Sqrt(pixels), 1, 65535), rows = (int)Math.Clamp(pixels / columns, 1, 65535);
                file = StoreFile.Read(WriteInstance(folder, study, items.Count + 1, rows, columns, random));
            }
            items.Add(new ReplayItem(speed > 0 ? e.Offset / speed : 0, e.CallingAE, calledAE ?? e.CalledAE, file));
        }
        return items;
    }

    private sealed record StudyIdentity(string StudyUid, string SeriesUid, string PatientId, string PatientName, string Modality);

    /// <summary>
    /// One CT-like instance: 16-bit pixels of smooth structure plus noise in the low bits, so lossless compression gains
    /// what it would on a real image, not everything (zeros) or nothing (pure noise).
    /// </summary>
    private static string WriteInstance(string folder, StudyIdentity study, int number, int rows, int columns, Random random)
    {
        var ds = new DicomDataset();
        string sop = DicomImplementation.NewUid();
        ds.AddString(DicomTags.SOPClassUID, DicomVR.UI, study.Modality == "MR" ? DicomUids.MRImageStorage : DicomUids.CTImageStorage);
        ds.AddString(DicomTags.SOPInstanceUID, DicomVR.UI, sop);
        ds.AddString(DicomTags.StudyDate, DicomVR.DA, DateTime.UtcNow.ToString("yyyyMMdd", CultureInfo.InvariantCulture));
        ds.AddString(DicomTags.StudyTime, DicomVR.TM, DateTime.UtcNow.ToString("HHmmss", CultureInfo.InvariantCulture));
        ds.AddString(DicomTags.Modality, DicomVR.CS, study.Modality);
        ds.AddString(DicomTags.Manufacturer, DicomVR.LO, "AkkaVna replay");
        ds.AddString(DicomTags.PatientName, DicomVR.PN, study.PatientName);
        ds.AddString(DicomTags.PatientID, DicomVR.LO, study.PatientId);
        ds.AddString(DicomTags.StudyInstanceUID, DicomVR.UI, study.StudyUid);
        ds.AddString(DicomTags.SeriesInstanceUID, DicomVR.UI, study.SeriesUid);
        ds.AddString(DicomTags.SeriesNumber, DicomVR.IS, "1");
        ds.AddString(DicomTags.InstanceNumber, DicomVR.IS, number.ToString(CultureInfo.InvariantCulture));
        ds.AddUInt16(DicomTags.SamplesPerPixel, 1);
        ds.AddString(DicomTags.PhotometricInterpretation, DicomVR.CS, "MONOCHROME2");
        ds.AddUInt16(DicomTags.Rows, (ushort)rows);
        ds.AddUInt16(DicomTags.Columns, (ushort)columns);
        ds.AddUInt16(DicomTags.BitsAllocated, 16);
        ds.AddUInt16(DicomTags.BitsStored, 12);
        ds.AddUInt16(DicomTags.HighBit, 11);
        ds.AddUInt16(DicomTags.PixelRepresentation, 0);
        var pixels = new byte[(long)rows * columns * 2];
        double phase = random.NextDouble() * Math.PI;
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < columns; x++)
            {
                int v = (int)(1000 + 800 * Math.Sin(x * 0.05 + phase) * Math.Cos(y * 0.04 + number * 0.1)) + random.Next(32);
                int at = (y * columns + x) * 2;
                pixels[at] = (byte)v;
                pixels[at + 1] = (byte)((v >> 8) & 0x0F);
            }
        ds.Add(new DicomElement(DicomTags.PixelData, DicomVR.OW, new MemoryByteBuffer(pixels)));
        string path = Path.Combine(folder, sop + ".dcm");
        DicomWriter.WriteFile(path, ds, DicomTransferSyntax.ExplicitVRLittleEndian);
        return path;
    }
}
