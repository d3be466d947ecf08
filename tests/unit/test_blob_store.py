"""Test that every blob store keeps content whole, deduplicated and safe from bad hashes."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from kjdms.blobs import (
    BlobCorrupted,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    InMemoryBlobStore,
    LocalBlobStore,
)
from kjdms.blobs.base import CHUNK_SIZE, validate_sha256
from kjdms.blobs.local import TEMPORARY_PREFIX
from kjdms.blobs import s3
from kjdms.blobs.s3 import INCOMING, PART_SIZE, S3BlobStore

CONTENT = b"Accounting personnel dossier, page one.\n"
CONTENT_SHA256 = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture(params=["local", "memory", "s3"])
def store(request, tmp_path):
    """Yield each blob store in turn: local in a fresh folder, memory, and S3 on a real SeaweedFS server."""
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    if request.param == "s3":
        return request.getfixturevalue("s3_store")
    return InMemoryBlobStore()


@pytest.fixture
def local_store(tmp_path):
    """Yield a local blob store rooted in a fresh folder."""
    return LocalBlobStore(tmp_path / "blobs")


def staged(store: LocalBlobStore, content: bytes, piece: int = 7):
    """Return content staged in store as the form parser writes a part: in pieces, then rewound."""
    blob = store.stage(head_bytes=16)
    for start in range(0, len(content), piece):
        blob.write(content[start:start + piece])
    blob.seek(0)
    return blob


def files_under(root: Path) -> list[Path]:
    """Return every file below root, folders excluded."""
    return [path for path in root.rglob("*") if path.is_file()]


def corrupt(store, sha256: str) -> None:
    """Flip the first byte of a stored blob, as bit rot would."""
    if isinstance(store, LocalBlobStore):
        path = store.path_for(sha256)
        path.chmod(0o600)
        data = bytearray(path.read_bytes())
        data[0] ^= 0x01
        path.write_bytes(bytes(data))
    elif isinstance(store, S3BlobStore):
        data = bytearray(store.read(sha256, verify=False))
        data[0] ^= 0x01
        store.client.put_object(Bucket=store.bucket, Key=store.key_for(sha256), Body=bytes(data))
    else:
        data = bytearray(store._blobs[sha256])
        data[0] ^= 0x01
        store._blobs[sha256] = bytes(data)


def backdate(store, sha256: str, when: float) -> None:
    """Make a stored blob look as if it was last stored at the given unix time."""
    if isinstance(store, S3BlobStore):
        pytest.skip("S3 sets LastModified itself (test_s3_storing_again_renews_last_modified)")
    if isinstance(store, LocalBlobStore):
        os.utime(store.path_for(sha256), (when, when))
    else:
        store._modified[sha256] = when


class ChunkRecordingStream(io.BytesIO):
    """A stream that records the size of every read asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.requested_sizes: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        """Record the requested size, then read as usual."""
        self.requested_sizes.append(size)
        return super().read(size)


def test_stores_satisfy_the_protocol(store):
    assert isinstance(store, BlobStore)


def test_put_then_read_round_trips(store):
    info = store.put(CONTENT)

    assert info == BlobInfo(sha256=CONTENT_SHA256, size=len(CONTENT), created=True)
    assert store.read(info.sha256) == CONTENT
    assert store.size(info.sha256) == len(CONTENT)
    assert store.exists(info.sha256)
    assert store.verify(info.sha256)
    with store.open(info.sha256, verify=True) as stream:
        assert stream.read() == CONTENT


def test_empty_content_round_trips(store):
    info = store.put(b"")

    assert info.sha256 == hashlib.sha256(b"").hexdigest()
    assert info.size == 0
    assert store.read(info.sha256) == b""


def test_identical_content_is_stored_once(store):
    first = store.put(CONTENT)
    second = store.put(io.BytesIO(CONTENT))

    assert first.created is True
    assert second == BlobInfo(sha256=first.sha256, size=len(CONTENT), created=False)
    assert list(store.iter_hashes()) == [first.sha256]


def test_identical_content_is_one_file_on_disk(local_store):
    local_store.put(CONTENT)
    local_store.put(CONTENT)
    local_store.put(io.BytesIO(CONTENT))

    assert files_under(local_store.root) == [local_store.path_for(CONTENT_SHA256)]


def test_blob_lives_in_fan_out_folders(local_store):
    local_store.put(CONTENT)

    expected = local_store.root / CONTENT_SHA256[:2] / CONTENT_SHA256[2:4] / CONTENT_SHA256
    assert expected.is_file()


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_local_blobs_are_read_only(local_store):
    local_store.put(CONTENT)

    assert local_store.path_for(CONTENT_SHA256).stat().st_mode & 0o777 == 0o400


