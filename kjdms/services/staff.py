"""Staff accounts and roles, managed down the region tree: an administrator's scope is where the role was given and below."""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import exists, select

from ..models import Region, RoleAssignment, User
from ..permissions import PermissionDenied, SystemActor
from ..validators import ValidationError
from ..vocabulary import ADMINISTRATOR_ROLE, STAFF_ROLES
from . import audit
from .accounts import assign_role, hash_password, one_time_password
from .sessions import end_all_sessions
from .transaction import committing

USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{2,31}")


class OutOfScope(LookupError):
    """The account, role or region lies outside the administrator's scope: for them it does not exist (404)."""

    def __init__(self):
        super().__init__("未找到")


@dataclass(frozen=True)
class Scope:
    """The regions an administrator manages; region_ids None means every region (the operator's command line)."""

    region_ids: frozenset[int] | None
    # Regions strictly below a region where the actor is administrator: only there may they appoint administrators.
    below_ids: frozenset[int] | None

    def covers(self, region_id: int | None) -> bool:
        """Tell whether region_id lies in the scope."""
        return self.region_ids is None or region_id in self.region_ids

    def may_grant(self, role: str, region_id: int | None) -> bool:
        """Tell whether role may be given at region_id: no one appoints an administrator at or above their own level."""
        if role == ADMINISTRATOR_ROLE:
            return self.below_ids is None or region_id in self.below_ids
        return region_id is not None and self.covers(region_id)

    @property
    def is_everything(self) -> bool:
        """Tell whether nothing is out of scope."""
        return self.region_ids is None


EVERYTHING = Scope(None, None)


def subtree_ids(session, top_ids) -> tuple[frozenset[int], frozenset[int]]:
    """Return (the regions at and below top_ids, those strictly below one of them), from one read of the tree."""
    children: dict[int | None, list[int]] = {}
    for region_id, parent_id in session.execute(select(Region.id, Region.parent_id)):
        children.setdefault(parent_id, []).append(region_id)
    below: set[int] = set()
    stack = [child for top in top_ids for child in children.get(top, [])]
    while stack:
        region_id = stack.pop()
        if region_id not in below:
            below.add(region_id)
            stack.extend(children.get(region_id, []))
    return frozenset(below | set(top_ids)), frozenset(below)


def scope_of(session, actor) -> Scope:
    """Return the scope of actor's administrator roles (empty for anyone else)."""
    if isinstance(actor, SystemActor):
        return EVERYTHING
    if actor is None or not actor.is_active or actor.is_applicant:
        return Scope(frozenset(), frozenset())
    tops = {a.region_id for a in actor.role_assignments if a.role == ADMINISTRATOR_ROLE}
    return Scope(*subtree_ids(session, tops))


def is_administrator(user) -> bool:
    """Tell whether user holds administrator anywhere (and so may open the back office)."""
    return bool(user is not None and getattr(user, "is_authenticated", False) and not user.is_applicant
                and any(a.role == ADMINISTRATOR_ROLE for a in user.role_assignments))


def is_province_administrator(actor) -> bool:
    """Tell whether actor administers the whole tree (or is the operator's command line)."""
    if isinstance(actor, SystemActor):
        return True
    return bool(actor is not None and actor.is_active and not actor.is_applicant and any(
        a.role == ADMINISTRATOR_ROLE and a.region.parent_id is None for a in actor.role_assignments))


def staff_in_scope(scope: Scope):
    """Return a select of the staff accounts whose office lies in scope."""
    query = select(User).where(User.username.is_not(None))
    return query if scope.is_everything else query.where(User.region_id.in_(scope.region_ids))


def find_account(session, scope: Scope, user_id) -> User:
    """Return the staff account user_id if it lies in scope, else raise OutOfScope."""
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or user.is_applicant or not scope.covers(user.region_id):
        raise OutOfScope()
    return user


def find_account_by_name(session, scope: Scope, username: str) -> User:
    """Return the staff account called username if it lies in scope, else raise OutOfScope."""
    user = session.scalar(select(User).where(User.username == username))
    return find_account(session, scope, user.id if user is not None else None)


def find_region(session, scope: Scope, region_id) -> Region:
    """Return region region_id if it lies in scope, else raise OutOfScope (a forged id is as good as none)."""
    region = session.get(Region, region_id) if isinstance(region_id, int) else None
    if region is None or not scope.covers(region.id):
        raise OutOfScope()
    return region


def _require_manageable(scope: Scope, actor, user: User) -> None:
    """Refuse unless actor may change user: in scope, not themself, and could have given every role user holds."""
    if not scope.covers(user.region_id):
        raise OutOfScope()
    if getattr(actor, "id", None) is not None and actor.id == user.id:
        raise PermissionDenied("不能更改自己的账号或角色，请联系上级管理员")
    if not all(scope.may_grant(a.role, a.region_id) for a in user.role_assignments):
        raise PermissionDenied("该账号持有上级授予的权限，只能由上级管理员更改")


