"""Per-client rate limits for the API: persons asked about per minute, counted in the database.

Why the database: the site runs as several processes (kjdms serve --workers N), which share nothing else, and a
limit each process kept to itself would multiply by N. One row per client and minute is raised by a single
conditional UPDATE, so two processes can never both take the last places, on SQLite and on PostgreSQL alike;
the login throttle (services/login_throttle.py) keeps its counts in the database for the same reason.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from ..models import ApiClient, ApiRateWindow, utcnow

WINDOW = timedelta(minutes=1)


def window_start(moment: datetime) -> datetime:
    """Return the start of the minute moment falls in."""
    return moment.replace(second=0, microsecond=0)


def _raise_count(session, client_id: int, start: datetime, persons: int, limit: int) -> bool:
    result = session.execute(
        update(ApiRateWindow)
        .where(ApiRateWindow.client_id == client_id, ApiRateWindow.window_start == start,
               ApiRateWindow.count + persons <= limit)
        .values(count=ApiRateWindow.count + persons))
    return result.rowcount == 1


def take(session, client: ApiClient, persons: int, now: datetime | None = None) -> int | None:
    """Count persons against client's current minute and commit; return None if allowed, else seconds to wait."""
    now = now or utcnow()
    start = window_start(now)
    wait = max(1, math.ceil((start + WINDOW - now).total_seconds()))
    if persons > client.rate_per_minute:
        return wait  # more than a whole minute's allowance: refused however long it waits, the message says why
    if _raise_count(session, client.id, start, persons, client.rate_per_minute):
        session.commit()
        return None
    try:
        session.add(ApiRateWindow(client_id=client.id, window_start=start, count=persons))
        # Past minutes are of no use: the first call of each minute clears its client's older rows.
        session.execute(delete(ApiRateWindow).where(ApiRateWindow.client_id == client.id,
                                                    ApiRateWindow.window_start < start))
        session.commit()
        return None
    except IntegrityError:
        # The minute's row exists after all (another process made it, or it is full): count again on it.
        session.rollback()
    if _raise_count(session, client.id, start, persons, client.rate_per_minute):
        session.commit()
        return None
    session.rollback()
    return wait
