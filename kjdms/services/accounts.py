"""Accounts: passwords, and staff users with roles on regions (applicants get theirs at registration)."""
from __future__ import annotations

import functools
import secrets

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from ..models import Region, RoleAssignment, User
from ..validators import ValidationError
from ..vocabulary import STAFF_ROLES
from . import audit

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    """Return a salted scrypt hash of password, refusing a weak one."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationError("password", f"密码：至少{MIN_PASSWORD_LENGTH}位")
    if password.isdigit() or password.isalpha():
        raise ValidationError("password", "密码：须同时包含字母和数字")
    return generate_password_hash(password, method="scrypt")


@functools.cache
def _stand_in_hash() -> str:
    return generate_password_hash(secrets.token_hex(16), method="scrypt")


def password_matches(user: User | None, password: str) -> bool:
    """Tell whether password is user's (False for no user, or one with no password yet), at the same cost either way."""
    stored = user.password_hash if user is not None else None
    # An unknown account must cost what a wrong password costs, or timing tells which accounts exist.
    matches = check_password_hash(stored or _stand_in_hash(), password or "")
    return bool(stored) and matches


def create_staff_user(session, username: str, password: str, display_name: str, actor=None) -> User:
    """Create a staff account (signing in by user name)."""
    user = User(username=username, display_name=display_name, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", "user", user.id)
    return user


def set_password(session, user: User, password: str, actor=None) -> None:
    """Replace user's password (the caller commits)."""
    user.password_hash = hash_password(password)
    audit.record(session, actor or user, "user.set_password", "user", user.id)


def assign_role(session, user: User, role: str, region: Region, actor=None) -> RoleAssignment:
    """Give user role on region (and so on every region below it); idempotent."""
    if role not in STAFF_ROLES:
        raise ValidationError("role", f"角色：没有“{role}”这一角色")
    existing = session.scalar(select(RoleAssignment).filter_by(user=user, role=role, region=region))
    if existing:
        return existing
    assignment = RoleAssignment(user=user, role=role, region=region)
    session.add(assignment)
    session.flush()
    audit.record(session, actor, "role.assign", "user", user.id, role=role, region=region.code)
    return assignment
