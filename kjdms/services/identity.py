"""Keyed hashes of ID numbers: findable by someone holding the number, useless to anyone else."""
import hashlib
import hmac


def id_number_hash(key: str, id_number: str) -> str:
    """Return the HMAC-SHA256 of id_number under key, as hex."""
    return hmac.new(key.encode("utf-8"), id_number.encode("ascii"), hashlib.sha256).hexdigest()
