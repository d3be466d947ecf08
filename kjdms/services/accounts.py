"""Accounts: passwords, and staff users with roles on regions (applicants get theirs at registration)."""
from __future__ import annotations

import functools
import secrets
import string
from importlib import resources

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from ..models import Region, RoleAssignment, User
from ..validators import ValidationError
from ..vocabulary import STAFF_ROLES
from . import audit

MIN_PASSWORD_LENGTH = 8
# The policy, as the README and the password pages state it.
PASSWORD_POLICY = f"至少{MIN_PASSWORD_LENGTH}位，同时包含字母和数字，不能包含用户名，不能是常见密码"
APPLICANT_ROLE_REFUSED = "角色：会计人员本人的账号不能持有工作人员角色，请为其另建工作人员账号"


@functools.cache
def common_passwords() -> frozenset[str]:
    """Return the shipped list of common passwords, lower-cased."""
    text = resources.files("kjdms").joinpath("data/common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#")


def check_password(password: str, username: str | None = None) -> None:
    """Raise ValidationError when password breaks the policy (PASSWORD_POLICY)."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationError("password", f"密码：至少{MIN_PASSWORD_LENGTH}位")
    if password.isdigit() or password.isalpha():
        raise ValidationError("password", "密码：须同时包含字母和数字")
    if username and username.lower() in password.lower():
        raise ValidationError("password", "密码：不能包含用户名")
    if password.lower() in common_passwords():
        raise ValidationError("password", "密码：这是常见密码，容易被猜中，请换一个")


def hash_password(password: str, username: str | None = None) -> str:
    """Return a salted scrypt hash of password, refusing a weak one."""
    check_password(password, username)
    return generate_password_hash(password, method="scrypt")


def one_time_password() -> str:
    """Return a random password of letters and digits that passes the policy, to be shown once."""
    letters = "".join(secrets.choice(string.ascii_letters) for _ in range(6))
    return letters + "".join(secrets.choice(string.digits) for _ in range(4))


@functools.cache
def _stand_in_hash() -> str:
    return generate_password_hash(secrets.token_hex(16), method="scrypt")


def password_matches(user: User | None, password: str) -> bool:
    """Tell whether password is user's (False for no user, or one with no password yet), at the same cost either way."""
    stored = user.password_hash if user is not None else None
    # An unknown account must cost what a wrong password costs, or timing tells which accounts exist.
    matches = check_password_hash(stored or _stand_in_hash(), password or "")
    return bool(stored) and matches


def set_password(session, user: User, password: str, actor=None) -> None:
    """Replace user's password with one they chose (the caller commits); a one-time password is then spent."""
    user.password_hash = hash_password(password, user.username)
    user.must_change_password = False
    audit.record(session, actor or user, "user.set_password", "user", user.id)


def assign_role(session, user: User, role: str, region: Region, actor=None) -> RoleAssignment:
    """Give user role on region (and so on every region below it); idempotent. Applicant accounts hold none."""
    if role not in STAFF_ROLES:
        raise ValidationError("role", f"角色：没有“{role}”这一角色")
    # staff.py and the transitions read an applicant's roles as owner only: a staff role there would be a
    # second identity on a personal account, outside the back office's lists (which show staff accounts).
    if user.is_applicant:
        raise ValidationError("role", APPLICANT_ROLE_REFUSED)
    existing = session.scalar(select(RoleAssignment).filter_by(user=user, role=role, region=region))
    if existing:
        return existing
    if user.region is None and not user.is_applicant:
        user.region = region  # the first role's region is the account's office until told otherwise
    assignment = RoleAssignment(user=user, role=role, region=region)
    session.add(assignment)
    session.flush()
    audit.record(session, actor, "role.assign", "user", user.id, role=role, region=region.code)
    return assignment
