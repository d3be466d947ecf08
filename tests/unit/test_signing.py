"""Unit tests for kjdms.signing: the instance key, signatures, fingerprints, keys that are refused."""
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kjdms.signing import (KeyRefused, fingerprint, public_key_pem, read_or_create_signing_key, sign,
                           signature_is_valid)


def test_the_key_is_created_once_owner_only_and_read_back(tmp_path):
    path = tmp_path / "keys" / "package_signing_key"
    first = read_or_create_signing_key(path)
    again = read_or_create_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert public_key_pem(first) == public_key_pem(again)


def test_processes_creating_the_key_at_once_all_get_the_same_one(tmp_path):
    path = tmp_path / "package_signing_key"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: public_key_pem(read_or_create_signing_key(path)), range(16)))
    assert len(set(keys)) == 1 and [item.name for item in tmp_path.iterdir()] == ["package_signing_key"]


def test_a_damaged_key_file_is_reported_not_replaced(tmp_path):
    path = tmp_path / "package_signing_key"
    path.write_bytes(b"")
    with pytest.raises(RuntimeError, match="restore it from the backup"):
        read_or_create_signing_key(path)
    assert path.read_bytes() == b""


def test_a_signature_holds_for_its_data_only(tmp_path):
    key = read_or_create_signing_key(tmp_path / "key")
    public, signature = public_key_pem(key), sign(key, b"manifest")
    assert signature_is_valid(public, b"manifest", signature)
    assert not signature_is_valid(public, b"manifest!", signature)
    assert not signature_is_valid(public_key_pem(read_or_create_signing_key(tmp_path / "other")), b"manifest",
                                  signature)
    for broken in ("", "not base64 at all!", signature[:-4]):
        assert not signature_is_valid(public, b"manifest", broken)


def test_the_fingerprint_is_sixteen_groups_of_four_hex_digits(tmp_path):
    public = public_key_pem(read_or_create_signing_key(tmp_path / "key"))
    assert re.fullmatch(r"[0-9a-f]{4}(:[0-9a-f]{4}){15}", fingerprint(public))


def test_a_key_that_is_no_pem_or_not_ed25519_is_refused():
    with pytest.raises(KeyRefused, match="不是可读的 PEM 公钥"):
        fingerprint("not a key")
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(KeyRefused, match="不是 Ed25519"):
        fingerprint(other)
