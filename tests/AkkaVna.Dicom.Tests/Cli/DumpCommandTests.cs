using System.Text.Json;
using AkkaVna.Testing;

namespace AkkaVna.Dicom.Tests.Cli;

/// <summary>The real akka-vna executable, as a user runs it.</summary>
public sealed class DumpCommandTests
{
    private static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "akka-vna.dll");

    private static Tool.Result AkkaVna(params string[] args) => Tool.Run("dotnet", [Cli, .. args], TimeSpan.FromSeconds(60));

    [Fact]
    public void Should_list_a_file_like_dcmdump()
    {
        var r = AkkaVna("dump", Corpus.Get("pydicom/MR_small.dcm").Path);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("(0010,0010) PN [CompressedSamples^MR1]", r.StdOut);
        Assert.Contains("PatientName", r.StdOut);
        Assert.Contains("# Used TransferSyntax: Explicit VR Little Endian", r.StdOut);
    }

    [Fact]
    public void Should_print_the_dicom_json_model()
    {
        var r = AkkaVna("dump", "--json", Corpus.Get("pydicom/MR_small.dcm").Path);
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.Equal("PN", doc.RootElement.GetProperty("00100010").GetProperty("vr").GetString());
        Assert.Equal("CompressedSamples^MR1", doc.RootElement.GetProperty("00100010").GetProperty("Value")[0].GetProperty("Alphabetic").GetString());
        Assert.True(doc.RootElement.GetProperty("7FE00010").TryGetProperty("InlineBinary", out _));
    }

    [Fact]
    public void Should_reference_large_values_by_bulk_data_uri_when_asked()
    {
        var r = AkkaVna("dump", "--json", "--bulk-data", "uri", Corpus.Get("dicomParser/CT1_UNC.explicit_little_endian.dcm").Path);
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.StdOut);
        string uri = doc.RootElement.GetProperty("7FE00010").GetProperty("BulkDataURI").GetString()!;
        Assert.StartsWith("file://", uri);
        Assert.Contains("length=524288", uri);
    }

    [Fact]
    public void Should_print_one_line_with_file_and_offset_for_a_malformed_file_and_exit_1()
    {
        string bad = Corpus.Get("pydicom/MR_truncated.dcm").Path;
        string good = Corpus.Get("pydicom/MR_small.dcm").Path;
        var r = AkkaVna("dump", bad, good);
        Assert.Equal(1, r.ExitCode);
        var lines = r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(lines);
        Assert.StartsWith($"error: {bad}: byte offset ", line);
        Assert.DoesNotContain("   at ", r.StdErr); // no stack trace
        Assert.Contains("(0010,0010) PN [CompressedSamples^MR1]", r.StdOut); // the good file is still listed
    }

    [Fact]
    public void Should_explain_itself_with_help()
    {
        var r = AkkaVna("dump", "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("--json", r.StdOut);
        Assert.Contains("--bulk-data", r.StdOut);
    }

    [Fact]
    public void Should_fail_cleanly_for_a_missing_file()
    {
        var r = AkkaVna("dump", "/nonexistent/file.dcm");
        Assert.NotEqual(0, r.ExitCode);
        Assert.DoesNotContain("   at ", r.StdErr);
    }
}
