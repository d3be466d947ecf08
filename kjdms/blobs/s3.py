"""Blobs in an S3 bucket (AWS, SeaweedFS, MinIO …) through boto3, under the same content-addressed contract."""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from typing import BinaryIO, Iterator

from kjdms.blobs.base import BlobCorrupted, BlobInfo, BlobNotFound, read_chunks, validate_sha256

# S3's smallest part but the last is 5 MiB; a stream no longer than one part goes up in one PUT.
PART_SIZE = 8 * 1024 * 1024
# Where a stream larger than one part is assembled before its hash, and so its name, is known.
INCOMING = ".incoming/"


class S3BlobStore:
    """Blobs stored as objects named <prefix>ab/cd/<sha256>, written whole or not at all.

    A stream's hash is known only at its end. One that fits in a part is hashed in memory and put under its
    final name in one PUT; a larger one goes up as a multipart upload to a key under .incoming/, hashed part by
    part, and is then copied to its final name inside the server. An upload interrupted half-way leaves an
    unfinished multipart upload (invisible to readers) or an object under .incoming/, never one under a
    blob's name; `kjdms blobs gc` removes both once they are past the grace period.
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

        client = boto3.client("s3", endpoint_url=endpoint_url, aws_access_key_id=access_key,
                              aws_secret_access_key=secret_key, region_name=region or "us-east-1",
                              config=ClientConfig(retries={"max_attempts": 5, "mode": "standard"},
                                                  s3={"addressing_style": "path"}))
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
        stream = io.BytesIO(bytes(data)) if isinstance(data, (bytes, bytearray)) else data
        first = _read_part(stream)
        if len(first) < PART_SIZE:
            return self._put_whole(first)
        return self._put_in_parts(first, stream)

    def _put_whole(self, content: bytes) -> BlobInfo:
        sha256 = hashlib.sha256(content).hexdigest()
        if self._refresh(sha256):
            return BlobInfo(sha256, len(content), created=False)
        self.client.put_object(Bucket=self.bucket, Key=self.key_for(sha256), Body=content)
        return BlobInfo(sha256, len(content), created=True)

    def _put_in_parts(self, first: bytes, stream: BinaryIO) -> BlobInfo:
        incoming = f"{self.prefix}{INCOMING}{uuid.uuid4().hex}"
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=incoming)["UploadId"]
        digest, size, parts, part = hashlib.sha256(), 0, [], first
        try:
            while part:
                digest.update(part)
                size += len(part)
                answer = self.client.upload_part(Bucket=self.bucket, Key=incoming, UploadId=upload,
                                                 PartNumber=len(parts) + 1, Body=part)
                parts.append({"ETag": answer["ETag"], "PartNumber": len(parts) + 1})
                part = _read_part(stream)
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=incoming, UploadId=upload,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=incoming, UploadId=upload)
            raise
        sha256 = digest.hexdigest()
        try:
            created = not self._refresh(sha256)
            if created:
                self.client.copy_object(Bucket=self.bucket, Key=self.key_for(sha256),
                                        CopySource={"Bucket": self.bucket, "Key": incoming})
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=incoming)
        return BlobInfo(sha256, size, created)

    def _refresh(self, sha256: str) -> bool:
        """If the blob exists, restart its garbage-collection grace period (as a re-put does locally); tell whether."""
        if not self.exists(sha256):
            return False
        key = self.key_for(sha256)
        # Copying an object onto itself with new metadata is S3's way to renew LastModified.
        self.client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                                MetadataDirective="REPLACE", Metadata={"kjdms-stored": str(int(time.time()))})
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
                name = item["Key"][len(self.prefix):]
                parts = name.split("/")
                if len(parts) == 3 and _is_sha256(parts[2]) and parts[0] == parts[2][:2] and parts[1] == parts[2][2:4]:
                    yield parts[2]

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
        """Remove assemblies of interrupted uploads older than the grace period; return how many."""
        cutoff, removed = time.time() - older_than_seconds, 0
        incoming = f"{self.prefix}{INCOMING}"
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=incoming):
            for item in page.get("Contents", ()):
                if item["LastModified"].timestamp() <= cutoff:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        for upload in self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=incoming).get("Uploads", ()):
            if upload["Initiated"].timestamp() <= cutoff:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
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


def _is_sha256(name: str) -> bool:
    try:
        validate_sha256(name)
    except ValueError:
        return False
    return True


def _read_part(stream: BinaryIO) -> bytes:
    """Read up to PART_SIZE bytes, however small the pieces the stream hands out."""
    pieces, size = [], 0
    for chunk in read_chunks(_Limited(stream, PART_SIZE)):
        pieces.append(chunk)
        size += len(chunk)
    return b"".join(pieces)


class _Limited:
    """A view of a stream that ends after limit bytes."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream, self.left = stream, limit

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        chunk = self.stream.read(self.left if size is None or size < 0 else min(size, self.left))
        self.left -= len(chunk)
        return chunk


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