def test_streaming_put_reads_in_chunks_and_matches_bytes(store):
    data = os.urandom(5 * 1024 * 1024)
    stream = ChunkRecordingStream(data)

    info = store.put(stream)

    assert info == BlobInfo(sha256=hashlib.sha256(data).hexdigest(), size=len(data), created=True)
    assert store.read(info.sha256) == data
    assert all(size is not None and 0 < size <= CHUNK_SIZE for size in stream.requested_sizes)


def test_modified_at_is_when_the_blob_was_stored(store):
    before = time.time()
    info = store.put(CONTENT)
    after = time.time()

    # File systems stamp times from a coarser clock than time.time().
    assert before - 1 <= store.modified_at(info.sha256) <= after + 1


def test_storing_again_restarts_the_grace_period(store):
    info = store.put(CONTENT)
    backdate(store, info.sha256, when=1_000_000)

    store.put(CONTENT)

    assert store.modified_at(info.sha256) > time.time() - 60


@pytest.mark.parametrize("as_stream", [False, True], ids=["bytes", "stream"])
def test_failed_rename_leaves_no_visible_blob(local_store, monkeypatch, as_stream):
    def failing_replace(source, target):
        raise OSError("simulated failure between write and rename")

    monkeypatch.setattr("kjdms.blobs.local.os.replace", failing_replace)

    with pytest.raises(OSError, match="simulated"):
        local_store.put(io.BytesIO(CONTENT) if as_stream else CONTENT)

    assert not local_store.exists(CONTENT_SHA256)
    assert list(local_store.iter_hashes()) == []
    with pytest.raises(BlobNotFound):
        local_store.open(CONTENT_SHA256)
    assert files_under(local_store.root) == []

    monkeypatch.undo()
    assert local_store.put(CONTENT).created is True


CRASHING_WRITER = """
import io, os, sys
import kjdms.blobs.local as local
local.os.replace = lambda source, target: os._exit(3)
data = bytes.fromhex(sys.argv[2])
local.LocalBlobStore(sys.argv[1]).put(io.BytesIO(data) if sys.argv[3] == "stream" else data)
"""


@pytest.mark.parametrize("input_kind", ["bytes", "stream"])
def test_crash_between_write_and_rename_is_invisible_and_cleaned_up(local_store, input_kind):
    # A real crash, in a child process, so no cleanup code of ours gets to run.
    arguments = [str(local_store.root), CONTENT.hex(), input_kind]
    crashed = subprocess.run([sys.executable, "-c", CRASHING_WRITER, *arguments])
    assert crashed.returncode == 3

    leftovers = files_under(local_store.root)
    assert len(leftovers) == 1 and leftovers[0].name.startswith(TEMPORARY_PREFIX)
    assert not local_store.exists(CONTENT_SHA256)
    assert list(local_store.iter_hashes()) == []
    with pytest.raises(BlobNotFound):
        local_store.open(CONTENT_SHA256)

    assert local_store.remove_stale_temporary_files() == 0
    assert local_store.remove_stale_temporary_files(older_than_seconds=0) == 1
    assert files_under(local_store.root) == []
    assert local_store.put(CONTENT).created is True
    assert local_store.read(CONTENT_SHA256) == CONTENT


def test_flipped_byte_is_detected(store):
    info = store.put(CONTENT)
    corrupt(store, info.sha256)

    assert store.verify(info.sha256) is False
    with pytest.raises(BlobCorrupted, match=info.sha256):
        store.open(info.sha256, verify=True)
    with pytest.raises(BlobCorrupted, match=info.sha256):
        store.read(info.sha256)
    assert store.read(info.sha256, verify=False) != CONTENT
    with store.open(info.sha256) as stream:
        assert len(stream.read()) == len(CONTENT)


BAD_HASHES = [
    "../../etc/passwd",
    "../" * 21 + "x",
    CONTENT_SHA256.upper(),
    CONTENT_SHA256[:63],
    CONTENT_SHA256 + "0",
    CONTENT_SHA256[:63] + "\n",
    CONTENT_SHA256 + "\n",
    "g" * 64,
    "０" * 64,
    "",
    None,
    CONTENT_SHA256.encode(),
]
HASH_TAKING_CALLS = ["open", "read", "exists", "delete", "verify", "size", "modified_at"]


