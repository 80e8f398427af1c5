using AkkaVna.Core.Compression;

namespace AkkaVna.Core.Tests.Compression;

public sealed class CompressionRulesTests
{
    private static Dictionary<string, string?> Attributes(string modality, string sopClass = "1.2.840.10008.5.1.4.1.1.2") => new(StringComparer.Ordinal)
    {
        ["Modality"] = modality,
        ["SOPClassUID"] = sopClass,
        ["TransferSyntaxUID"] = "1.2.840.10008.1.2.1",
    };

    private static readonly CompressionRules Rules = new([
        new CompressionRule(new Dictionary<string, IReadOnlyList<string>> { ["Modality"] = ["XA", "US"] }, null),
        new CompressionRule(new Dictionary<string, IReadOnlyList<string>> { ["Modality"] = ["CT", "MR"] }, "1.2.840.10008.1.2.4.90", MinSize: 1024),
        new CompressionRule(new Dictionary<string, IReadOnlyList<string>> { ["SOPClassUID"] = ["1.2.840.10008.5.1.4.1.1.1*"] }, "1.2.840.10008.1.2.5"),
        new CompressionRule(new Dictionary<string, IReadOnlyList<string>>(), "1.2.840.10008.1.2.4.80"),
    ]);

    [Fact]
    public void The_first_matching_rule_decides_and_a_rule_without_a_syntax_leaves_the_instance_as_it_is()
    {
        Assert.Null(Rules.TargetFor(Attributes("XA"), 10_000)); // matched by the first rule: left
        Assert.Equal("1.2.840.10008.1.2.4.90", Rules.TargetFor(Attributes("CT"), 10_000));
        // Too small for the CT rule: the next that matches (prefix of the SOP class), then the catch-all.
        Assert.Equal("1.2.840.10008.1.2.5", Rules.TargetFor(Attributes("CT", "1.2.840.10008.5.1.4.1.1.1.1"), 100));
        Assert.Equal("1.2.840.10008.1.2.4.80", Rules.TargetFor(Attributes("CT"), 100));
        Assert.Equal("1.2.840.10008.1.2.4.80", Rules.TargetFor(Attributes("DX", "1.2.840.10008.5.1.4.1.1.2"), 100));
        // An attribute the instance does not have never matches a rule that names it.
        Assert.Equal("1.2.840.10008.1.2.4.80", Rules.TargetFor(new Dictionary<string, string?> { ["Modality"] = null }, 10_000));
        Assert.Null(new CompressionRules([]).TargetFor(Attributes("CT"), 10_000));
    }
}
