using System.CommandLine;
using System.Text;
using System.Text.Json;
using AkkaVna.Dicom;
using AkkaVna.Dicom.Buffers;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Json;

namespace AkkaVna.Cli.Commands;

/// <summary><c>akka-vna dump FILE... [--json]</c>: a dcmdump-like listing or the DICOM JSON model (PS3.18 Annex F).</summary>
public static class DumpCommand
{
    public static Command Create()
    {
        var files = new Argument<FileInfo[]>("FILE") { Arity = ArgumentArity.OneOrMore, Description = "DICOM files (Part 10, or a raw dataset) to list." };
        var json = new Option<bool>("--json") { Description = "Print the DICOM JSON model (PS3.18 Annex F) of the dataset instead of a listing; several files give a JSON array." };
        var bulk = new Option<string>("--bulk-data")
        {
            Description = "With --json: 'inline' writes binary values as InlineBinary (base64); 'uri' writes values over --inline-threshold as BulkDataURI (file URI with offset and length).",
            DefaultValueFactory = _ => "inline",
        };
        bulk.AcceptOnlyFromAmong("inline", "uri");
        var threshold = new Option<long>("--inline-threshold") { Description = "With --bulk-data uri: values up to this many bytes are still inlined.", DefaultValueFactory = _ => 1024 };
        var cmd = new Command("dump", "List DICOM files element by element (like dcmtk's dcmdump) or print them as DICOM JSON. "
            + "A malformed file prints one line naming the file, the byte offset and the fault, and the exit code is 1.")
        {
            files, json, bulk, threshold,
        };
        cmd.SetAction(r => Run(r.GetValue(files)!, r.GetValue(json), r.GetValue(bulk) == "uri", r.GetValue(threshold), Console.Out, Console.Error));
        return cmd;
    }

    public static int Run(FileInfo[] files, bool json, bool bulkUri, long inlineThreshold, TextWriter stdout, TextWriter stderr)
    {
        int failures = 0;
        var jsons = new List<string>();
        foreach (var f in files)
        {
            try
            {
                using var file = DicomFile.Open(f.FullName);
                if (json)
                {
                    var options = new DicomJsonOptions
                    {
                        Indented = true,
                        BinaryMode = bulkUri ? DicomJsonBinaryMode.BulkDataUri : DicomJsonBinaryMode.InlineBinary,
                        InlineThreshold = inlineThreshold,
                        BulkDataUri = (path, item) => BulkUri(f.FullName, path, item),
                    };
                    jsons.Add(DicomJsonWriter.ToJson(file.Dataset, options));
                }
                else
                {
                    using var sw = new StringWriter();
                    DicomDump.Write(sw, file);
                    stdout.Write(sw.ToString());
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // One line per bad file, never a stack trace: the parse fault with its offset, or what else went wrong.
                failures++;
                string where = e is DicomParseException p ? $"byte offset {p.Offset}: {p.Reason}" : e.Message;
                stderr.WriteLine($"error: {f.FullName}: {where}");
            }
        }
        if (json && jsons.Count > 0)
        {
            if (files.Length == 1) stdout.WriteLine(jsons[0]);
            else stdout.WriteLine("[" + string.Join(",\n", jsons) + "]");
        }
        return failures == 0 ? 0 : 1;
    }

    /// <summary>A value that stays in the file is referenced by offset and length; anything else gets a path-addressed URI.</summary>
    private static string BulkUri(string file, string path, DicomItem item) => item is DicomElement { Value: FileByteBuffer fb }
        ? $"{new Uri(fb.Path).AbsoluteUri}?offset={fb.Offset}&length={fb.Length}"
        : $"{new Uri(file).AbsoluteUri}#{path}";
}
