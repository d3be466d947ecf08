"""The keys inside a backup: read from the instance, sealed with a passphrase when asked, put back on restore."""
from __future__ import annotations

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

KEYS_FILE, SEALED_KEYS_FILE = "keys.json", "keys.enc"
# scrypt at 2^15 costs about 0.1 s and 32 MiB a try: cheap once, dear for guessing a passphrase.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1
MIN_PASSPHRASE = 12


class PassphraseRefused(ValueError):
    """The passphrase is too short, or does not open the sealed keys; the message says which in Chinese."""


def _key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(passphrase.encode("utf-8"))


def seal_keys(plain: bytes, passphrase: str) -> bytes:
    """Return plain encrypted with AES-256-GCM under a key derived from passphrase (scrypt), as JSON."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise PassphraseRefused(f"口令：至少 {MIN_PASSPHRASE} 个字符")
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_key(passphrase, salt)).encrypt(nonce, plain, b"kjdms-backup-keys")
    document = {"cipher": "AES-256-GCM", "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                **{name: base64.b64encode(value).decode("ascii")
                   for name, value in (("salt", salt), ("nonce", nonce), ("ciphertext", sealed))}}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("ascii")


def open_keys(sealed: bytes, passphrase: str | None) -> bytes:
    """Return the keys sealed by seal_keys, refusing a missing or wrong passphrase."""
    if not passphrase:
        raise PassphraseRefused("备份中的密钥已用口令加密：请用 --passphrase-file 或 KJDMS_BACKUP_PASSPHRASE 提供口令")
    try:
        document = json.loads(sealed)
        salt, nonce, ciphertext = (base64.b64decode(document[name]) for name in ("salt", "nonce", "ciphertext"))
        return AESGCM(_key(passphrase, salt)).decrypt(nonce, ciphertext, b"kjdms-backup-keys")
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise PassphraseRefused("口令不正确，或密钥文件已损坏") from None