@pytest.mark.parametrize("bad_hash", BAD_HASHES, ids=repr)
@pytest.mark.parametrize("method", HASH_TAKING_CALLS)
def test_bad_hashes_are_refused_before_any_file_access(store, tmp_path, method, bad_hash):
    bystander = tmp_path / "etc" / "passwd"
    bystander.parent.mkdir()
    bystander.write_text("root:x:0:0")

    with pytest.raises(ValueError):
        getattr(store, method)(bad_hash)

    assert bystander.read_text() == "root:x:0:0"


def test_validate_sha256_returns_a_good_hash_unchanged():
    assert validate_sha256(CONTENT_SHA256) == CONTENT_SHA256


@pytest.mark.parametrize("method", ["open", "read", "verify", "size", "modified_at"])
def test_missing_blob_raises_blob_not_found(store, method):
    with pytest.raises(BlobNotFound) as raised:
        getattr(store, method)(CONTENT_SHA256)

    assert isinstance(raised.value, KeyError)
    assert raised.value.sha256 == CONTENT_SHA256


def test_delete_removes_and_tolerates_repeats(store):
    info = store.put(CONTENT)

    assert store.delete(info.sha256) is True
    assert not store.exists(info.sha256)
    assert store.delete(info.sha256) is False
    with pytest.raises(BlobNotFound):
        store.open(info.sha256)
    assert list(store.iter_hashes()) == []


def test_iter_hashes_lists_exactly_what_was_put(store):
    contents = [b"first", b"second", b"third", b"second"]
    expected = {hashlib.sha256(content).hexdigest() for content in contents}

    for content in contents:
        store.put(content)

    hashes = list(store.iter_hashes())
    assert sorted(hashes) == sorted(expected)


def test_iter_hashes_ignores_stray_files(local_store):
    local_store.put(CONTENT)
    (local_store.root / "README").write_text("not a blob")
    misplaced = local_store.root / "00" / "00" / CONTENT_SHA256
    misplaced.parent.mkdir(parents=True)
    misplaced.write_bytes(CONTENT)

    assert list(local_store.iter_hashes()) == [CONTENT_SHA256]


class TestDurability:
    """A stored blob survives a power cut: its bytes, its name in the folder and any new folder are fsynced."""

    @pytest.fixture
    def synced(self, monkeypatch):
        """Record what each fsync reached (the path behind the descriptor, and whether the blob was in place yet)."""
        calls = []
        real_fsync = os.fsync

        def recording_fsync(descriptor):
            calls.append(Path(os.readlink(f"/proc/self/fd/{descriptor}")))
            return real_fsync(descriptor)

        monkeypatch.setattr(os, "fsync", recording_fsync)
        return calls

    @pytest.mark.parametrize("given", [CONTENT, io.BytesIO(CONTENT), staged], ids=["bytes", "stream", "staged"])
    def test_the_file_is_synced_before_its_rename_and_its_folder_after(self, tmp_path, synced, given):
        store = LocalBlobStore(tmp_path / "blobs")
        final = store.path_for(CONTENT_SHA256)
        store.put(given(store, CONTENT) if callable(given) else given)
        files = [path for path in synced if path.name.startswith(TEMPORARY_PREFIX)]
        assert files, "the temporary file's content was never fsynced"
        assert synced.index(files[-1]) < synced.index(final.parent), "the folder was synced before the file"
        assert synced[-3] == final.parent, "the rename into the folder was not fsynced"

    @pytest.mark.parametrize("given", [CONTENT, io.BytesIO(CONTENT), staged], ids=["bytes", "stream", "staged"])
    def test_new_fan_out_folders_are_synced_into_their_parents_after_the_rename(self, tmp_path, synced, given):
        store = LocalBlobStore(tmp_path / "blobs")
        final = store.path_for(CONTENT_SHA256)
        store.put(given(store, CONTENT) if callable(given) else given)
        # Innermost first, all after the file: a journaling file system commits the three entries at once.
        assert synced[-3:] == [final.parent, final.parent.parent, store.root]
        assert len(synced) == 4

    @pytest.mark.parametrize("again", [CONTENT, io.BytesIO(CONTENT)], ids=["bytes", "stream"])
    def test_a_blob_already_stored_costs_no_fsync(self, tmp_path, synced, again):
        store = LocalBlobStore(tmp_path / "blobs")
        store.put(CONTENT)
        synced.clear()
        assert store.put(again).created is False
        assert synced == []
        assert not list(store.root.glob(f"{TEMPORARY_PREFIX}*")), "the stream's duplicate was left behind"

    @pytest.mark.parametrize("given", [CONTENT, io.BytesIO(CONTENT)], ids=["bytes", "stream"])
    def test_a_new_blob_syncs_its_file_and_its_folder_once_each(self, tmp_path, synced, given):
        store = LocalBlobStore(tmp_path / "blobs")
        final = store.path_for(CONTENT_SHA256)
        final.parent.mkdir(parents=True)  # the fan-out folders of a store past its first blobs
        store.put(given)
        assert [path.parent if path.name.startswith(TEMPORARY_PREFIX) else path for path in synced] == [
            final.parent if isinstance(given, bytes) else store.root, final.parent]


