namespace AkkaVna.Core;

/// <summary>
/// FNV-1a over a string's UTF-16 code units: stable across processes, machines and .NET versions (unlike
/// <see cref="string.GetHashCode()"/>), for what must not move once placed — blob folders and shard assignments.
/// </summary>
public static class StableHash
{
    public static uint Fnv1a(string s)
    {
        uint hash = 2166136261;
        foreach (char c in s) hash = (hash ^ c) * 16777619;
        return hash;
    }
}
