using System.Text.Json;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;

namespace AkkaVna.Host;

/// <summary>A member of the cluster as one node sees it, with the study shards and active study actors it hosts.</summary>
public sealed record ClusterMemberReport(string Address, string Status, IReadOnlyList<string> Roles, bool Reachable, bool Leader, bool Self,
    int? Shards, int? ActiveStudies);

/// <summary>What <c>GET /admin/cluster</c> answers and <c>akka-vna cluster status</c> prints.</summary>
public sealed record ClusterReport(string Self, string? Leader, IReadOnlyList<ClusterMemberReport> Members, IReadOnlyList<string> Unreachable,
    int TotalShards, int TotalActiveStudies, string? ShardStatsError)
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>
    /// The membership from this node's cluster state and, from the shard region, the shards and study actors on every
    /// member (when the regions answer within <paramref name="timeout"/>; otherwise the members alone, with the reason).
    /// </summary>
    public static async Task<ClusterReport> GetAsync(ActorSystem system, IActorRef studies, TimeSpan timeout)
    {
        var cluster = Cluster.Get(system);
        var state = cluster.State;
        var unreachable = state.Unreachable.Select(m => m.Address).ToHashSet();
        IReadOnlyDictionary<Address, ShardRegionStats>? stats = null;
        string? error = null;
        try
        {
            var answer = await studies.Ask<ClusterShardingStats>(new GetClusterShardingStats(timeout), timeout + TimeSpan.FromSeconds(2));
            stats = answer.Regions;
        }
        catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
        {
            error = $"the shard regions did not all answer within {timeout.TotalSeconds:0} s";
        }
        var members = state.Members.Concat(state.Unreachable.Where(u => !state.Members.Contains(u)))
            .OrderBy(m => m.Address.ToString(), StringComparer.Ordinal)
            .Select(m =>
            {
                var region = stats is not null && stats.TryGetValue(m.Address, out var r) ? r : null;
                return new ClusterMemberReport(m.Address.ToString(), m.Status.ToString(), [.. m.Roles.Order(StringComparer.Ordinal)],
                    !unreachable.Contains(m.Address), state.Leader == m.Address, m.Address == cluster.SelfAddress,
                    region?.Stats.Count, region?.Stats.Values.Sum());
            }).ToList();
        return new ClusterReport(cluster.SelfAddress.ToString(), state.Leader?.ToString(), members, [.. unreachable.Select(a => a.ToString()).Order(StringComparer.Ordinal)],
            members.Sum(m => m.Shards ?? 0), members.Sum(m => m.ActiveStudies ?? 0), error);
    }
}
