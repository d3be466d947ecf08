"""Who is calling the API: a downstream system by its key, or staff by a token or their signed-in session.

A request carrying `Authorization: Bearer …` is judged by that alone (a cookie beside it is ignored), and
needs no CSRF token: a browser never adds that header by itself. A request relying on the session cookie is
a browser's, so its writes must carry the page's CSRF token (X-CSRFToken), exactly as the pages' forms do.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from flask import current_app, g, request
from flask_login import current_user

from ..backends import get_config
from ..extensions import csrf, db
from ..models import ApiClient, User
from ..services.api_clients import client_for_key
from ..services.api_tokens import user_for_token
from ..views import staff_role_required as page_staff_role_required
from .errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="kjdms"'}


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of this request: exactly one of client and user is set."""

    client: ApiClient | None = None
    user: User | None = None
    by_token: bool = False


def bearer_credential() -> str | None:
    """Return the credential of an `Authorization: Bearer` header, or None when there is no such header."""
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential.strip()


def _from_bearer(credential: str) -> Caller:
    client = client_for_key(db.session, credential)
    if client is not None:
        g._login_user = current_app.login_manager.anonymous_user()  # never the cookie's user as well
        return Caller(client=client, by_token=True)
    lifetime = int(get_config().STAFF_SESSION_LIFETIME.total_seconds())
    user = user_for_token(db.session, current_app.secret_key, credential, lifetime)
    if user is None:
        raise ApiError(401, "invalid_credentials", "凭据无效、已过期或已被撤销。", headers=CHALLENGE)
    g._login_user = user  # flask-login's current_user, so the pages' permission helpers serve the API too
    return Caller(user=user, by_token=True)


def identify() -> None:
    """Before every API request: find the caller, and hold a cookie-authenticated write to the CSRF check."""
    credential = bearer_credential()
    if credential is not None:
        g.api_caller = _from_bearer(credential)
        return
    g.api_caller = None
    if current_user.is_authenticated:
        g.api_caller = Caller(user=current_user._get_current_object())
        if request.method not in SAFE_METHODS:
            csrf.protect()


def caller() -> Caller | None:
    """Return this request's caller, or None when it carried no credentials."""
    return g.get("api_caller")


def unauthenticated() -> ApiError:
    """Return the 401 for a request that carried no credentials."""
    return ApiError(401, headers=CHALLENGE)


def _requiring(allowed, refusal: str):
    """Return a decorator letting through callers that allowed(caller) accepts: 401 without credentials, else 403."""
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            who = caller()
            if who is None:
                raise unauthenticated()
            if not allowed(who):
                raise ApiError(403, message=refusal)
            return view(*args, **kwargs)
        return wrapper
    return decorate


# Only a downstream system with a usable key; staff and applicants get 403.
client_required = _requiring(lambda who: who.client is not None, "此接口仅供持 API 密钥的下游系统调用。")
# Only staff, by token or session; a client or an applicant gets 403.
staff_required = _requiring(lambda who: who.user is not None and not who.user.is_applicant, "此接口仅供工作人员调用。")


def staff_role_required(*roles):
    """Put the pages' staff_role_required behind staff_required: 401 without credentials, 403 without one of roles."""
    def decorate(view):
        return staff_required(page_staff_role_required(*roles)(view))
    return decorate
