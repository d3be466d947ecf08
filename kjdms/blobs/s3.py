"""Blobs in an S3 bucket (AWS, SeaweedFS, MinIO …) through boto3, under the same content-addressed contract."""

from __future__ import annotations

import base64
import hashlib
import io
import tempfile
import time
from typing import BinaryIO, Iterator

from kjdms.blobs.base import BlobCorrupted, BlobInfo, BlobNotFound, read_chunks, validate_sha256

# A blob up to this size waits in memory between its hashing and its PUT; a larger one in a local temporary file.
IN_MEMORY_BYTES = 8 * 1024 * 1024
# S3 takes up to 5 GiB in one PUT; above this a blob goes up in parts, so that a failed request costs one part.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
# S3's smallest part but the last is 5 MiB.
PART_SIZE = 8 * 1024 * 1024
# Where earlier versions assembled a large upload before copying it to its name; gc still clears it.
INCOMING = ".incoming/"
# A conditional PUT racing another one to the same key may be answered 409; the next attempt meets the finished one.
CONFLICT_ATTEMPTS = 3


class S3BlobStore:
    """Blobs stored as objects named <prefix>ab/cd/<sha256>, written whole or not at all.

    A stream's hash, and so its name, is known only at its end: the stream is hashed as it is read into a local
    spool (memory up to IN_MEMORY_BYTES, a temporary file beyond), then sent once under its final name, with its
    SHA-256 for the server to check and If-None-Match so that an object already stored is not written again. A
    PUT is all or nothing; a blob above MULTIPART_THRESHOLD goes up as a multipart upload to its final name, which
    S3 shows only once completed. An interrupted upload so leaves nothing under a blob's name: at most an
    unfinished multipart upload, invisible to readers, which `kjdms blobs gc` aborts after the grace period.
    """

    def __init__(self, client, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def from_settings(cls, *, endpoint_url: str | None, bucket: str, prefix: str = "", access_key: str | None = None,
                      secret_key: str | None = None, region: str | None = None) -> S3BlobStore:
        """Return a store on a boto3 client; credentials come from boto3's usual chain unless given."""
        import boto3
        from botocore.config import Config as ClientConfig

        # Unsigned payloads: botocore would otherwise hash every body once more to sign it on plain http. The
        # signed x-amz-checksum-sha256 of each PUT (CRC32 for parts) makes the server refuse altered bytes instead.
        client = boto3.client("s3", endpoint_url=endpoint_url, aws_access_key_id=access_key,
                              aws_secret_access_key=secret_key, region_name=region or "us-east-1",
                              config=ClientConfig(retries={"max_attempts": 5, "mode": "standard"},
                                                  s3={"addressing_style": "path", "payload_signing_enabled": False}))
        return cls(client, bucket, prefix)

    def ensure_bucket(self) -> bool:
        """Create the bucket if it does not exist; return True if it was created."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as error:
            if _status(error) not in (404, 403):
                raise
        self.client.create_bucket(Bucket=self.bucket)
        return True

    def versioning_enabled(self) -> bool:
        """Tell whether the bucket keeps old versions (then a delete would not remove a purged person's files)."""
        return self.client.get_bucket_versioning(Bucket=self.bucket).get("Status") == "Enabled"

    def key_for(self, sha256: str) -> str:
        """Return the object key where the blob named sha256 is, or would be, stored."""
        sha256 = validate_sha256(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def put(self, data: bytes | BinaryIO) -> BlobInfo:
        """Store data under its sha256; created is False if it was already stored."""
        if isinstance(data, (bytes, bytearray)):
            return self._store(hashlib.sha256(data), bytes(data), len(data))
        with tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BYTES) as spool:
            digest = hashlib.sha256()
            for chunk in read_chunks(data):
                digest.update(chunk)
                spool.write(chunk)
            size = spool.tell()
            spool.seek(0)
            # The spool itself is the body, read in blocks as it is sent (after Expect: 100-continue): spool.read()
            # copied an in-memory spool, so the blob was held twice. botocore takes no memoryview as a body.
            return self._store(digest, spool, size)

    def _store(self, digest, body: bytes | BinaryIO, size: int) -> BlobInfo:
        sha256 = digest.hexdigest()
        if size > MULTIPART_THRESHOLD:
            parts = io.BytesIO(body) if isinstance(body, bytes) else body
            return BlobInfo(sha256, size, created=self._put_in_parts(sha256, parts))
        checksum = base64.b64encode(digest.digest()).decode()
        for _ in range(CONFLICT_ATTEMPTS):
            if not isinstance(body, bytes):
                body.seek(0)
            outcome = self._put_if_absent(sha256, body, checksum)
            if outcome == 201:
                return BlobInfo(sha256, size, created=True)
            if outcome == 412 and self._renew(sha256):
                return BlobInfo(sha256, size, created=False)
            # 409: another PUT of the same bytes was under way; 412 then gone: gc removed it in between. Again.
        raise RuntimeError(f"blob {sha256}: the S3 server kept answering that another write of it was under way")

    def _put_if_absent(self, sha256: str, body: bytes | BinaryIO, checksum: str) -> int:
        """PUT body under its name unless an object is there; return 201 if written, else the server's 412 or 409."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key_for(sha256), Body=body, ChecksumSHA256=checksum,
                                   IfNoneMatch="*")
        except ClientError as error:
            if _status(error) in (409, 412):
                return _status(error)
            raise
        # A server that ignores If-None-Match wrote the same bytes again: harmless under a content address.
        return 201

    def _put_in_parts(self, sha256: str, spool: BinaryIO) -> bool:
        """Upload spool in parts straight to its final name; tell whether it was new."""
        if self._renew(sha256):
            return False
        key = self.key_for(sha256)
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        parts = []
        try:
            while part := spool.read(PART_SIZE):
                answer = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload,
                                                 PartNumber=len(parts) + 1, Body=part)
                parts.append({"ETag": answer["ETag"], "PartNumber": len(parts) + 1})
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            raise
        return True

    def _renew(self, sha256: str) -> bool:
        """If the blob exists, restart its garbage-collection grace period (as a re-put does locally); tell whether."""
        from botocore.exceptions import ClientError

        key = self.key_for(sha256)
        # Copying an object onto itself with new metadata is S3's way to renew LastModified.
        try:
            self.client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                                    MetadataDirective="REPLACE", Metadata={"kjdms-stored": str(int(time.time()))})
        except ClientError as error:
            if _status(error) == 404 or _code(error) == "NoSuchKey":
                return False
            raise
        return True

    def open(self, sha256: str, verify: bool = False) -> BinaryIO:
        """Return a binary stream of the blob, rehashing it first when verify is set."""
        if verify and not self.verify(sha256):
            raise BlobCorrupted(sha256)
        return io.BufferedReader(_ObjectStream(self._get(sha256)["Body"]), buffer_size=1024 * 1024)

    def read(self, sha256: str, verify: bool = True) -> bytes:
        """Return the blob's bytes, raising BlobCorrupted if they no longer match."""
        data = self._get(sha256)["Body"].read()
        if verify and hashlib.sha256(data).hexdigest() != sha256:
            raise BlobCorrupted(sha256)
        return data

    def exists(self, sha256: str) -> bool:
        """Tell whether a blob is stored under sha256."""
        return self._head(sha256) is not None

    def delete(self, sha256: str) -> bool:
        """Remove the blob and tell whether it was there."""
        existed = self.exists(sha256)
        self.client.delete_object(Bucket=self.bucket, Key=self.key_for(sha256))
        return existed

    def iter_hashes(self) -> Iterator[str]:
        """Yield the sha256 of every stored blob, a listing page at a time, skipping .incoming/ and strays."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", ()):
                if sha256 := self._hash_named_by(item["Key"]):
                    yield sha256

    def _hash_named_by(self, key: str) -> str | None:
        """Return the sha256 whose blob key is key, or None for any other key."""
        parts = key[len(self.prefix):].split("/") if key.startswith(self.prefix) else ()
        if len(parts) == 3 and _is_sha256(parts[2]) and parts[0] == parts[2][:2] and parts[1] == parts[2][2:4]:
            return parts[2]
        return None

    def verify(self, sha256: str) -> bool:
        """Rehash the stored blob and tell whether it still matches sha256."""
        digest = hashlib.sha256()
        for chunk in self._get(sha256)["Body"].iter_chunks(1024 * 1024):
            digest.update(chunk)
        return digest.hexdigest() == sha256

    def size(self, sha256: str) -> int:
        """Return the blob's size in bytes."""
        return self._existing_head(sha256)["ContentLength"]

    def modified_at(self, sha256: str) -> float:
        """Return when the blob was last stored or re-stored, as unix time."""
        return self._existing_head(sha256)["LastModified"].timestamp()

    def remove_stale_temporary_files(self, older_than_seconds: float) -> int:
        """Abort interrupted uploads, remove earlier versions' assemblies, past the grace period; return how many."""
        cutoff, removed = time.time() - older_than_seconds, 0
        incoming = f"{self.prefix}{INCOMING}"
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=incoming):
            for item in page.get("Contents", ()):
                if item["LastModified"].timestamp() <= cutoff:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        uploads = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in uploads:
            for upload in page.get("Uploads", ()):
                # Only this store's: a blob's name, or .incoming/ of earlier versions; others may share the bucket.
                ours = self._hash_named_by(upload["Key"]) or upload["Key"].startswith(incoming)
                if ours and upload["Initiated"].timestamp() <= cutoff:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])
                    removed += 1
        return removed

    def _get(self, sha256: str) -> dict:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key_for(sha256))
        except ClientError as error:
            if _status(error) == 404:
                raise BlobNotFound(sha256) from None
            raise

    def _head(self, sha256: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key_for(sha256))
        except ClientError as error:
            if _status(error) == 404:
                return None
            raise

    def _existing_head(self, sha256: str) -> dict:
        head = self._head(sha256)
        if head is None:
            raise BlobNotFound(sha256)
        return head


def _status(error) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _code(error) -> str | None:
    return error.response.get("Error", {}).get("Code")


def _is_sha256(name: str) -> bool:
    try:
        validate_sha256(name)
    except ValueError:
        return False
    return True


class _ObjectStream(io.RawIOBase):
    """A GET's body as a readable file object (what send_file and the archive writer expect)."""

    def __init__(self, body) -> None:
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.body.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.body.close()
        super().close()
