using System.CommandLine;
using System.Diagnostics;
using System.Net;
using AkkaVna.Dicom;
using AkkaVna.Dicom.IO;
using AkkaVna.Dicom.Network;
using AkkaVna.Dicom.Network.Pdus;
using AkkaVna.Dicom.Network.Scp;
using AkkaVna.Dicom.Network.Scu;
using AkkaVna.Dicom.Network.Transport;
using Microsoft.Extensions.Logging;

namespace AkkaVna.Cli.Commands;

/// <summary><c>echo</c>, <c>store</c> and <c>receive</c>: the DICOM network stack from the command line.</summary>
public static class NetworkCommands
{
    private static Option<string> CallingAE(string defaultValue) => new("--calling-ae", "-aet")
    {
        Description = "Calling AE title (this side).", DefaultValueFactory = _ => defaultValue,
    };

    private static Option<string> CalledAE() => new("--called-ae", "-aec")
    {
        Description = "Called AE title (the peer).", DefaultValueFactory = _ => "ANY-SCP",
    };

    private static Option<double> Timeout() => new("--timeout")
    {
        Description = "Seconds to wait for the association, a response or a stalled transfer before giving up.", DefaultValueFactory = _ => 30,
    };

    private static Argument<string> Host() => new("HOST") { Description = "Host name or address of the SCP." };

    private static Argument<int> Port() => new("PORT") { Description = "TCP port of the SCP." };

    public static Command Echo()
    {
        var host = Host();
        var port = Port();
        var calling = CallingAE("AKKAVNA-SCU");
        var called = CalledAE();
        var timeout = Timeout();
        var tls = new TlsCliOptions();
        var cmd = new Command("echo", "Verify a DICOM peer with C-ECHO (like dcmtk's echoscu). Exit code 0 when it answers Success.")
        {
            host, port, calling, called, timeout,
        };
        tls.AddTo(cmd);
        cmd.SetAction((r, ct) =>
        {
            var (connector, error) = tls.Connector(r);
            return error is not null ? Task.FromResult(Fail(error)) : RunEcho(r.GetValue(host)!, r.GetValue(port), r.GetValue(calling)!, r.GetValue(called)!, r.GetValue(timeout), connector, ct);
        });
        return cmd;
    }

    private static async Task<int> RunEcho(string host, int port, string calling, string called, double timeoutSeconds, IDicomConnector? connector, CancellationToken ct)
    {
        if (ValidateAE(calling, called) is { } bad) return Fail(bad);
        var options = AssociationOptions(timeoutSeconds, connector);
        var started = Stopwatch.GetTimestamp();
        try
        {
            var rq = new AssociateRequest
            {
                CalledAE = called,
                CallingAE = calling,
                PresentationContexts = [new PresentationContextProposal(1, DicomUids.Verification, [DicomUids.ExplicitVRLittleEndian, DicomUids.ImplicitVRLittleEndian])],
                UserInformation = new UserInformation
                {
                    ImplementationClassUid = DicomImplementation.ClassUid,
                    ImplementationVersionName = DicomImplementation.VersionName,
                },
            };
            await using var association = await DicomAssociation.ConnectAsync(host, port, rq, options, cancellationToken: ct);
            var status = await association.EchoAsync(ct);
            await association.ReleaseAsync();
            Console.WriteLine($"C-ECHO {calling} -> {called} at {host}:{port}: {status.Describe()} ({status}) in {Stopwatch.GetElapsedTime(started).TotalMilliseconds:0.0} ms");
            return status.IsSuccess ? 0 : 1;
        }
        catch (DicomAssociationException e)
        {
            return Fail($"C-ECHO to {host}:{port} failed: {e.Message}");
        }
    }