class TestStaged:
    """A blob staged as the request is parsed is installed by a rename: hashed once, never read again."""

    def test_put_installs_the_staged_file_without_reading_it(self, local_store, monkeypatch):
        blob = staged(local_store, CONTENT)
        assert (blob.sha256, blob.size, blob.head) == (CONTENT_SHA256, len(CONTENT), CONTENT[:16])
        monkeypatch.setattr(blob, "read", lambda size=-1: pytest.fail("the staged file was read again"))
        assert local_store.put(blob) == BlobInfo(CONTENT_SHA256, len(CONTENT), created=True)
        blob.close()  # the request ends: an installed blob stays
        assert local_store.read(CONTENT_SHA256) == CONTENT
        assert local_store.path_for(CONTENT_SHA256).stat().st_mode & 0o777 == 0o400
        assert not list(local_store.root.glob(f"{TEMPORARY_PREFIX}*"))

    def test_a_staged_file_never_put_is_removed_when_closed(self, local_store):
        blob = staged(local_store, CONTENT)
        assert blob.path.exists()
        blob.close()
        assert not blob.path.exists() and list(local_store.iter_hashes()) == []

    def test_a_staged_duplicate_is_dropped_unsynced(self, local_store, monkeypatch):
        local_store.put(CONTENT)
        monkeypatch.setattr(os, "fsync", lambda descriptor: pytest.fail("a duplicate was synced"))
        blob = staged(local_store, CONTENT)
        assert local_store.put(blob).created is False
        assert local_store.put(blob).created is False  # put twice: still nothing to install
        assert not list(local_store.root.glob(f"{TEMPORARY_PREFIX}*"))

    def test_another_stores_staged_file_is_read_like_any_stream(self, local_store, tmp_path):
        blob = staged(LocalBlobStore(tmp_path / "other"), CONTENT)
        assert local_store.put(blob).sha256 == CONTENT_SHA256
        assert InMemoryBlobStore().put(staged(local_store, CONTENT)).sha256 == CONTENT_SHA256


# -- S3 only ------------------------------------------------------------------------------------------

def test_s3_storing_again_renews_last_modified(s3_store):
    info = s3_store.put(CONTENT)
    first = s3_store.modified_at(info.sha256)
    time.sleep(1.1)  # LastModified has whole seconds
    assert s3_store.put(io.BytesIO(CONTENT)).created is False
    assert s3_store.modified_at(info.sha256) > first


@pytest.mark.parametrize("in_parts", [False, True], ids=["one-put-from-a-spool-file", "in-parts"])
def test_s3_a_stream_larger_than_memory_goes_up_under_its_name_only(s3_store, monkeypatch, in_parts):
    if in_parts:
        monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", PART_SIZE)
    data = os.urandom(PART_SIZE * 2 + 12345)
    stream = ChunkRecordingStream(data)
    info = s3_store.put(stream)
    assert info == BlobInfo(hashlib.sha256(data).hexdigest(), len(data), created=True)
    assert all(size is not None and 0 < size <= CHUNK_SIZE for size in stream.requested_sizes)
    with s3_store.open(info.sha256, verify=True) as stream:
        assert stream.read() == data
    listed = s3_store.client.list_objects_v2(Bucket=s3_store.bucket, Prefix=s3_store.prefix)["Contents"]
    assert [item["Key"] for item in listed] == [s3_store.key_for(info.sha256)]
    assert s3_store.put(io.BytesIO(data)).created is False


