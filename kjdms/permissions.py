"""Who may do what to a dossier: the actor's roles on it, read against the workflow's permission map."""
from __future__ import annotations

from dataclasses import dataclass

from .models import Dossier, Region, User
from .vocabulary import OWNER_ROLE, SYSTEM_ROLE
from .workflow import WorkflowEngine


@dataclass(frozen=True)
class SystemActor:
    """The scheduled jobs (the deadline purge): no account, only the system role."""

    label: str = "system"
    id: None = None
    is_applicant: bool = False


SYSTEM = SystemActor()
Actor = User | SystemActor


class PermissionDenied(Exception):
    """The actor may not do this; the message says so in Chinese without naming the object."""


def regions_covered_by(region: Region | None) -> list[Region]:
    """Return the regions whose role assignments reach a dossier in region."""
    return region.ancestors_and_self() if region is not None else []


def holds_any_role(user: User, roles) -> bool:
    """Tell whether user is staff holding one of roles on some region (what a staff page or operation asks first)."""
    return not user.is_applicant and any(assignment.role in roles for assignment in user.role_assignments)


def roles_on(actor: Actor, dossier: Dossier) -> frozenset[str]:
    """Return the roles actor holds on dossier: owner, and staff roles inherited down the region tree."""
    if isinstance(actor, SystemActor):
        return frozenset({SYSTEM_ROLE})
    if actor is None or not actor.is_active:
        return frozenset()
    roles = set()
    if actor.person_id is not None and actor.person_id == dossier.person_id:
        roles.add(OWNER_ROLE)
    if actor.is_applicant:
        # Staff roles are staff accounts' (as services/staff.py reads them): no query for an applicant's own change.
        return frozenset(roles)
    covering = {region.id for region in regions_covered_by(dossier.region)}
    for assignment in actor.role_assignments:
        # A dossier with no region yet is reached only by roles held at the top of the tree.
        if assignment.region_id in covering or (
            dossier.region is None and assignment.region.parent_id is None
        ):
            roles.add(assignment.role)
    return frozenset(roles)


def can(workflow: WorkflowEngine, actor: Actor, permission: str, dossier: Dossier) -> bool:
    """Tell whether actor holds permission on dossier in its current state."""
    return workflow.has_permission(dossier.state, permission, roles_on(actor, dossier))


def require(workflow: WorkflowEngine, actor: Actor, permission: str, dossier: Dossier) -> frozenset[str]:
    """Return actor's roles on dossier, or raise PermissionDenied when permission is not held."""
    roles = roles_on(actor, dossier)
    if not workflow.has_permission(dossier.state, permission, roles):
        title = workflow.definition.permission_titles.get(permission, permission)
        raise PermissionDenied(f"您没有「{title}」此档案的权限")
    return roles