    public static Command Store()
    {
        var host = Host();
        var port = Port();
        var paths = new Argument<string[]>("PATH") { Arity = ArgumentArity.OneOrMore, Description = "DICOM files or folders (searched recursively) to send." };
        var associations = new Option<int>("--associations", "-j") { Description = "Concurrent associations (the files are split among them).", DefaultValueFactory = _ => 1 };
        var window = new Option<int>("--window") { Description = "Asynchronous operations to propose per association (C-STOREs outstanding at once).", DefaultValueFactory = _ => 1 };
        var calling = CallingAE("AKKAVNA-SCU");
        var called = CalledAE();
        var timeout = Timeout();
        var tls = new TlsCliOptions();
        var cmd = new Command("store", "Send DICOM files with C-STORE (like dcmtk's storescu), each in its own transfer syntax. "
            + "Prints one line per failure and a summary; exit code 0 only when every file was stored.")
        {
            host, port, paths, associations, window, calling, called, timeout,
        };
        tls.AddTo(cmd);
        cmd.SetAction((r, ct) =>
        {
            var (connector, error) = tls.Connector(r);
            return error is not null ? Task.FromResult(Fail(error)) : RunStore(r.GetValue(host)!, r.GetValue(port), r.GetValue(paths)!, r.GetValue(associations), r.GetValue(window),
                r.GetValue(calling)!, r.GetValue(called)!, r.GetValue(timeout), connector, ct);
        });
        return cmd;
    }

    private static async Task<int> RunStore(string host, int port, string[] paths, int associations, int window, string calling, string called, double timeoutSeconds,
        IDicomConnector? connector, CancellationToken ct)
    {
        if (ValidateAE(calling, called) is { } bad) return Fail(bad);
        if (associations is < 1 or > 1024) return Fail("--associations must be between 1 and 1024");
        if (window is < 1 or > 1024) return Fail("--window must be between 1 and 1024");

        var files = new List<StoreFile>();
        int unreadable = 0;
        var expanded = ExpandPaths(paths, out var missing);
        foreach (var path in expanded)
        {
            try
            {
                files.Add(StoreFile.Read(path));
            }
            catch (Exception e) when (e is DicomParseException or IOException or UnauthorizedAccessException)
            {
                unreadable++;
                Console.Error.WriteLine($"error: {path}: not sent: {e.Message}");
            }
        }
        foreach (var m in missing) Console.Error.WriteLine($"error: {m}: no such file or folder");
        if (files.Count == 0)
        {
            Console.Error.WriteLine("error: nothing to send");
            return 1;
        }

        var options = new StoreScuOptions { CallingAE = calling, CalledAE = called, AsyncWindow = window, Association = AssociationOptions(timeoutSeconds, connector) };
        var lists = Enumerable.Range(0, associations).Select(i => files.Where((_, k) => k % associations == i).ToList()).Where(l => l.Count > 0).ToList();
        var started = Stopwatch.GetTimestamp();
        int done = 0;
        long bytes = 0;
        var progress = Progress.Start(files.Count);
        void OnOutcome(StoreOutcome o)
        {
            Interlocked.Add(ref bytes, o.Bytes);
            progress.Report(Interlocked.Increment(ref done));
            if (!o.Stored) Console.Error.WriteLine($"error: {o.Path}: {(o.Status is { } s ? $"{s.Describe()} ({s})" : "")}{(o.Error is null ? "" : (o.Status is null ? "" : ": ") + o.Error)}");
        }
        var outcomes = new List<StoreOutcome>();
        var failures = new List<string>();
        await Task.WhenAll(lists.Select(async list =>
        {
            try
            {
                var r = await StoreScu.SendAsync(host, port, list, options, OnOutcome, cancellationToken: ct);
                lock (outcomes) outcomes.AddRange(r);
            }
            catch (DicomAssociationException e)
            {
                lock (failures) failures.Add(e.Message);
            }
        }));
        progress.Dispose();
        var elapsed = Stopwatch.GetElapsedTime(started);
        foreach (var f in failures.Distinct()) Console.Error.WriteLine($"error: {host}:{port}: {f}");
        int stored = outcomes.Count(o => o.Stored);
        int notStored = files.Count - stored;
        Console.WriteLine($"{stored} of {files.Count} file(s) stored at {called}@{host}:{port} over {lists.Count} association(s) in {elapsed.TotalSeconds:0.00} s "
            + $"({stored / Math.Max(elapsed.TotalSeconds, 1e-9):0.0} files/s, {bytes / 1e6 / Math.Max(elapsed.TotalSeconds, 1e-9):0.0} MB/s)"
            + (notStored + unreadable > 0 ? $"; {notStored} failed, {unreadable} unreadable" : ""));
        return notStored == 0 && unreadable == 0 && missing.Count == 0 ? 0 : 1;
    }

