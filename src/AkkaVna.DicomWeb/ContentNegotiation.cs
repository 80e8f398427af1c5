using System.Globalization;

namespace AkkaVna.DicomWeb;

/// <summary>A representation a DICOMweb resource can be served in: a media type, and for multipart/related the type of its parts.</summary>
public readonly record struct MediaOffer(string Type, string? PartType = null)
{
    public bool IsMultipart => PartType is not null;

    public override string ToString() => PartType is null ? Type : $"{Type}; type=\"{PartType}\"";

    public static MediaOffer Multipart(string partType) => new("multipart/related", partType);
}

/// <summary>What an Accept header chose among the offers, with the transfer syntax it asked for (null: none named).</summary>
public readonly record struct MediaChoice(MediaOffer Offer, string? TransferSyntax);

/// <summary>
/// Accept-header negotiation as PS3.18 8.7 wants it (RFC 9110 12.5.1 media ranges with q-values): the server offers the
/// representations it can produce, the best-weighted range that matches one wins (ties go to the server's order), and
/// when none matches the answer is 406 naming what is on offer — never a representation the client did not ask for.
/// Leniency for clients in the field: a single-part range (<c>application/dicom</c>) also takes the multipart/related of
/// that type, as many viewers ask that way.
/// </summary>
public static class ContentNegotiation
{
    private readonly record struct MediaRange(string Type, string? PartType, string? TransferSyntax, double Quality);

    /// <summary>The chosen representation; throws <see cref="NotAcceptableException"/> when the header takes none of <paramref name="offers"/>.</summary>
    public static MediaChoice Negotiate(string? accept, params MediaOffer[] offers)
    {
        if (string.IsNullOrWhiteSpace(accept)) return new MediaChoice(offers[0], null);
        MediaChoice? best = null;
        (double Quality, int Specificity, int Order) bestRank = (0, -1, int.MaxValue);
        foreach (var range in Parse(accept))
        {
            if (range.Quality <= 0) continue;
            for (int i = 0; i < offers.Length; i++)
            {
                int specificity = Specificity(range, offers[i]);
                if (specificity < 0) continue;
                // Higher q first, then the range that names the offer most exactly, then the server's order.
                var rank = (range.Quality, specificity, i);
                if (rank.Quality > bestRank.Quality || (rank.Quality == bestRank.Quality
                    && (rank.specificity > bestRank.Specificity || (rank.specificity == bestRank.Specificity && i < bestRank.Order))))
                {
                    best = new MediaChoice(offers[i], range.TransferSyntax);
                    bestRank = rank;
                }
            }
        }
        return best ?? throw new NotAcceptableException(accept, offers);
    }

    /// <summary>How exactly a range names an offer: 3 the type itself, 2 its parts' type (multipart leniency), 1 type/*, 0 */*; -1 not at all.</summary>
    private static int Specificity(MediaRange range, MediaOffer offer)
    {
        if (range.Type == "*/*") return 0;
        if (range.Type.EndsWith("/*", StringComparison.Ordinal))
            return offer.Type.StartsWith(range.Type[..^1], StringComparison.Ordinal) ? 1 : -1;
        if (range.Type == offer.Type) return range.PartType is null || range.PartType == offer.PartType ? 3 : -1;
        // "application/dicom" for the multipart/related of application/dicom parts.
        return offer.IsMultipart && range.PartType is null && range.Type == offer.PartType ? 2 : -1;
    }

    private static IEnumerable<MediaRange> Parse(string accept)
    {
        foreach (var item in accept.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = item.Split(';', StringSplitOptions.TrimEntries);
            string? type = null, syntax = null;
            double q = 1;
            foreach (var p in parts.Skip(1))
            {
                int eq = p.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0) continue;
                string name = p[..eq].Trim().ToLowerInvariant(), value = p[(eq + 1)..].Trim().Trim('"');
                switch (name)
                {
                    case "type": type = value.ToLowerInvariant(); break;
                    case "transfer-syntax": syntax = value; break;
                    case "q": q = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? Math.Clamp(v, 0, 1) : 1; break;
                }
            }
            yield return new MediaRange(parts[0].ToLowerInvariant(), type, syntax, q);
        }
    }
}

/// <summary>No offered representation is acceptable (HTTP 406); the message names what is on offer.</summary>
public sealed class NotAcceptableException(string accept, IReadOnlyList<MediaOffer> offers)
    : Exception($"the Accept header '{accept}' takes none of the media types this resource is served in: {string.Join(", ", offers)}");