def check_username(session, username: str) -> str:
    """Return username stripped, or raise ValidationError when it is malformed or taken."""
    username = (username or "").strip()
    if not USERNAME.fullmatch(username):
        raise ValidationError("username", "用户名：3–32位，以字母开头，只用字母、数字和 _ . -")
    if session.scalar(select(exists().where(User.username == username))):
        raise ValidationError("username", "用户名：已被使用")
    return username


def create_account(session, actor, *, username: str, display_name: str, region: Region, department: str = "",
                   phone: str = "", role: str | None = None, role_region: Region | None = None,
                   password: str | None = None) -> tuple[User, str]:
    """Create a staff account of an office in scope, optionally with a first role; return it and its password.

    Without password a one-time password is made: shown once, it must be changed at the first sign-in.
    """
    scope = scope_of(session, actor)
    if not scope.covers(region.id):
        raise OutOfScope()
    if role is not None:
        _check_grant(scope, role, role_region or region)
    display_name = (display_name or "").strip()
    if not display_name or len(display_name) > 64:
        raise ValidationError("display_name", "姓名：必填，不超过64个字符")
    with committing(session):
        username = check_username(session, username)
        secret = password or one_time_password()
        user = User(username=username, display_name=display_name, region=region,
                    department=(department or "").strip()[:64] or None, phone=(phone or "").strip()[:32] or None,
                    password_hash=hash_password(secret, username), must_change_password=password is None)
        session.add(user)
        session.flush()
        audit.record(session, actor, "user.create", "user", user.id, region=region.code)
        if role is not None:
            assign_role(session, user, role, role_region or region, actor=actor)
    return user, secret


def _check_grant(scope: Scope, role: str, region: Region) -> None:
    if role not in STAFF_ROLES:
        raise ValidationError("role", f"角色：没有“{role}”这一角色")
    if not scope.covers(region.id):
        raise OutOfScope()
    if not scope.may_grant(role, region.id):
        raise PermissionDenied("只能在本级以下的地区任命系统管理员：任何人都不能扩大自己的权限")


def grant_role(session, actor, user: User, role: str, region: Region) -> RoleAssignment:
    """Give user role at region; both must lie in actor's scope (an administrator only strictly below theirs)."""
    scope = scope_of(session, actor)
    _require_manageable(scope, actor, user)
    _check_grant(scope, role, region)
    with committing(session):
        assignment = assign_role(session, user, role, region, actor=actor)
    return assignment


def revoke_role(session, actor, user: User, role: str, region: Region) -> None:
    """Take role at region away from user; their sessions end, so the loss holds from their next request."""
    scope = scope_of(session, actor)
    _require_manageable(scope, actor, user)
    assignment = next((a for a in user.role_assignments if a.role == role and a.region_id == region.id), None)
    if assignment is None:
        raise OutOfScope()
    with committing(session):
        user.role_assignments.remove(assignment)
        end_all_sessions(session, user)
        audit.record(session, actor, "role.revoke", "user", user.id, role=role, region=region.code)


def set_active(session, actor, user: User, active: bool) -> None:
    """Disable (ending every session at once) or re-enable user."""
    _require_manageable(scope_of(session, actor), actor, user)
    if user.is_active == active:
        return
    with committing(session):
        user.is_active = active
        if not active:
            end_all_sessions(session, user)
        audit.record(session, actor, "user.enable" if active else "user.disable", "user", user.id)


def reset_password(session, actor, user: User) -> str:
    """Give user a new one-time password (to change at the next sign-in), ending their sessions; return it."""
    _require_manageable(scope_of(session, actor), actor, user)
    secret = one_time_password()
    with committing(session):
        user.password_hash = hash_password(secret, user.username)
        user.must_change_password = True
        end_all_sessions(session, user)
        audit.record(session, actor, "user.reset_password", "user", user.id)
    return secret


def update_profile(session, actor, user: User, *, display_name: str, department: str, phone: str) -> None:
    """Change the name, department and phone of an account actor may manage."""
    _require_manageable(scope_of(session, actor), actor, user)
    display_name = (display_name or "").strip()
    if not display_name or len(display_name) > 64:
        raise ValidationError("display_name", "姓名：必填，不超过64个字符")
    changed = [field for field, value in (("display_name", display_name), ("department", department or None),
                                          ("phone", phone or None)) if getattr(user, field) != value]
    with committing(session):
        user.display_name, user.department, user.phone = display_name, department or None, phone or None
        audit.record(session, actor, "user.update", "user", user.id, fields=changed)


def list_accounts(session, actor, *, region: Region | None = None, role: str | None = None,
                  active: bool | None = None) -> list[User]:
    """Return the staff accounts of actor's scope, filtered by office region, role held and status."""
    scope = scope_of(session, actor)
    query = staff_in_scope(scope).order_by(User.username)
    if region is not None:
        query = query.where(User.region_id == find_region(session, scope, region.id).id)
    if role is not None:
        query = query.where(User.role_assignments.any(RoleAssignment.role == role))
    if active is not None:
        query = query.where(User.is_active.is_(active))
    return list(session.scalars(query))
