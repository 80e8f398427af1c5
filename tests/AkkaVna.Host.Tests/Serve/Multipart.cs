using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.WebUtilities;

namespace AkkaVna.Host.Tests.Serve;

/// <summary>DICOMweb responses as a client reads them.</summary>
internal static class Multipart
{
    /// <summary>A STOW-RS body: multipart/related with one part per file.</summary>
    public static MultipartContent Related(IEnumerable<string> paths, string type = "application/dicom")
    {
        var content = new MultipartContent("related");
        content.Headers.ContentType!.Parameters.Add(new NameValueHeaderValue("type", $"\"{type}\""));
        foreach (var p in paths)
        {
            var part = new StreamContent(File.OpenRead(p));
            part.Headers.ContentType = new MediaTypeHeaderValue(type);
            content.Add(part);
        }
        return content;
    }

    /// <summary>The parts of a multipart/related response (ASP.NET's reader), failing the test on any other answer.</summary>
    public static async Task<List<(string ContentType, byte[] Body)>> PartsAsync(HttpClient http, string url, string? accept = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (accept is not null) request.Headers.TryAddWithoutValidation("Accept", accept);
        using var rsp = await http.SendAsync(request);
        Assert.True(rsp.StatusCode == HttpStatusCode.OK, $"{url}: {rsp.StatusCode} {await rsp.Content.ReadAsStringAsync()}");
        Assert.Equal("multipart/related", rsp.Content.Headers.ContentType?.MediaType);
        string boundary = rsp.Content.Headers.ContentType!.Parameters.First(p => p.Name == "boundary").Value!.Trim('"');
        var reader = new MultipartReader(boundary, await rsp.Content.ReadAsStreamAsync()) { BodyLengthLimit = null };
        var parts = new List<(string, byte[])>();
        while (await reader.ReadNextSectionAsync() is { } section)
        {
            using var ms = new MemoryStream();
            await section.Body.CopyToAsync(ms);
            parts.Add((section.ContentType ?? "", ms.ToArray()));
        }
        return parts;
    }
}
