using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using AkkaVna.Core.Ports;

namespace AkkaVna.Core.Blobs;

/// <summary>A master key: 32 bytes and its ID (the first 16 hex digits of its SHA-256, so it can be named without being shown).</summary>
public sealed class MasterKey
{
    public string Id { get; }
    internal byte[] Key { get; }

    public MasterKey(byte[] key)
    {
        if (key.Length != 32) throw new ArgumentException($"a master key is 32 bytes (AES-256), not {key.Length}", nameof(key));
        Key = key;
        Id = Convert.ToHexStringLower(SHA256.HashData(key))[..16];
    }

    /// <summary>A key from text: 64 hex digits or the base64 of 32 bytes (what a file or an environment variable holds).</summary>
    public static MasterKey Parse(string text, string where)
    {
        string t = text.Trim();
        try
        {
            if (t.Length == 64 && t.All(Uri.IsHexDigit)) return new MasterKey(Convert.FromHexString(t));
            var bytes = Convert.FromBase64String(t);
            if (bytes.Length == 32) return new MasterKey(bytes);
        }
        catch (FormatException)
        {
        }
        throw new ArgumentException($"{where} does not hold a master key: 32 bytes as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)");
    }
}

/// <summary>
/// The per-study data keys of encryption at rest: made at random when a study's first blob is written, kept wrapped by
/// the current master key (AES-256-GCM, the study and key ID as associated data) in the index's <c>study_keys</c>,
/// unwrapped on use and cached. A key wrapped by a previous master key (a rotation under way) is read with it and
/// wrapped again with the current one. Destroying a study deletes its key: its blobs, wherever copies of them lie,
/// cannot be read again (crypto-shredding).
/// </summary>
public sealed class StudyKeyring(ILifecycleStore store, MasterKey current, IReadOnlyList<MasterKey> previous, TimeProvider time)
{
    private const int MaxCached = 10_000;
    private readonly ConcurrentDictionary<string, (string KeyId, byte[] Key)> _byStudy = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte[]> _byId = new(StringComparer.Ordinal);

    public string MasterKeyId => current.Id;

    /// <summary>The study's data key, made and stored when it has none.</summary>
    public async Task<(string KeyId, byte[] Key)> KeyOfStudyAsync(string studyInstanceUid, CancellationToken cancellationToken)
    {
        if (_byStudy.TryGetValue(studyInstanceUid, out var cached)) return cached;
        var stored = await store.GetStudyKeyOfAsync(studyInstanceUid, cancellationToken).ConfigureAwait(false);
        if (stored is null)
        {
            byte[] fresh = RandomNumberGenerator.GetBytes(32);
            string id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            stored = await store.PutStudyKeyAsync(new WrappedStudyKey(studyInstanceUid, id, current.Id, Wrap(current, studyInstanceUid, id, fresh), time.GetUtcNow()),
                cancellationToken).ConfigureAwait(false);
        }
        var key = (stored.KeyId, await UnwrapAsync(stored, cancellationToken).ConfigureAwait(false));
        Remember(studyInstanceUid, key);
        return key;
    }

    /// <summary>A data key by the ID a blob names; throws <see cref="StudyKeyMissingException"/> when it was destroyed (or never stored).</summary>
    public async Task<byte[]> KeyAsync(string keyId, CancellationToken cancellationToken)
    {
        if (_byId.TryGetValue(keyId, out var cached)) return cached;
        var stored = await store.GetStudyKeyAsync(keyId, cancellationToken).ConfigureAwait(false) ?? throw new StudyKeyMissingException(keyId);
        var key = await UnwrapAsync(stored, cancellationToken).ConfigureAwait(false);
        Remember(stored.StudyInstanceUid, (keyId, key));
        return key;
    }

    /// <summary>Destroys a study's data key here and in the store.</summary>
    public async Task ShredAsync(string studyInstanceUid, CancellationToken cancellationToken)
    {
        if (_byStudy.TryRemove(studyInstanceUid, out var k)) _byId.TryRemove(k.KeyId, out _);
        await store.DeleteStudyKeyAsync(studyInstanceUid, cancellationToken).ConfigureAwait(false);
    }

    private void Remember(string study, (string KeyId, byte[] Key) key)
    {
        if (_byStudy.Count > MaxCached)
        {
            _byStudy.Clear();
            _byId.Clear();
        }
        _byStudy[study] = key;
        _byId[key.KeyId] = key.Key;
    }

    private async Task<byte[]> UnwrapAsync(WrappedStudyKey stored, CancellationToken cancellationToken)
    {
        var master = stored.MasterKeyId == current.Id ? current : previous.FirstOrDefault(m => m.Id == stored.MasterKeyId)
            ?? throw new CryptographicException($"the data key {stored.KeyId} of study {stored.StudyInstanceUid} is wrapped by master key {stored.MasterKeyId}, "
                + $"which is neither the current one ({current.Id}) nor a previous one (akka-vna.encryption.previous-master-keys)");
        byte[] key = Unwrap(master, stored);
        if (master != current)
            await store.RewrapStudyKeyAsync(stored with { MasterKeyId = current.Id, Wrapped = Wrap(current, stored.StudyInstanceUid, stored.KeyId, key) }, master.Id,
                cancellationToken).ConfigureAwait(false);
        return key;
    }

    private static byte[] Aad(string study, string keyId) => Encoding.ASCII.GetBytes(study + "\n" + keyId);

    private static byte[] Wrap(MasterKey master, string study, string keyId, byte[] key)
    {
        byte[] nonce = RandomNumberGenerator.GetBytes(12), sealedKey = new byte[32], tag = new byte[16];
        using var gcm = new AesGcm(master.Key, 16);
        gcm.Encrypt(nonce, key, sealedKey, tag, Aad(study, keyId));
        return [.. nonce, .. sealedKey, .. tag];
    }

    private static byte[] Unwrap(MasterKey master, WrappedStudyKey stored)
    {
        if (stored.Wrapped.Length != 60) throw new CryptographicException($"the data key {stored.KeyId} is not 60 wrapped bytes");
        byte[] key = new byte[32];
        using var gcm = new AesGcm(master.Key, 16);
        gcm.Decrypt(stored.Wrapped.AsSpan(0, 12), stored.Wrapped.AsSpan(12, 32), stored.Wrapped.AsSpan(44, 16), key, Aad(stored.StudyInstanceUid, stored.KeyId));
        return key;
    }
}

/// <summary>A blob names a data key the keyring does not have: its study was destroyed (crypto-shredded), or the key store is not this archive's.</summary>
public sealed class StudyKeyMissingException(string keyId)
    : IOException($"data key {keyId} does not exist: the study was destroyed (its key shredded), or this index is not the one its blobs were written with")
{
    public string KeyId { get; } = keyId;
}
