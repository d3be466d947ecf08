"""API clients' keys: made with enough randomness to need no slowing down, stored only as a hash, shown once."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import select

from ..models import ApiClient, as_utc, utcnow

KEY_MARK = "kjc"


def _hash(key: str) -> str:
    # 256 random bits make a fast hash enough: nothing to guess, unlike a password.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str, str]:
    """Return a fresh key, its public prefix and its hash."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, _hash(key)


def issue_key(client: ApiClient) -> str:
    """Give client a new key (replacing any it had) and return it: the only time it is seen whole."""
    key, client.key_prefix, client.key_hash = new_key()
    return key


def is_usable(client: ApiClient, now: datetime | None = None) -> bool:
    """Tell whether client may call the API now: neither revoked nor past its expiry."""
    now = now or utcnow()
    return client.revoked_at is None and (client.expires_at is None or as_utc(client.expires_at) > now)


def client_for_key(session, key: str) -> ApiClient | None:
    """Return the usable client whose key this is, or None for anything else."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_MARK or len(parts[1]) != 12:
        return None
    client = session.scalar(select(ApiClient).where(ApiClient.key_prefix == parts[1]))
    if client is None or not hmac.compare_digest(client.key_hash, _hash(key)) or not is_usable(client):
        return None
    return client


def create_client(session, *, name: str, purpose: str, regions, may_see_credit: bool = False,
                  expires_at: datetime | None = None, rate_per_minute: int = 60, created_by=None) -> tuple[ApiClient, str]:
    """Add a client allowed to ask about persons of regions (and those below them); return it and its key."""
    client = ApiClient(name=name, purpose=purpose, regions=list(regions), may_see_credit=may_see_credit,
                       expires_at=expires_at, rate_per_minute=rate_per_minute, created_by=created_by)
    key = issue_key(client)
    session.add(client)
    return client, key
