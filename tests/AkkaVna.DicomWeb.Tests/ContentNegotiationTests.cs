using AkkaVna.DicomWeb;

namespace AkkaVna.DicomWeb.Tests;

public sealed class ContentNegotiationTests
{
    private static readonly MediaOffer Json = new("application/dicom+json"), PlainJson = new("application/json");
    private static readonly MediaOffer DicomParts = MediaOffer.Multipart("application/dicom"), OctetParts = MediaOffer.Multipart("application/octet-stream");
    private static readonly MediaOffer Octets = new("application/octet-stream");

    [Theory]
    [InlineData(null, "application/dicom+json")]
    [InlineData("", "application/dicom+json")]
    [InlineData("*/*", "application/dicom+json")]
    [InlineData("application/*", "application/dicom+json")]
    [InlineData("application/json", "application/json")]
    [InlineData("application/dicom+json;q=0.5, application/json", "application/json")]
    [InlineData("text/html, application/json;q=0.1", "application/json")]
    public void The_best_weighted_range_picks_among_the_offers(string? accept, string chosen) =>
        Assert.Equal(chosen, ContentNegotiation.Negotiate(accept, Json, PlainJson).Offer.Type);

    [Theory]
    [InlineData("text/html")]
    [InlineData("multipart/related; type=\"application/dicom+xml\"")]
    [InlineData("application/dicom+json;q=0, application/json;q=0")]
    public void Nothing_acceptable_names_what_is_on_offer(string accept)
    {
        var e = Assert.Throws<NotAcceptableException>(() => ContentNegotiation.Negotiate(accept, Json, PlainJson));
        Assert.Contains("application/dicom+json, application/json", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_single_part_range_takes_its_multipart_unless_the_single_part_itself_is_offered()
    {
        Assert.Equal(DicomParts, ContentNegotiation.Negotiate("application/dicom", DicomParts).Offer);
        Assert.Equal(Octets, ContentNegotiation.Negotiate("application/octet-stream", OctetParts, Octets).Offer);
        Assert.Equal(OctetParts, ContentNegotiation.Negotiate("multipart/related; type=\"application/octet-stream\"", OctetParts, Octets).Offer);
        Assert.Equal(OctetParts, ContentNegotiation.Negotiate("multipart/related", OctetParts, Octets).Offer);
    }

    [Fact]
    public void The_transfer_syntax_of_the_chosen_range_comes_back()
    {
        var choice = ContentNegotiation.Negotiate("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1", DicomParts);
        Assert.Equal("1.2.840.10008.1.2.1", choice.TransferSyntax);
        Assert.Equal("*", ContentNegotiation.Negotiate("multipart/related; type=application/dicom; transfer-syntax=*", DicomParts).TransferSyntax);
    }
}
