"""Beijing time: the calendar of the notices' dates and deadlines (the database keeps UTC)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from .models import utcnow

BEIJING = ZoneInfo("Asia/Shanghai")


def _aware(moment: datetime) -> datetime:
    """Return moment as an aware time (SQLite hands stored UTC times back naive)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def local_date(moment: datetime) -> date:
    """Return the Beijing calendar date of moment."""
    return _aware(moment).astimezone(BEIJING).date()


def local_today() -> date:
    """Return today's date in Beijing."""
    return utcnow().astimezone(BEIJING).date()


def end_of_day(day: date) -> datetime:
    """Return the UTC instant at which day ends in Beijing."""
    return datetime.combine(day + timedelta(days=1), time(0), BEIJING).astimezone(timezone.utc)


def local_text(moment: datetime | None) -> str:
    """Return moment as Beijing time for people, e.g. 2019-06-15 09:30 ("" for none)."""
    return _aware(moment).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M") if moment else ""


def chinese_date(day: date) -> str:
    """Return day as people write it, e.g. 2019年6月30日."""
    return f"{day.year}年{day.month}月{day.day}日"
