"""Notices the calendar calls for: reminders before the confirmation deadline, reviewers' daily digests, escalations.

Each is queued at most once (Notification.dedupe_key is unique), so any number of workers may run these
as often as they like; `now` is a parameter, so the tests move the clock across the deadline.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import String, cast, exists, func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from ..local_time import BEIJING, chinese_date, local_date, local_text
from ..models import Dossier, Notification, Person, Region, RoleAssignment, User, as_utc
from ..vocabulary import ADMINISTRATOR_ROLE
from ..workflow import WorkflowEngine
from .worklist import covered_region_ids, queue_conditions, queue_roles

REMINDER_GAP = timedelta(days=7)  # at most one reminder a week per person
REMINDER_BATCH = 500
DEADLINE_BASIS = "辽财会〔2019〕116号 二（三）"


@dataclass(frozen=True)
class Schedule:
    """The configured calendar: reminder days before the deadline, the escalation limit, the digest hour."""

    deadline: date
    reminder_days: tuple[int, ...] = (30, 14, 7, 3, 1)
    escalation_days: int = 10
    digest_hour: int = 8


def _add_new(session, notices: list[Notification]) -> int:
    """Commit the notices whose dedupe key is not taken; another worker racing us keeps its own."""
    if not notices:
        return 0
    taken = set(session.scalars(select(Notification.dedupe_key).where(
        Notification.dedupe_key.in_([notice.dedupe_key for notice in notices]))))
    fresh = [notice for notice in notices if notice.dedupe_key not in taken]
    session.add_all(fresh)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # a concurrent worker queued the same keys first: they are queued, by it
        return 0
    return len(fresh)


def reminder_stage(schedule: Schedule, today: date) -> int | None:
    """Return the reminder point (days before the deadline) today falls in, or None before the first and after the deadline."""
    days_left = (schedule.deadline - today).days
    if days_left < 0:
        return None
    reached = [days for days in schedule.reminder_days if days >= days_left]
    return min(reached) if reached else None


def queue_reminders(session, schedule: Schedule, *, now: datetime, batch: int = REMINDER_BATCH) -> int:
    """Queue one batch of reminders to legacy persons yet to confirm; return how many (call again until 0)."""
    today = local_date(now)
    stage = reminder_stage(schedule, today)
    if stage is None:
        return 0
    prefix = f"reminder:{schedule.deadline.isoformat()}:{stage}:"
    recent = exists().where(Notification.user_id == User.id, Notification.kind == "reminder",
                            Notification.created_at > now - REMINDER_GAP)
    this_stage = exists().where(Notification.user_id == User.id,
                                Notification.dedupe_key == literal(prefix) + cast(User.id, String))
    rows = session.execute(
        select(User.id, Dossier.id).join(Person, Person.id == User.person_id)
        .join(Dossier, (Dossier.person_id == Person.id) & Dossier.baseline_id.is_(None))
        .where(Person.is_legacy, Dossier.to_confirm, ~recent, ~this_stage)
        .order_by(User.id).limit(batch)).all()
    days_left = (schedule.deadline - today).days
    deadline = chinese_date(schedule.deadline)
    when = "今天是最后一天" if days_left == 0 else f"还有 {days_left} 天"
    notices = [Notification(
        user_id=user_id, dossier_id=dossier_id, kind="reminder", created_at=now, dedupe_key=f"{prefix}{user_id}",
        title=f"请在 {deadline} 前更新并确认您的信息（{when}）", link="/me/",
        body=(f"您是原辽宁省财政会计事务系统登记的会计人员，请在 {deadline} 前登录平台，更新信息并点“确认并提交”。"
              f"逾期未确认的，将被视为不再从事会计工作，系统内信息将做删除处理（{DEADLINE_BASIS}）。"))
        for user_id, dossier_id in rows]
    return _add_new(session, notices)


def _reviewers(session, workflow: WorkflowEngine) -> list[User]:
    """Return the active staff who work the reviewer queue somewhere."""
    return session.scalars(select(User).where(User.is_active, User.id.in_(
        select(RoleAssignment.user_id).where(RoleAssignment.role.in_(queue_roles(workflow))))).order_by(User.id)).all()


def queue_digests(session, workflow: WorkflowEngine, schedule: Schedule, *, now: datetime) -> int:
    """Queue today's digest (the queue's size and its longest wait) to each reviewer with work, once a day."""
    local_now = as_utc(now).astimezone(BEIJING)
    if local_now.hour < schedule.digest_hour:
        return 0
    day = local_now.date().isoformat()
    keys = {reviewer: f"digest:{day}:{reviewer.id}" for reviewer in _reviewers(session, workflow)}
    # The worker calls this every round after the hour: today's digests already queued are not computed again.
    sent = set(session.scalars(select(Notification.dedupe_key).where(Notification.dedupe_key.in_(keys.values()))))
    notices = []
    for reviewer, key in keys.items():
        if key in sent:
            continue
        queue = queue_conditions(workflow, covered_region_ids(session, reviewer, *queue_roles(workflow)))
        count, oldest = session.execute(select(func.count(), func.min(Dossier.state_changed_at)).where(*queue)).one()
        if not count:
            continue
        longest = session.scalar(select(Dossier).where(*queue).order_by(Dossier.state_changed_at, Dossier.id).limit(1))
        waited = (local_date(now) - local_date(oldest)).days
        notices.append(Notification(
            user_id=reviewer.id, kind="digest", created_at=now, link="/review/", dedupe_key=key,
            title=f"待审核档案 {count} 份，最长已等待 {waited} 天",
            body=(f"截至 {local_text(now)}，您负责地区的待审核档案共 {count} 份。等待最久的是 {longest.number}"
                  f"（{longest.region.name if longest.region else ''}，{local_text(longest.state_changed_at)} 提交），"
                  f"已等待 {waited} 天。")))
    return _add_new(session, notices)


def _city_administrators(session, region: Region | None) -> list[User]:
    """Return the administrators of region's city; where the city has none, those of the nearest region above."""
    chain = region.ancestors_and_self() if region is not None else []
    city_index = next((index for index, node in enumerate(chain) if node.kind == "city"), 0)
    for node in chain[city_index:]:
        admins = session.scalars(select(User).join(RoleAssignment).where(
            User.is_active, RoleAssignment.role == ADMINISTRATOR_ROLE, RoleAssignment.region_id == node.id)
            .order_by(User.id)).all()
        if admins:
            return admins
    return []


