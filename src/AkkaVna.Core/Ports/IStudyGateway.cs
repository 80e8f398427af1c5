using AkkaVna.Core.Studies;

namespace AkkaVna.Core.Ports;

/// <summary>
/// How the use cases reach a study's actor, wherever the cluster put it: the actor commits (journal and index) and
/// answers. The actors' project implements it over the shard region; a test can implement it over anything.
/// </summary>
public interface IStudyGateway
{
    /// <summary>Commits an instance in its study; throws <see cref="TimeoutException"/> when no answer comes within <paramref name="timeout"/> (the outcome is then unknown).</summary>
    Task<StoreInstanceResult> StoreAsync(StoreInstance command, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>A study as its actor sees it, answered after what is in flight (a re-projection too); throws <see cref="TimeoutException"/> when no answer comes.</summary>
    Task<StudySummary> GetSummaryAsync(string studyInstanceUid, TimeSpan timeout, CancellationToken cancellationToken);
}
