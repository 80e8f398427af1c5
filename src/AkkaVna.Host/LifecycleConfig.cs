using Akka.Configuration;
using AkkaVna.Core.Lifecycle;
using AkkaVna.Core.Model;

namespace AkkaVna.Host;

/// <summary>Reads <c>akka-vna.lifecycle</c>: the rules (each named, first match wins), the watch and the destruction settings.</summary>
internal static class LifecycleConfig
{
    public static LifecycleSettings Read(Config c, IReadOnlyCollection<string> stores)
    {
        TimeSpan Time(string path) => c.GetTimeSpan(path, allowInfinite: false) is var t && t > TimeSpan.Zero ? t
            : throw new ArchiveConfigException($"akka-vna.{path} must be a positive duration");
        RetentionPeriod Period(Config rule, string key, string where)
        {
            try
            {
                return RetentionPeriod.Parse(rule.GetString(key) ?? "");
            }
            catch (FormatException e)
            {
                throw new ArchiveConfigException($"{where}.{key}: {e.Message}");
            }
        }
        var rules = new List<LifecycleRule>();
        foreach (var (where, rule) in CompressionConfig.Objects(c, "lifecycle.rules"))
        {
            string name = rule.GetString("name") is { Length: > 0 and <= 64 } nm ? nm : throw new ArchiveConfigException($"{where}.name must be set (at most 64 characters): it names the rule in plans, tombstones and the audit trail");
            if (rules.Any(r => r.Name == name)) throw new ArchiveConfigException($"{where}.name '{name}' is the name of an earlier rule");
            var match = CompressionConfig.Match(rule, where, LifecycleRule.Attributes);
            var from = (rule.GetString("from") ?? "study-date") switch
            {
                "study-date" => RetentionAnchor.StudyDate,
                "received" => RetentionAnchor.Received,
                "last-study-of-patient" => RetentionAnchor.LastStudyOfPatient,
                var other => throw new ArchiveConfigException($"{where}.from is '{other}': study-date, received or last-study-of-patient"),
            };
            var tiers = new List<TierStep>();
            foreach (var step in rule.GetValue("tiers")?.GetArray() ?? [])
            {
                var t = new Config(new Akka.Configuration.Hocon.HoconRoot(step));
                string store = t.GetString("store") ?? "";
                if (!stores.Contains(store))
                    throw new ArchiveConfigException($"{where}.tiers: store '{store}' is not a blob store of this node ({string.Join(", ", stores)}; akka-vna.blobs.stores names more)");
                tiers.Add(new TierStep(Period(t, "after", where + ".tiers"), store));
            }
            rules.Add(new LifecycleRule(name, match, rule.HasPath("keep") ? Period(rule, "keep", where) : null, from,
                rule.HasPath("until-patient-age") ? Period(rule, "until-patient-age", where) : null, tiers)
            {
                PatientAgeBelow = rule.HasPath("patient-age-below") ? Period(rule, "patient-age-below", where) : null,
                PatientAgeAtLeast = rule.HasPath("patient-age-at-least") ? Period(rule, "patient-age-at-least", where) : null,
            });
        }
        var resend = (c.GetString("lifecycle.destruction.resend") ?? "refuse") switch
        {
            "refuse" => DestroyedResend.Refuse,
            "accept-as-new" => DestroyedResend.AcceptAsNew,
            var other => throw new ArchiveConfigException($"akka-vna.lifecycle.destruction.resend is '{other}': refuse or accept-as-new"),
        };
        long moveRate = c.HasPath("lifecycle.move-rate") ? c.GetByteSize("lifecycle.move-rate") ?? 0 : 0;
        if (moveRate < 0) throw new ArchiveConfigException("akka-vna.lifecycle.move-rate must be a size per second (e.g. 100MiB), or 0 for no limit");
        return new LifecycleSettings(c.GetBoolean("lifecycle.enabled"), rules, Time("lifecycle.poll"), Time("lifecycle.hold-recheck"),
            c.GetBoolean("lifecycle.destruction.require-approval"), resend) { MoveBytesPerSecond = moveRate };
    }

    /// <summary>The blob stores a tier step may name: the primary and every <c>akka-vna.blobs.stores</c> entry.</summary>
    public static IReadOnlyCollection<string> StoreNames(IEnumerable<BlobStoreSettings> stores) => [BlobRef.PrimaryStore, .. stores.Select(s => s.Name)];
}