def queue_escalations(session, workflow: WorkflowEngine, schedule: Schedule, *, now: datetime) -> int:
    """Tell the city's administrators about each dossier waiting longer than the limit, once per waiting period."""
    overdue = session.scalars(select(Dossier).where(
        *queue_conditions(workflow), Dossier.state_changed_at <= now - timedelta(days=schedule.escalation_days))
        .options(selectinload(Dossier.region)).order_by(Dossier.state_changed_at, Dossier.id)).all()
    notices, administrators = [], {}
    for dossier in overdue:
        waited = (local_date(now) - local_date(dossier.state_changed_at)).days
        since = int(as_utc(dossier.state_changed_at).timestamp())
        where = dossier.region.path_name if dossier.region else "未定地区"
        # Looked up once per region: many overdue dossiers share one.
        if dossier.region_id not in administrators:
            administrators[dossier.region_id] = _city_administrators(session, dossier.region)
        for admin in administrators[dossier.region_id]:
            notices.append(Notification(
                user_id=admin.id, dossier_id=dossier.id, kind="escalation", created_at=now,
                dedupe_key=f"escalation:{dossier.id}:{since}:{admin.id}",
                title=f"档案 {dossier.number} 已等待审核 {waited} 天",
                body=(f"{where} 的档案 {dossier.number} 于 {local_text(dossier.state_changed_at)} 提交，"
                      f"已等待审核 {waited} 天，超过 {schedule.escalation_days} 天的期限，请督促审核人员办理。")))
    return _add_new(session, notices)


def queue_scheduled(session, workflow: WorkflowEngine, schedule: Schedule, *, now: datetime) -> int:
    """Queue whatever the calendar calls for now: every reminder batch, the digests, the escalations."""
    queued = 0
    while (batch := queue_reminders(session, schedule, now=now)):
        queued += batch
    return queued + queue_digests(session, workflow, schedule, now=now) + queue_escalations(
        session, workflow, schedule, now=now)
