using System.Security.Cryptography;
using AkkaVna.Blobs.FileSystem;
using AkkaVna.Core.Blobs;
using AkkaVna.Core.Model;
using AkkaVna.Core.Ports;
using AkkaVna.Index.Sqlite;
using AkkaVna.Testing;
using AkkaVna.Testing.Contracts;
using Microsoft.Extensions.Logging.Abstractions;

namespace AkkaVna.Adapters.Tests.Blobs;

/// <summary>
/// Encryption at rest over a real filesystem store and a real SQLite key store: what is on disk is ciphertext, what is
/// read is the plaintext (any range), an altered blob fails rather than lies, a destroyed study's blobs cannot be read
/// again, recovery reads staged blobs through the keyring, and a master key rotation keeps every key readable.
/// </summary>
public sealed class EncryptedBlobStoreTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;
    private readonly TempDir _dir = new();
    private SqliteArchiveIndex _index = null!;
    private FileSystemBlobStore _files = null!;
    private readonly MasterKey _master = new(RandomNumberGenerator.GetBytes(32));

    public async Task InitializeAsync()
    {
        _index = new SqliteArchiveIndex(_dir.File("index.db"), NullLogger.Instance);
        await _index.InitializeAsync(None);
        _files = new FileSystemBlobStore(_dir.File("blobs"));
    }

    public async Task DisposeAsync()
    {
        await _files.DisposeAsync();
        await _index.DisposeAsync();
        _dir.Dispose();
    }

    private EncryptedBlobStore Store(MasterKey? master = null, params MasterKey[] previous) =>
        new(_files, new StudyKeyring(_index.Lifecycle, master ?? _master, previous, TimeProvider.System));

    private static async Task<(BlobRef Blob, string Sha)> WriteAsync(IBlobStore store, string study, string sop, byte[] content, int piece = 10_000)
    {
        await using var w = await store.CreateAsync(None);
        for (int at = 0; at < content.Length; at += piece) await w.WriteAsync(content.AsMemory(at, Math.Min(piece, content.Length - at)), None);
        string sha = await w.SealAsync(true, None);
        var blob = store.RefFor(study, study + ".1", sop);
        await w.PrepareAsync(blob, None);
        await w.PromoteAsync(blob, None);
        return (blob, sha);
    }

    private static async Task<byte[]> ReadAsync(IBlobStore store, BlobRef blob, long offset = 0, int? count = null)
    {
        await using var content = await store.OpenAsync(blob, None);
        await using var s = content.OpenRead();
        s.Seek(offset, SeekOrigin.Begin);
        var buffer = new byte[count ?? (int)(content.Length - offset)];
        await s.ReadExactlyAsync(buffer, None);
        return buffer;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(EncryptedBlobStore.ChunkSize - 1)]
    [InlineData(EncryptedBlobStore.ChunkSize)]
    [InlineData(EncryptedBlobStore.ChunkSize + 1)]
    [InlineData(3 * EncryptedBlobStore.ChunkSize + 12_345)]
    public async Task What_is_read_is_what_was_written_and_what_is_stored_is_ciphertext(int size)
    {
        var store = Store();
        byte[] plain = new byte[size];
        new Random(size).NextBytes(plain);
        if (size >= 4) "DICM"u8.CopyTo(plain);
        var (blob, sha) = await WriteAsync(store, "1.2.3", "1.2.3.1.1", plain);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(plain)), sha); // the integrity record is the plaintext's
        Assert.Equal(plain, await ReadAsync(store, blob));
        // On disk: not the plaintext, and its length maps back to the plaintext's (what verify compares).
        string path = Directory.GetFiles(_dir.File("blobs"), "*.dcm", SearchOption.AllDirectories).Single();
        byte[] stored = await File.ReadAllBytesAsync(path);
        Assert.Equal(size, EncryptedBlobStore.PlainLength(stored.Length));
        if (size >= 4) Assert.Equal(-1, stored.AsSpan().IndexOf("DICM"u8));
        var listing = Assert.Single(await store.ListAsync(None).ToListAsync());
        Assert.Equal(size, listing.Length);
        await using var content = await store.OpenAsync(blob, None);
        Assert.Equal(size, content.Length);
    }

    [Fact]
    public async Task Any_range_is_read_decrypting_only_what_it_covers()
    {
        var store = Store();
        byte[] plain = RandomNumberGenerator.GetBytes(5 * EncryptedBlobStore.ChunkSize + 77);
        var (blob, _) = await WriteAsync(store, "1.2.3", "1.2.3.1.2", plain, piece: 7_777);
        foreach (var (offset, count) in new[] { (0L, 10), (65_530L, 20), (3L * 65_536, 65_536), (plain.Length - 5L, 5), (100_000L, 200_000) })
            Assert.Equal(plain.AsSpan((int)offset, count).ToArray(), await ReadAsync(store, blob, offset, count));
    }

    [Fact]
    public async Task An_altered_or_truncated_blob_fails_its_check_instead_of_giving_wrong_bytes()
    {
        var store = Store();
        byte[] plain = RandomNumberGenerator.GetBytes(3 * EncryptedBlobStore.ChunkSize);
        var (blob, _) = await WriteAsync(store, "1.2.3", "1.2.3.1.3", plain);
        string path = Directory.GetFiles(_dir.File("blobs"), "*.dcm", SearchOption.AllDirectories).Single();
        byte[] stored = await File.ReadAllBytesAsync(path);
        stored[100_000] ^= 0x01;
        await File.WriteAllBytesAsync(path, stored);
        await Assert.ThrowsAsync<InvalidDataException>(() => ReadAsync(store, blob));
        // The first chunk is intact and still reads; the damage is found where it is.
        Assert.Equal(plain.AsSpan(0, 1000).ToArray(), await ReadAsync(store, blob, 0, 1000));
        await File.WriteAllBytesAsync(path, stored[..^200]);
        await Assert.ThrowsAsync<InvalidDataException>(() => ReadAsync(store, blob));
    }

    [Fact]
    public async Task A_destroyed_studys_key_is_gone_and_its_blobs_can_no_longer_be_read_while_other_studies_can()
    {
        var keyring = new StudyKeyring(_index.Lifecycle, _master, [], TimeProvider.System);
        var store = new EncryptedBlobStore(_files, keyring);
        byte[] plain = RandomNumberGenerator.GetBytes(1000);
        var (doomed, _) = await WriteAsync(store, "1.2.3", "1.2.3.1.4", plain);
        var (kept, _) = await WriteAsync(store, "1.2.4", "1.2.4.1.1", plain);
        // A copy of the blob kept elsewhere (a backup) before the study is destroyed.
        string path = Directory.GetFiles(_dir.File("blobs"), "1.2.3.1.4.dcm", SearchOption.AllDirectories).Single();
        File.Copy(path, _dir.File("backup.dcm"));
        await keyring.ShredAsync("1.2.3", None);
        Assert.Null(await _index.Lifecycle.GetStudyKeyOfAsync("1.2.3", None));
        // A fresh process (no cached keys) cannot read it, nor the backup copy put back.
        var later = Store();
        await Assert.ThrowsAsync<StudyKeyMissingException>(() => ReadAsync(later, doomed));
        File.Copy(_dir.File("backup.dcm"), path, overwrite: true);
        await Assert.ThrowsAsync<StudyKeyMissingException>(() => ReadAsync(later, doomed));
        Assert.Equal(plain, await ReadAsync(later, kept));
    }

    [Fact]
    public async Task Recovery_reads_a_prepared_staged_blob_through_the_keyring_and_one_never_prepared_is_not_left()
    {
        var store = Store();
        byte[] plain = RandomNumberGenerator.GetBytes(70_000);
        var target = store.RefFor("1.2.5", "1.2.5.1", "1.2.5.1.1");
        await using (var w = await store.CreateAsync(None))
        {
            await w.WriteAsync(plain, None);
            await w.SealAsync(true, None);
            await w.PrepareAsync(target, None); // committed next; the node dies before promoting
            w.LeaveForRecovery();
        }
        await using (var w = await store.CreateAsync(None))
        {
            await w.WriteAsync(plain, None);
            await w.SealAsync(true, None); // never prepared: never acknowledged, unreadable: not left for recovery
            w.LeaveForRecovery();
        }
        Assert.Equal(1, await store.CountStagedAsync(None));
        byte[]? seen = null;
        var recovered = await store.RecoverStagedAsync(new DelegateResolver(async staged =>
        {
            await using var s = staged.OpenRead();
            seen = new byte[staged.Length];
            await s.ReadExactlyAsync(seen, None);
            return target;
        }), TimeSpan.Zero, None);
        Assert.Equal(new StagedRecovery(1, 0, 0), recovered);
        Assert.Equal(plain, seen);
        Assert.Equal(plain, await ReadAsync(store, target));
    }

    [Fact]
    public async Task After_a_master_key_rotation_old_study_keys_are_read_with_the_previous_key_and_wrapped_again_with_the_new_one()
    {
        byte[] plain = RandomNumberGenerator.GetBytes(5000);
        var (blob, _) = await WriteAsync(Store(), "1.2.6", "1.2.6.1.1", plain);
        Assert.Equal(_master.Id, (await _index.Lifecycle.GetStudyKeyOfAsync("1.2.6", None))!.MasterKeyId);
        var next = new MasterKey(RandomNumberGenerator.GetBytes(32));
        // Without the old key the study key cannot be unwrapped; with it listed as previous, it can, and is wrapped again.
        await Assert.ThrowsAsync<CryptographicException>(() => ReadAsync(Store(next), blob));
        Assert.Equal(plain, await ReadAsync(Store(next, _master), blob));
        Assert.Equal(next.Id, (await _index.Lifecycle.GetStudyKeyOfAsync("1.2.6", None))!.MasterKeyId);
        Assert.Equal(plain, await ReadAsync(Store(next), blob)); // the old key is no longer needed
    }
}
