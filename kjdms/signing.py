"""Ed25519 signatures for what leaves the system (archival packages): the instance's key, signing, checking."""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .config import read_or_create_file

ALGORITHM = "Ed25519"


class KeyRefused(ValueError):
    """A public key that cannot be read as an Ed25519 key; the message says why."""


def read_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Return the private key kept in path, creating it once (owner-only) when it is missing."""
    def new_key() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        return serialization.load_pem_private_key(read_or_create_file(path, new_key), password=None)
    except ValueError:
        raise RuntimeError(f"{path} is not a readable private key: restore it from the backup (a new key "
                           "would sign new packages, and the old ones would check only against the old public key)"
                           ) from None


def public_key_pem(key: Ed25519PrivateKey) -> str:
    """Return key's public half as PEM text, to publish and to put beside each signature."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def fingerprint(public_pem: str) -> str:
    """Return the SHA-256 of the raw public key, in groups of four hex digits, for people to compare."""
    raw = _public_key(public_pem).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    digest = hashlib.sha256(raw).hexdigest()
    return ":".join(digest[start:start + 4] for start in range(0, len(digest), 4))


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    """Return the signature of data, base64-encoded."""
    return base64.b64encode(key.sign(data)).decode("ascii")


def signature_document(key: Ed25519PrivateKey, body: bytes) -> str:
    """Return the manifest.json.sig document: the signature of body with the public key and its fingerprint."""
    public = public_key_pem(key)
    return json.dumps({"algorithm": ALGORITHM, "fingerprint": fingerprint(public), "public_key": public,
                       "signature": sign(key, body)}, indent=2) + "\n"


def signature_is_valid(public_pem: str, data: bytes, signature: str) -> bool:
    """Tell whether signature (base64) is the signature of data by public_pem's key."""
    try:
        _public_key(public_pem).verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _public_key(public_pem: str) -> Ed25519PublicKey:
    if not isinstance(public_pem, str):
        raise KeyRefused("公钥不是文本")
    try:
        key = serialization.load_pem_public_key(public_pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError) as error:
        raise KeyRefused(f"不是可读的 PEM 公钥：{error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyRefused("公钥不是 Ed25519 公钥")
    return key
