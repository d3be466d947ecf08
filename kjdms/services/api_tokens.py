"""Staff API tokens: signed, carrying the user's session generation, so they end exactly when the user's sessions do."""
from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from ..models import User

TOKEN_MARK = "kjs_"
SALT = "kjdms-api-staff-token"


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def issue_token(secret_key: str, user: User) -> str:
    """Return a token that signs in as staff user until their sessions end or the token's lifetime passes."""
    return TOKEN_MARK + _serializer(secret_key).dumps({"user": user.id, "generation": user.session_generation})


def user_for_token(session: Session, secret_key: str, token: str, lifetime_seconds: int) -> User | None:
    """Return the active staff user a current token names, or None for anything else."""
    if not token.startswith(TOKEN_MARK):
        return None
    try:
        claims = _serializer(secret_key).loads(token[len(TOKEN_MARK):], max_age=lifetime_seconds)
    except BadSignature:  # also a token past its lifetime (SignatureExpired is a BadSignature)
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("user"), int):
        return None
    user = session.get(User, claims["user"])
    # A password change, a disabled account or a removed role raises the generation (services/sessions.py).
    if user is None or user.is_applicant or not user.is_active or claims.get("generation") != user.session_generation:
        return None
    return user
