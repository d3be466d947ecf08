"""Slow down password guessing without letting anyone lock a real user out.

Policy: failed sign-ins are counted per account *and address* (5 in 15 minutes stop that address trying that
account), per address (30 in 15 minutes stop that address altogether), and per account from anywhere: past 5,
each further attempt on the account waits a little longer (0.5 s doubling, at most 4 s) before its password is
checked. An attacker elsewhere can slow a user's sign-in by seconds, never refuse it. Registrations are counted
per address (10 in 15 minutes). Unknown accounts are counted exactly like real ones, so the limits reveal nothing.
"""
from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import delete, func, select

from ..models import LoginFailure, utcnow
from .identity import id_number_hash

WINDOW = timedelta(minutes=15)
MAX_PER_ACCOUNT_AND_ADDRESS = 5
MAX_PER_ADDRESS = 30
SLOW_AFTER = 5
FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 4.0
MAX_REGISTRATIONS_PER_ADDRESS = 10
LOCKED_MESSAGE = "登录失败次数过多，请15分钟后再试"
REGISTRATION_MESSAGE = "注册次数过多，请15分钟后再试"
# How a delay is waited out; tests put a recorder here instead of sleeping.
pause = time.sleep


def _key(secret: str, kind: str, *parts: str) -> str:
    # Keyed hashes: the table must not become a list of who tried to sign in from where.
    return id_number_hash(secret, ":".join([kind, *parts]))


def _account(account: str) -> str:
    return account.strip().upper()


def _pair(secret: str, account: str, address: str) -> str:
    # Starts like the account's own key, so the account's rows from every address can be found and forgotten.
    return _key(secret, "account", account)[:32] + _key(secret, "address", address)[:32]


def _recent(session, key: str) -> int:
    return session.scalar(select(func.count()).select_from(LoginFailure)
                          .where(LoginFailure.key == key, LoginFailure.occurred_at > utcnow() - WINDOW))


def _add(session, *keys: str) -> None:
    session.add_all([LoginFailure(key=key) for key in keys])
    session.execute(delete(LoginFailure).where(LoginFailure.occurred_at <= utcnow() - WINDOW))
    session.commit()


def is_locked(session, secret: str, account: str, address: str) -> bool:
    """Tell whether this address has failed too often on this account, or on any (whether or not it exists)."""
    return (_recent(session, _pair(secret, _account(account), address)) >= MAX_PER_ACCOUNT_AND_ADDRESS
            or _recent(session, _key(secret, "address", address)) >= MAX_PER_ADDRESS)


def delay_seconds(session, secret: str, account: str) -> float:
    """Return how long an attempt on account waits first, given its recent failures from every address."""
    failures = _recent(session, _key(secret, "account", _account(account)))
    if failures < SLOW_AFTER:
        return 0.0
    return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** (failures - SLOW_AFTER))


def record_failure(session, secret: str, account: str, address: str) -> None:
    """Count one failed sign-in against the account, the address and the pair, and forget those past the window."""
    account = _account(account)
    _add(session, _key(secret, "account", account), _key(secret, "address", address),
         _pair(secret, account, address))


def clear_account(session, secret: str, account: str, address: str | None = None) -> None:
    """Forget the account's failures and this address's on it (a sign-in), or from every address (a purge)."""
    account = _account(account)
    if address is None:
        prefix = _key(secret, "account", account)[:32]
        session.execute(delete(LoginFailure).where(LoginFailure.key.startswith(prefix, autoescape=True)))
    else:
        session.execute(delete(LoginFailure).where(LoginFailure.key.in_(
            [_key(secret, "account", account), _pair(secret, account, address)])))
    session.commit()


def registration_allowed(session, secret: str, address: str) -> bool:
    """Count a registration attempt from address; tell whether it is within the limit."""
    key = _key(secret, "register", address)
    if _recent(session, key) >= MAX_REGISTRATIONS_PER_ADDRESS:
        return False
    _add(session, key)
    return True
