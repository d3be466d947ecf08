"""API clients: created, rotated and revoked by administrators within their scope; keys stored only as a hash, shown once.

A key holds 256 random bits, so a fast hash is enough to keep it (nothing to guess, unlike a password); its public
prefix finds the row. An administrator manages the clients whose every region lies in their scope, as for staff.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, not_, select

from ..models import ApiClient, Region, as_utc, utcnow
from ..validators import ValidationError, check_text
from . import audit
from .staff import OutOfScope, Scope, scope_of
from .transaction import committing

KEY_MARK = "kjc"
MAX_RATE_PER_MINUTE = 100_000
MAX_NAME = 60


def _hash(key: str) -> str:
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


@dataclass(frozen=True)
class ClientActor:
    """An API client as the audit log names it (it has no user account)."""

    label: str
    id: None = None


def clients_in_scope(scope: Scope):
    """Return a select of the clients whose every region lies in scope."""
    query = select(ApiClient)
    if scope.is_everything:
        return query
    return query.where(ApiClient.regions.any(), not_(ApiClient.regions.any(Region.id.not_in(list(scope.region_ids)))))


def find_client(session, scope: Scope, client_id) -> ApiClient:
    """Return client client_id if it lies in scope, else raise OutOfScope."""
    client = session.scalar(clients_in_scope(scope).where(ApiClient.id == client_id)) if isinstance(
        client_id, int) else None
    if client is None:
        raise OutOfScope()
    return client


def _clean(session, *, name: str, purpose: str, rate_per_minute) -> tuple[str, str, int]:
    name, purpose = (name or "").strip(), (purpose or "").strip()
    check_text("name", "名称", name)
    check_text("purpose", "用途", purpose)
    # The audit rows name the client "api:<name>" in a column of 64 characters.
    if not name or len(name) > MAX_NAME:
        raise ValidationError("name", f"名称：必填，不超过{MAX_NAME}个字符")
    if not purpose or len(purpose) > 255:
        raise ValidationError("purpose", "用途：必填，不超过255个字符（写明依据和所需信息，如“会计资格考试报名核验”）")
    if not isinstance(rate_per_minute, int) or not 1 <= rate_per_minute <= MAX_RATE_PER_MINUTE:
        raise ValidationError("rate_per_minute", f"每分钟查询上限：应为1至{MAX_RATE_PER_MINUTE}之间的整数")
    if session.scalar(select(exists().where(ApiClient.name == name))):
        raise ValidationError("name", "名称：已被使用")
    return name, purpose, rate_per_minute


def create_client(session, actor, *, name: str, purpose: str, regions, may_see_credit: bool = False,
                  expires_at: datetime | None = None, rate_per_minute: int = 1000) -> tuple[ApiClient, str]:
    """Add a client allowed to ask about persons of regions (and below) in actor's scope; return it and its key."""
    scope = scope_of(session, actor)
    regions = list(regions)
    if not regions:
        raise ValidationError("regions", "可查询地区：至少选择一个")
    if not all(scope.covers(region.id) for region in regions):
        raise OutOfScope()
    if expires_at is not None and as_utc(expires_at) <= utcnow():
        raise ValidationError("expires_at", "到期日期：应晚于今天")
    name, purpose, rate_per_minute = _clean(session, name=name, purpose=purpose, rate_per_minute=rate_per_minute)
    with committing(session):
        client = ApiClient(name=name, purpose=purpose, regions=regions, may_see_credit=bool(may_see_credit),
                           expires_at=expires_at, rate_per_minute=rate_per_minute,
                           created_by=actor if getattr(actor, "id", None) is not None else None)
        key = issue_key(client)
        session.add(client)
        session.flush()
        audit.record(session, actor, "api_client.create", "api_client", client.id, name=name, purpose=purpose,
                     regions=[region.code for region in regions], may_see_credit=client.may_see_credit)
    return client, key


def rotate_key(session, actor, client: ApiClient) -> str:
    """Replace client's key at once (the old one stops working) and return the new one, shown once."""
    find_client(session, scope_of(session, actor), client.id)
    if client.revoked_at is not None:
        raise ValidationError("key", "该调用方已撤销，不能更换密钥")
    with committing(session):
        key = issue_key(client)
        client.rotated_at = utcnow()
        audit.record(session, actor, "api_client.rotate", "api_client", client.id)
    return key


def revoke_client(session, actor, client: ApiClient) -> None:
    """Revoke client for good: its key is refused from the next request on."""
    find_client(session, scope_of(session, actor), client.id)
    if client.revoked_at is not None:
        return
    with committing(session):
        client.revoked_at = utcnow()
        audit.record(session, actor, "api_client.revoke", "api_client", client.id)
