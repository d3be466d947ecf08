"""What the site tells a person or an officer, and the notices written in the transaction of their event.

change_tracking's flush hook calls queue_event_notices, and a transition queues its decision's itself
(services/transition_rows.py): a decision on a dossier (approved, rejected) and a new credit record become
Notification rows in the same transaction, so a rolled-back decision tells nobody and a committed one is never lost.
The worker delivers them further (services/notice_delivery.py).
"""
from __future__ import annotations

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import object_session

from ..models import CreditRecord, Notification, User, WorkflowHistory, utcnow
from ..validators import validate_email
from ..vocabulary import APPROVED_STATE, CREDIT_KINDS, REJECTED_STATE, flagged_titles

PAGE_SIZE = 50
INSERT_NOTICE = insert(Notification)


def decision_notice(session, dossier, from_state: str, to_state: str, actor_id: int | None, comment: str | None,
                    flagged) -> dict | None:
    """Return the notice row an approval or a rejection of dossier sends its applicant, or None for other transitions."""
    # A check-in (from approved to approved) records the approval of a change, which has its own notice.
    if to_state not in (APPROVED_STATE, REJECTED_STATE) or from_state == to_state:
        return None
    user = dossier.person.user if dossier is not None and dossier.person is not None else None
    if user is None or user.id is None:
        return None
    what = "信息变更" if dossier.is_working_copy else "会计人员信息档案"
    # The office decides, not a user name (a pending row has no actor loaded: fetch it by its id).
    actor = session.get(User, actor_id) if actor_id else None
    office = actor.office_label if actor is not None and actor.region is not None else "财政部门"
    row = {"user_id": user.id, "dossier_id": dossier.id, "link": "/me/"}
    if to_state == APPROVED_STATE:
        return {**row, "kind": "approved", "title": f"您的{what}已审核确认",
                "body": f"您的{what}（档案编号 {dossier.number}）已由{office}审核确认。"}
    reason = comment or "（未填写）"
    flagged = f"有问题的项目：{'、'.join(flagged_titles(flagged))}\n" if flagged else ""
    return {**row, "kind": "rejected", "title": f"您的{what}被退回，请修改后重新提交",
            "body": f"您的{what}（档案编号 {dossier.number}）被{office}退回。\n退回原因：{reason}\n{flagged}"
                    "请登录平台，在“我的档案”中点“修改”，按退回原因修改信息或材料后重新提交。"}


def _credit_notice(record: CreditRecord) -> dict | None:
    """Return the notice row a new credit record sends the person it is about."""
    if record.action != "record" or record.person is None or record.person.user is None:
        return None
    kind = CREDIT_KINDS.get(record.kind, record.kind)
    return {"kind": "credit_record", "title": "您的个人信用档案有一条新记录",
            "body": f"财政部门在您的个人信用档案中登记了一条记录（类别：{kind}，查实日期 {record.found_on}）。"
                    "请登录平台查看“我的信用档案”；如有异议，请联系所在地会计管理部门。",
            "link": "/me/credit", "user_id": record.person.user.id}


def event_notices(objects) -> list[dict]:
    """Return the notice rows the new objects of a flush call for."""
    rows = []
    for obj in objects:
        if isinstance(obj, WorkflowHistory):
            row = decision_notice(object_session(obj), obj.dossier, obj.from_state, obj.to_state, obj.actor_id,
                                  obj.comment, obj.flagged)
        elif isinstance(obj, CreditRecord):
            row = _credit_notice(obj)
            if row is not None:
                row["dossier_id"] = obj.person.dossier.id if obj.person.dossier is not None else None
        else:
            continue
        if row is not None:
            rows.append(row)
    return rows


def queue_notices(session, rows: list[dict]) -> int:
    """Insert notice rows in session's transaction, without the unit of work (a flush hook may not add objects)."""
    if rows:
        now = utcnow()
        session.connection().execute(INSERT_NOTICE, [{**row, "created_at": now} for row in rows])
    return len(rows)


def queue_event_notices(session, objects) -> int:
    """Insert the notices objects call for in session's transaction (from a flush hook: no ORM add there)."""
    return queue_notices(session, event_notices(objects))


def _unread_of(user_id):
    """Return the count of the unread notices of user_id (a bound value or a column)."""
    return select(func.count()).select_from(Notification).where(Notification.user_id == user_id,
                                                                 Notification.read_at.is_(None))


# Asked on every page (the navigation's badge): built once per process, not once per request.
UNREAD_COUNT = _unread_of(bindparam("user_id"))
# The same count as a column of the user's own select (the login's user loader): one statement a page, not two.
UNREAD_COUNT_OF_USER = _unread_of(User.id).scalar_subquery()


def unread_count(session, user) -> int:
    """Return how many of user's notices are unread."""
    return session.scalar(UNREAD_COUNT, {"user_id": user.id}) or 0


def count_of(session, user) -> int:
    """Return how many notices user has, read or not."""
    return session.scalar(select(func.count()).select_from(Notification).where(Notification.user_id == user.id)) or 0


def notices_of(session, user, page: int = 1) -> list[Notification]:
    """Return a page of user's notices, newest first."""
    return session.scalars(select(Notification).where(Notification.user_id == user.id)
                           .order_by(Notification.created_at.desc(), Notification.id.desc())
                           .offset((max(page, 1) - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()


def mark_read(session, user, notice_id: int | None = None) -> int:
    """Mark one of user's notices (or all of them) read; return how many changed. Another's id changes nothing."""
    condition = [Notification.user_id == user.id, Notification.read_at.is_(None)]
    if notice_id is not None:
        condition.append(Notification.id == notice_id)
    changed = session.execute(update(Notification).where(*condition).values(read_at=utcnow())).rowcount
    session.commit()
    return changed


def set_email(session, user, address: str) -> str | None:
    """Set (or, when blank, clear) the address user's notices are also e-mailed to; refuse a malformed one."""
    user.email = validate_email(address)
    session.commit()
    return user.email
