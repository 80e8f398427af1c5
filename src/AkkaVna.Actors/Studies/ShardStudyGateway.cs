using Akka.Actor;
using AkkaVna.Core.Ports;
using AkkaVna.Core.Studies;

namespace AkkaVna.Actors.Studies;

/// <summary>The study gateway over the shard region: a message to the study's actor, wherever sharding put it, and its answer.</summary>
public sealed class ShardStudyGateway(IActorRef studies) : IStudyGateway
{
    public IActorRef Region { get; } = studies;

    public Task<StoreInstanceResult> StoreAsync(StoreInstance command, TimeSpan timeout, CancellationToken cancellationToken) =>
        AskAsync<StoreInstanceResult>(command, timeout, cancellationToken);

    public Task<StudySummary> GetSummaryAsync(string studyInstanceUid, TimeSpan timeout, CancellationToken cancellationToken) =>
        AskAsync<StudySummary>(new GetStudySummary(studyInstanceUid), timeout, cancellationToken);

    private async Task<T> AskAsync<T>(object message, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            return await Region.Ask<T>(message, timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (AskTimeoutException e)
        {
            throw new TimeoutException($"the study actor did not answer within {timeout}", e);
        }
    }
}
