"""The time rules of 三、信息采集时间: one month to register or update, and the collection windows."""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime

# The notices count days in Beijing: a registration at 01:00 Beijing time is that day's, not the day before.
from ..local_time import chinese_date, local_date, local_today
from ..models import Dossier, utcnow

LEGAL_BASIS = "辽财会〔2019〕116号 三"
SUBMIT = "submit"  # the transition whose first firing counts as reporting an update


@dataclass(frozen=True)
class LateFlag:
    """A one-month rule the person missed, as the reviewer is told."""

    kind: str  # "registration" or "update"
    label: str
    detail: str


@dataclass(frozen=True)
class Window:
    """One collection period (起止日期 inclusive)."""

    start: date
    end: date

    def __str__(self) -> str:
        return f"{chinese_date(self.start)}至{chinese_date(self.end)}"


def one_month_after(day: date) -> date:
    """Return the same day of the next month, or that month's last day when it is shorter (1月31日 → 2月28日)."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def first_submitted_at(dossier: Dossier) -> datetime | None:
    """Return when this dossier record was first submitted for review, if it was."""
    return next((row.created_at for row in dossier.history if row.action == SUBMIT), None)


def registration_flag(dossier: Dossier) -> LateFlag | None:
    """Flag a registration made more than a month after the person took an accounting job.

    People of the old system registered there: the import date says nothing about them.
    """
    if dossier.job_started_on is None or dossier.person.is_legacy:
        return None
    return late_registration(dossier.job_started_on, (dossier.baseline or dossier).created_at, legacy=False)


def late_registration(started: date | None, registered_at: datetime, *, legacy: bool) -> LateFlag | None:
    """Flag a registration at registered_at more than a month after started (none for the old system's people)."""
    if started is None or legacy:
        return None
    registered_on = local_date(registered_at)
    if registered_on <= one_month_after(started):
        return None
    return LateFlag("registration", "逾期登记",
                    f"从事会计工作日期 {started.isoformat()}，登记于 {registered_on.isoformat()}，超过一个月")


def update_flag(dossier: Dossier, now: datetime | None = None) -> LateFlag | None:
    """Flag an update reported more than a month after the change it reports.

    The update counts as reported when this record was first submitted (now, if not yet).
    A working copy that keeps its baseline's change date declares no new change.
    """
    changed = dossier.information_changed_on
    if changed is None or (dossier.baseline is not None and dossier.baseline.information_changed_on == changed):
        return None
    return late_update(changed, first_submitted_at(dossier) or now or utcnow())


def late_update(changed: date | None, reported_at: datetime) -> LateFlag | None:
    """Flag a change of changed reported at reported_at, more than a month later."""
    if changed is None:
        return None
    reported_on = local_date(reported_at)
    if reported_on <= one_month_after(changed):
        return None
    return LateFlag("update", "逾期更新",
                    f"信息变更日期 {changed.isoformat()}，更新于 {reported_on.isoformat()}，超过一个月")


def late_flags(dossier: Dossier, now: datetime | None = None) -> list[LateFlag]:
    """Return the one-month rules dossier broke (三), for the reviewer."""
    return [flag for flag in (registration_flag(dossier), update_flag(dossier, now)) if flag is not None]


def windows(config) -> list[Window]:
    """Return the configured collection windows, in order."""
    return [Window(start, end) for start, end in config.COLLECTION_WINDOWS]


def current_window(config, today: date | None = None) -> Window | None:
    """Return the collection window open today, if any."""
    today = today or local_today()
    return next((window for window in windows(config) if window.start <= today <= window.end), None)


def next_window(config, today: date | None = None) -> Window | None:
    """Return the first collection window that has not started yet, if one is announced."""
    today = today or local_today()
    return next((window for window in windows(config) if window.start > today), None)
