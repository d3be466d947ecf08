"""Slow down password guessing: count failed sign-ins per account and per address."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select

from ..models import LoginFailure, utcnow
from .identity import id_number_hash

WINDOW = timedelta(minutes=15)
# Failures within WINDOW that lock further attempts out until the oldest of them ages out.
MAX_PER_ACCOUNT = 5
MAX_PER_ADDRESS = 30
LOCKED_MESSAGE = "登录失败次数过多，请15分钟后再试"


def _keys(secret: str, account: str, address: str) -> tuple[str, str]:
    # Keyed hashes: the table must not become a list of who tried to sign in from where.
    return (id_number_hash(secret, f"account:{account.strip().upper()}"),
            id_number_hash(secret, f"address:{address}"))


def _recent(session, key: str) -> int:
    return session.scalar(select(func.count()).select_from(LoginFailure)
                          .where(LoginFailure.key == key, LoginFailure.occurred_at > utcnow() - WINDOW))


def is_locked(session, secret: str, account: str, address: str) -> bool:
    """Tell whether the account or the address has failed too often lately (whether or not the account exists)."""
    account_key, address_key = _keys(secret, account, address)
    return _recent(session, account_key) >= MAX_PER_ACCOUNT or _recent(session, address_key) >= MAX_PER_ADDRESS


def record_failure(session, secret: str, account: str, address: str) -> None:
    """Count one failed sign-in against the account and the address, and forget failures past the window."""
    account_key, address_key = _keys(secret, account, address)
    session.add_all([LoginFailure(key=account_key), LoginFailure(key=address_key)])
    session.execute(delete(LoginFailure).where(LoginFailure.occurred_at <= utcnow() - WINDOW))
    session.commit()


def clear_account(session, secret: str, account: str) -> None:
    """Forget the account's failures after a successful sign-in."""
    account_key, _ = _keys(secret, account, "")
    session.execute(delete(LoginFailure).where(LoginFailure.key == account_key))
    session.commit()
