using AkkaVna.Core.Ports;

namespace AkkaVna.Core.Lifecycle;

/// <summary>One line of the plan: what happens to a study by the time asked (move, destroy, or held), by which rule, and why.</summary>
public sealed record PlanStep(string StudyInstanceUid, string PatientId, string Rule, string Action, DateTimeOffset At, string? Store, IReadOnlyList<string> Holds, string? Note);

/// <summary>The whole archive planned at one time: what <c>lifecycle plan</c> and <c>GET /admin/lifecycle/plan</c> list.</summary>
public static class LifecyclePlanScan
{
    /// <summary>
    /// Every study something happens to by <paramref name="at"/> (a move, a destruction, or a destruction a hold stops),
    /// a study at a time (memory bounded by one study's facts, whatever the archive holds).
    /// </summary>
    public static async IAsyncEnumerable<PlanStep> RunAsync(IArchiveIndex index, LifecycleSettings settings, DateTimeOffset at,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        if (settings.Rules.Count == 0) yield break;
        var holds = await index.Lifecycle.ListHoldsAsync(includeReleased: false, ct).ConfigureAwait(false);
        var needed = settings.MatchedAttributes;
        await foreach (var study in index.ScanStudiesAsync(ct).ConfigureAwait(false))
        {
            var facts = await LifecycleFacts.ReadAsync(index, study.StudyInstanceUid, needed, ct).ConfigureAwait(false);
            if (facts is null) continue;
            var plan = LifecyclePlanner.Plan(facts, settings.Rules, holds, at);
            if (plan.Rule is null) continue;
            var held = plan.Holds.Select(h => h.Id).ToList();
            if (plan.DestroyAt is { } d && d <= at)
            {
                yield return new PlanStep(study.StudyInstanceUid, study.PatientId, plan.Rule, plan.Held ? "held" : "destroy", d, null, held,
                    plan.Held ? "due for destruction, stopped by a legal hold" : plan.Note);
                continue;
            }
            if (plan.Tiers.LastOrDefault(t => t.At <= at) is { } tier)
            {
                string? current = null;
                await foreach (var i in index.ListInstancesAsync(study.StudyInstanceUid, ct).ConfigureAwait(false))
                {
                    current = i.Blob.Store;
                    break;
                }
                if (current != tier.Store) yield return new PlanStep(study.StudyInstanceUid, study.PatientId, plan.Rule, "move", tier.At, tier.Store, held, null);
            }
        }
    }
}