@pytest.mark.parametrize("given", ["stream", "bytes"])
def test_s3_a_put_held_in_memory_holds_the_blob_once(s3_store, given):
    # Under IN_MEMORY_BYTES the spool is a BytesIO; spool.read() copied it for the PUT, holding the blob twice.
    # The spool sent as a file holds it once (plus buffers); bytes given are sent as they are, never copied.
    data = os.urandom(6 * 1024 * 1024)
    assert len(data) < s3.IN_MEMORY_BYTES
    body = ChunkRecordingStream(data) if given == "stream" else data
    tracemalloc.start()
    try:
        info = s3_store.put(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info == BlobInfo(hashlib.sha256(data).hexdigest(), len(data), created=True)
    assert s3_store.read(info.sha256) == data
    # The stream's spool holds it once (with the BytesIO's growth margin); given bytes, they are not copied.
    assert peak < (1.5 if given == "stream" else 0.5) * len(data), f"peak {peak / len(data):.2f} × the blob"


def test_s3_storing_again_does_not_rewrite_the_object(s3_store):
    info = s3_store.put(CONTENT)
    corrupt(s3_store, info.sha256)
    assert s3_store.put(CONTENT).created is False  # If-None-Match: the server kept what it had
    assert not s3_store.verify(info.sha256)


def test_s3_bytes_altered_on_the_way_are_refused_and_nothing_is_stored(s3_store):
    def flip_a_byte(request, **_):
        body = bytearray(request.body.read() if hasattr(request.body, "read") else request.body)
        body[len(body) // 2] ^= 0x01
        request.body = bytes(body)

    # After signing: the body goes unsigned, its SHA-256 in a signed header is what the server checks.
    s3_store.client.meta.events.register("before-send.s3.PutObject", flip_a_byte)
    data = os.urandom(100_000)
    with pytest.raises(Exception, match="BadDigest|did not match|XAmzContentChecksumMismatch"):
        s3_store.put(data)
    assert not s3_store.exists(hashlib.sha256(data).hexdigest())
    assert list(s3_store.iter_hashes()) == []


def test_s3_an_upload_interrupted_half_way_leaves_no_blob_and_gc_removes_its_parts(s3_store, monkeypatch):
    class Interrupted(Exception):
        pass

    class BreaksAfterAPart(io.BytesIO):
        def read(self, size=-1):
            if self.tell() >= PART_SIZE + CHUNK_SIZE:
                raise Interrupted  # the client went away in the middle of the second part
            return super().read(size)

    data = os.urandom(PART_SIZE * 2)
    with pytest.raises(Interrupted):
        s3_store.put(BreaksAfterAPart(data))
    sha256 = hashlib.sha256(data).hexdigest()
    assert not s3_store.exists(sha256)
    assert list(s3_store.iter_hashes()) == []
    assert "Contents" not in s3_store.client.list_objects_v2(Bucket=s3_store.bucket, Prefix=s3_store.prefix)

    # Failing while the parts go up: the multipart upload is aborted, nothing is left under the blob's name.
    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", PART_SIZE)
    monkeypatch.setattr(s3_store.client, "complete_multipart_upload", lambda **_: (_ for _ in ()).throw(Interrupted()))
    with pytest.raises(Interrupted):
        s3_store.put(data)
    assert not s3_store.exists(sha256)
    assert not s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket, Prefix=s3_store.prefix).get("Uploads")
    monkeypatch.undo()

    # A process killed between its parts and their completion leaves an unfinished upload under the blob's name:
    # invisible to readers until gc aborts it. Earlier versions' leftovers under .incoming/ go too.
    key = s3_store.key_for(sha256)
    unfinished = s3_store.client.create_multipart_upload(Bucket=s3_store.bucket, Key=key)["UploadId"]
    s3_store.client.upload_part(Bucket=s3_store.bucket, Key=key, UploadId=unfinished, PartNumber=1,
                                Body=data[:PART_SIZE])
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=f"{s3_store.prefix}{INCOMING}crashed", Body=b"half")
    s3_store.client.create_multipart_upload(Bucket=s3_store.bucket, Key=f"{s3_store.prefix}{INCOMING}unfinished")
    foreign = s3_store.client.create_multipart_upload(Bucket=s3_store.bucket, Key=f"{s3_store.prefix}notes/other")
    assert not s3_store.exists(sha256)
    assert list(s3_store.iter_hashes()) == []
    assert s3_store.remove_stale_temporary_files(3600) == 0
    assert s3_store.remove_stale_temporary_files(-5) == 3
    assert not s3_store.exists(sha256)
    assert "Contents" not in s3_store.client.list_objects_v2(Bucket=s3_store.bucket, Prefix=s3_store.prefix)
    left = s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket, Prefix=s3_store.prefix).get("Uploads", [])
    assert [upload["UploadId"] for upload in left] == [foreign["UploadId"]]  # not the store's: left alone
    s3_store.client.abort_multipart_upload(Bucket=s3_store.bucket, Key=f"{s3_store.prefix}notes/other",
                                           UploadId=foreign["UploadId"])


def test_s3_listing_pages_through_more_than_a_thousand_objects(s3_store):
    hashes = {s3_store.put(str(number).encode()).sha256 for number in range(1005)}
    assert set(s3_store.iter_hashes()) == hashes
