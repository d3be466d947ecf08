"""Keyed hashes of ID numbers (and names): findable by someone holding the number, useless to anyone else."""
import hashlib
import hmac

from ..names import normalize_name


def id_number_hash(key: str, id_number: str) -> str:
    """Return the HMAC-SHA256 of id_number under key, as hex."""
    return hmac.new(key.encode("utf-8"), id_number.encode("ascii"), hashlib.sha256).hexdigest()


def name_hash(key: str, name: str) -> str:
    """Return the keyed hash of a person's name as typed on the ID card (spaces and dot variants ignored)."""
    return hmac.new(key.encode("utf-8"), ("name:" + normalize_name(name)).encode("utf-8"), hashlib.sha256).hexdigest()
