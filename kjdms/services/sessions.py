"""Revocable sign-in sessions: a per-user session generation in the database, checked on every request.

Why a generation rather than a server-side session store: the user loader reads the users row on every
request anyway, so comparing one integer costs no extra query, no new table written on each request (a
store refreshing an idle timer would turn every page view into a write, on SQLite a write lock) and no new
dependency. Raising the generation ends every session of that user at once, on every process and
server, because they all compare against the same row. The price: sessions cannot be ended one by one,
so signing out on one device signs out the others too (the issue asks for exactly that). The sign-in
time and the last request's time travel in the signed cookie: a copy of the cookie cannot move the
sign-in time (absolute lifetime), and the idle limit ends a session nobody uses.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import event, inspect

from ..models import RoleAssignment, User, utcnow

GENERATION = "_kjdms_generation"
SIGNED_IN_AT = "_kjdms_signed_in_at"
LAST_SEEN_AT = "_kjdms_last_seen_at"
# Rewriting the cookie on every request would only add traffic: the idle clock moves in steps of a minute.
SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Lifetimes:
    """How long a session may stay idle, and live at all, for staff and for applicants."""

    staff_idle: timedelta = timedelta(minutes=30)
    staff_absolute: timedelta = timedelta(hours=8)
    applicant_idle: timedelta = timedelta(hours=2)
    applicant_absolute: timedelta = timedelta(hours=24)

    def of(self, user: User) -> tuple[timedelta, timedelta]:
        """Return (idle, absolute) for user."""
        if user.is_applicant:
            return self.applicant_idle, self.applicant_absolute
        return self.staff_idle, self.staff_absolute


def end_all_sessions(session, user: User) -> None:
    """End every session of user at once, on every process (the caller commits)."""
    # An SQL expression, not a number read earlier: two concurrent revocations both raise it.
    user.session_generation = User.session_generation + 1
    session.add(user)


def start_session(cookie: MutableMapping, user: User, now: datetime | None = None) -> None:
    """Stamp a freshly signed-in cookie with user's current generation and the time."""
    now = now or utcnow()
    cookie[GENERATION] = user.session_generation
    cookie[SIGNED_IN_AT] = cookie[LAST_SEEN_AT] = int(now.timestamp())


def session_is_current(cookie: MutableMapping, user: User, lifetimes: Lifetimes, now: datetime | None = None) -> bool:
    """Tell whether the cookie's session of user still holds, and note this request on its idle clock."""
    now = now or utcnow()
    signed_in_at, last_seen_at = cookie.get(SIGNED_IN_AT), cookie.get(LAST_SEEN_AT)
    # A cookie without the stamps predates them (or was forged without them): never a session.
    if not user.is_active or cookie.get(GENERATION) != user.session_generation:
        return False
    if not isinstance(signed_in_at, int) or not isinstance(last_seen_at, int):
        return False
    idle, absolute = lifetimes.of(user)
    moment = now.timestamp()
    if moment - signed_in_at > absolute.total_seconds() or moment - last_seen_at > idle.total_seconds():
        return False
    if moment - last_seen_at >= SEEN_RESOLUTION.total_seconds():
        cookie[LAST_SEEN_AT] = int(moment)
    return True


def install_revocation(session_factory) -> None:
    """End a user's sessions whenever a flush changes their password or disables them, or removes a role.

    A hook as well as the explicit calls: the back office edits users and roles through generic views that
    call no service, and a session must not outlive a lost right whichever way it was taken away.
    """
    @event.listens_for(session_factory, "before_flush")
    def revoke(session, flush_context, instances):
        users = set()
        for instance in session.dirty:
            if isinstance(instance, User):
                state = inspect(instance)
                changed = state.attrs.password_hash.history.has_changes()
                disabled = state.attrs.is_active.history.has_changes() and not instance.is_active
                if changed or disabled:
                    users.add(instance)
        for instance in session.deleted:
            if isinstance(instance, RoleAssignment) and instance.user is not None:
                users.add(instance.user)
        for user in users - set(session.deleted):
            end_all_sessions(session, user)