    public static Command Receive()
    {
        var port = new Option<int>("--port", "-p") { Description = "TCP port to listen on.", DefaultValueFactory = _ => 11112 };
        var output = new Option<DirectoryInfo>("--out", "-o") { Description = "Folder the received instances are written to, as <SOPInstanceUID>.dcm.", Required = true };
        var aet = new Option<string>("--ae-title", "-aet") { Description = "AE title this SCP answers to.", DefaultValueFactory = _ => "AKKAVNA" };
        var bind = new Option<string>("--bind") { Description = "Address to listen on (0.0.0.0 for every interface).", DefaultValueFactory = _ => "0.0.0.0" };
        var maxPdu = new Option<uint>("--max-pdu") { Description = "Largest P-DATA-TF PDU to receive, in bytes.", DefaultValueFactory = _ => 256 * 1024 };
        var fsync = new Option<bool>("--fsync") { Description = "Flush every file to disk before answering (slower; storescp does not)." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log every instance received (refusals are always logged)." };
        var allow = new Option<string[]>("--allow-calling-ae")
        {
            Description = "Calling AE title admitted (repeat for several); without it any calling AE is admitted. Others get A-ASSOCIATE-RJ (calling AE not recognized).",
            AllowMultipleArgumentsPerToken = false,
        };
        var maxAssociations = new Option<int>("--max-associations") { Description = "Associations served at once; more are rejected (transient).", DefaultValueFactory = _ => 256 };
        var timeout = Timeout();
        var cmd = new Command("receive", "Run a C-STORE SCP that writes what it receives as Part 10 files (like dcmtk's storescp). Stops on Ctrl-C or SIGTERM.")
        {
            port, output, aet, bind, maxPdu, fsync, maxAssociations, timeout, verbose, allow,
        };
        cmd.SetAction((r, ct) => RunReceive(r.GetValue(port), r.GetValue(output)!, r.GetValue(aet)!, r.GetValue(bind)!, r.GetValue(maxPdu), r.GetValue(fsync),
            r.GetValue(maxAssociations), r.GetValue(timeout), r.GetValue(verbose), r.GetValue(allow) ?? [], ct));
        return cmd;
    }

    private static async Task<int> RunReceive(int port, DirectoryInfo output, string aet, string bind, uint maxPdu, bool fsync, int maxAssociations, double timeoutSeconds,
        bool verbose, string[] allowedCallers, CancellationToken ct)
    {
        if (ValidateAE([aet, .. allowedCallers]) is { } bad) return Fail(bad);
        if (!IPAddress.TryParse(bind, out var address)) return Fail($"'{bind}' is not an IP address");
        if (maxPdu is < 4096 or > 64 * 1024 * 1024) return Fail("--max-pdu must be between 4096 and 67108864");
        using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff ";
        }).SetMinimumLevel(LogLevel.Information).AddFilter("receive", verbose ? LogLevel.Debug : LogLevel.Information));
        var log = loggerFactory.CreateLogger("receive");
        var association = AssociationOptions(timeoutSeconds) with { MaxReceivePduLength = maxPdu };
        var handler = new LoggingStoreHandler(new FolderStoreHandler(output.FullName, fsync), log);
        var services = new DicomServices
        {
            Policy = new AssociationPolicy
            {
                CalledAETitles = new HashSet<string> { aet },
                CallingAETitles = allowedCallers.ToHashSet(StringComparer.Ordinal),
            },
            Store = handler,
        };
        var server = new DicomServer(new DicomServerOptions { BindAddress = address, Port = port, MaxAssociations = maxAssociations, Association = association },
            services, loggerFactory);
        try
        {
            server.Start();
        }
        catch (System.Net.Sockets.SocketException e)
        {
            return Fail($"cannot listen on {bind}:{port}: {e.Message}");
        }
        var stop = new TaskCompletionSource();
        using var reg = ct.Register(() => stop.TrySetResult());
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.TrySetResult();
        });
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c =>
        {
            c.Cancel = true;
            stop.TrySetResult();
        });
        // Scripts wait for this line (or poll the port) before sending.
        Console.WriteLine($"listening on {server.LocalEndPoint} as {aet}, writing to {output.FullName}");
        await stop.Task;
        log.LogInformation("stopping: {Stored} instance(s) received", handler.Stored);
        await server.StopAsync(TimeSpan.FromSeconds(10));
        return 0;
    }

    private sealed class LoggingStoreHandler(ICStoreHandler inner, ILogger log) : ICStoreHandler
    {
        private int _stored;
        public int Stored => _stored;

        public async ValueTask<IStoreSink> BeginAsync(StoreRequest request, CancellationToken cancellationToken) =>
            new LoggingSink(await inner.BeginAsync(request, cancellationToken), request, this);

        private sealed class LoggingSink(IStoreSink sink, StoreRequest request, LoggingStoreHandler owner) : IStoreSink
        {
            private long _bytes;

            public ValueTask WriteAsync(System.Buffers.ReadOnlySequence<byte> data, CancellationToken cancellationToken)
            {
                _bytes += data.Length;
                return sink.WriteAsync(data, cancellationToken);
            }

            public async ValueTask<DimseResult> CompleteAsync(CancellationToken cancellationToken)
            {
                var result = await sink.CompleteAsync(cancellationToken);
                if (result.Status.IsStored) Interlocked.Increment(ref owner._stored);
                owner.LogStored(request, _bytes, result);
                return result;
            }

            public ValueTask DisposeAsync() => sink.DisposeAsync();
        }

        private void LogStored(StoreRequest request, long bytes, DimseResult result)
        {
            if (result.Status.IsStored)
                log.LogDebug("stored {SopInstanceUid} ({SopClassUid}, {TransferSyntax}, {Bytes} bytes) from {CallingAE}",
                    request.SopInstanceUid, request.SopClassUid, request.TransferSyntax.Uid, bytes, request.Association.CallingAE);
            else
                log.LogWarning("refused {SopInstanceUid} from {CallingAE}: {Status} {Comment}", request.SopInstanceUid, request.Association.CallingAE, result.Status, result.Comment);
        }
    }

    private static DicomAssociationOptions AssociationOptions(double timeoutSeconds, IDicomConnector? connector = null)
    {
        var t = TimeSpan.FromSeconds(Math.Clamp(timeoutSeconds, 0.1, 3600));
        return new DicomAssociationOptions { ArtimTimeout = t, DimseTimeout = t, ConnectTimeout = t, Connector = connector ?? TcpTransport.Tcp };
    }

    private static string? ValidateAE(params string[] titles) =>
        titles.FirstOrDefault(t => !PduCodec.IsValidAETitle(t)) is { } bad ? $"'{bad}' is not a valid AE title (1-16 characters, no backslash or control characters)" : null;

    private static List<string> ExpandPaths(string[] paths, out List<string> missing)
    {
        missing = [];
        var files = new List<string>();
        foreach (var p in paths)
        {
            if (File.Exists(p)) files.Add(p);
            else if (Directory.Exists(p))
                files.AddRange(Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal));
            else missing.Add(p);
        }
        return files;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine("error: " + message);
        return 1;
    }
}
