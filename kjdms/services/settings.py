"""Settings the province administrator changes in the back office; the KJDMS_* variables stay their defaults."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ..config import collection_windows
from ..models import Setting
from ..permissions import PermissionDenied
from ..validators import ValidationError
from . import audit
from .staff import is_province_administrator
from .transaction import committing

COLLECTION_WINDOWS = "collection_windows"
CONFIRMATION_DEADLINE = "confirmation_deadline"
TITLES = {COLLECTION_WINDOWS: "信息采集期", CONFIRMATION_DEADLINE: "原系统人员信息更新和确认截止日期"}


@dataclass(frozen=True)
class Effective:
    """The time settings in force: the database's value once set, else the configuration's."""

    COLLECTION_WINDOWS: tuple[tuple[date, date], ...]
    CONFIRMATION_DEADLINE: date


def windows_text(windows) -> str:
    """Return windows as the text KJDMS_COLLECTION_WINDOWS takes: start:end, comma-separated."""
    return ",".join(f"{start.isoformat()}:{end.isoformat()}" for start, end in windows)


def effective(session, config) -> Effective:
    """Return the collection windows and the confirmation deadline in force."""
    stored = {row.key: row.value for row in session.query(Setting).filter(
        Setting.key.in_((COLLECTION_WINDOWS, CONFIRMATION_DEADLINE)))}
    windows = config.COLLECTION_WINDOWS
    if COLLECTION_WINDOWS in stored:
        windows = collection_windows(stored[COLLECTION_WINDOWS])
    deadline = config.CONFIRMATION_DEADLINE
    if CONFIRMATION_DEADLINE in stored:
        deadline = date.fromisoformat(stored[CONFIRMATION_DEADLINE])
    return Effective(windows, deadline)


def _normalized(key: str, text: str) -> str:
    text = (text or "").strip()
    try:
        if key == COLLECTION_WINDOWS:
            windows = collection_windows(text.replace("，", ",").replace("：", ":"))
            if not windows:
                raise ValueError
            return windows_text(windows)
        return date.fromisoformat(text).isoformat()
    except ValueError:
        example = "2019-04-15:2019-06-30,2020-04-01:2020-06-30" if key == COLLECTION_WINDOWS else "2020-12-31"
        raise ValidationError(key, f"{TITLES[key]}：格式应如 {example}") from None


def change(session, actor, key: str, text: str, current: str) -> bool:
    """Store setting key as text (current: the value in force), auditing old and new; return whether it changed."""
    if not is_province_administrator(actor):
        raise PermissionDenied("只有省级系统管理员可以修改采集期和截止日期")
    value = _normalized(key, text)
    if value == current:
        return False
    with committing(session):
        row = session.get(Setting, key)
        if row is None:
            row = Setting(key=key, value=value, updated_by_label=actor.label)
            session.add(row)
        row.value, row.updated_by_label = value, actor.label
        audit.record(session, actor, "setting.change", "setting", None, key=key, old=current, new=value)
    return True
