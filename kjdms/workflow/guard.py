"""Decide whether an actor's roles and the subject's conditions pass a transition's guard."""
from __future__ import annotations

from typing import Callable, Collection, Mapping

from .definition import State, Transition

# A condition looks at the subject and returns None when it holds, else why not (Chinese).
Condition = Callable[[object], "str | None"]


def guard_refusal(
    transition: Transition,
    state: State,
    roles: Collection[str],
    subject: object,
    conditions: Mapping[str, Condition],
) -> str | None:
    """Return why the guard refuses, or None when it passes."""
    guard = transition.guard
    if guard.roles and not guard.roles.intersection(roles):
        return f"您没有执行「{transition.title}」的权限"
    if guard.permissions and not any(
        state.roles_with(permission).intersection(roles) for permission in guard.permissions
    ):
        return f"您在「{state.title}」状态下没有执行「{transition.title}」的权限"
    for name in guard.conditions:
        reason = conditions[name](subject)
        if reason:
            return reason
    return None
