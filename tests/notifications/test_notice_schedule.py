"""The calendar's notices on a frozen clock: reminders across the deadline, reviewers' digests, escalations."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select

from kjdms.extensions import db
from kjdms.local_time import BEIJING
from kjdms.models import Notification, NotificationDelivery
from kjdms.services.dossiers import register_person
from kjdms.services.lifecycle import fire_transition
from kjdms.services.notice_delivery import Channels, deliver_due, dispatch_new
from kjdms.services.notice_schedule import (Schedule, queue_digests, queue_escalations, queue_reminders,
                                            queue_scheduled, reminder_stage)
from kjdms.messaging import LoggingSmsGateway
from tests.helpers import applicant, make_id_number, password_hash, staff, upload_required

DEADLINE = date(2020, 12, 31)
SCHEDULE = Schedule(DEADLINE, (30, 14, 7, 3, 1), escalation_days=10, digest_hour=8)


def beijing(day: date, hour: int = 9) -> datetime:
    """Return hour o'clock Beijing time on day, in UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=BEIJING).astimezone(timezone.utc)


def legacy(name="孙丽", confirmed=False):
    dossier = register_person(db.session, name=name, id_number=make_id_number(region="211382"), is_legacy=True,
                              to_confirm=not confirmed, household_region="211382", phone="13904210000",
                              password_hash=password_hash("Passw0rd-legacy"))
    return dossier, dossier.person.user


def kinds_of(user, kind="reminder"):
    db.session.expire_all()
    return db.session.scalars(select(Notification).where(Notification.user_id == user.id, Notification.kind == kind)
                              .order_by(Notification.id)).all()


def test_the_reminder_stage_counts_days_before_the_deadline_in_beijing():
    assert reminder_stage(SCHEDULE, date(2020, 11, 30)) is None  # 31 days left: before the first point
    assert reminder_stage(SCHEDULE, date(2020, 12, 1)) == 30
    assert reminder_stage(SCHEDULE, date(2020, 12, 16)) == 30
    assert reminder_stage(SCHEDULE, date(2020, 12, 17)) == 14
    assert reminder_stage(SCHEDULE, date(2020, 12, 31)) == 1  # the last day is still a day to confirm
    assert reminder_stage(SCHEDULE, date(2021, 1, 1)) is None


def test_reminders_across_the_deadline_at_most_one_a_week_none_after(app):
    _, waiting = legacy()
    sent_on = []
    day = date(2020, 11, 20)
    while day <= date(2021, 1, 10):
        for hour in (0, 9, 23):  # several worker rounds a day change nothing
            if queue_reminders(db.session, SCHEDULE, now=beijing(day, hour)):
                sent_on.append(day)
        day += timedelta(days=1)
    # 30 days before, 14, 7; the 3-day point falls within a week of the 7-day one; on the last day
    # (the 1-day point) a week has passed again.
    assert sent_on == [date(2020, 12, 1), date(2020, 12, 17), date(2020, 12, 24), date(2020, 12, 31)]
    reminders = kinds_of(waiting)
    assert [notice.title for notice in reminders] == [
        "请在 2020年12月31日 前更新并确认您的信息（还有 30 天）",
        "请在 2020年12月31日 前更新并确认您的信息（还有 14 天）",
        "请在 2020年12月31日 前更新并确认您的信息（还有 7 天）",
        "请在 2020年12月31日 前更新并确认您的信息（今天是最后一天）"]
    gaps = [later.created_at - earlier.created_at for earlier, later in zip(reminders, reminders[1:])]
    assert min(gaps) >= timedelta(days=7)
    assert "辽财会〔2019〕116号 二（三）" in reminders[0].body and reminders[0].link == "/me/"


def test_reminders_stop_once_the_person_confirms(app, workflow, blobs):
    dossier, waiting = legacy()
    assert queue_reminders(db.session, SCHEDULE, now=beijing(date(2020, 12, 1))) == 1
    # The 30-day reminder is still undelivered when the person confirms: it is not sent any more.
    from kjdms.services.dossiers import update_basic_information
    from tests.helpers import complete_fields
    update_basic_information(db.session, workflow, dossier, complete_fields("211302"), waiting)
    upload_required(workflow, blobs, dossier, waiting)
    fire_transition(db.session, workflow, dossier, "submit", waiting)
    assert dossier.to_confirm is False
    channels = Channels(None, LoggingSmsGateway())
    dispatch_new(db.session, channels)
    deliver_due(db.session, channels)
    delivery = db.session.scalars(select(NotificationDelivery)).one()
    assert (delivery.status, delivery.last_error) == ("skipped", "已确认，不再提醒")
    assert queue_reminders(db.session, SCHEDULE, now=beijing(date(2020, 12, 17))) == 0
    assert queue_reminders(db.session, SCHEDULE, now=beijing(date(2020, 12, 24))) == 0
    assert len(kinds_of(waiting)) == 1


def test_reminders_go_out_in_batches_and_skip_new_registrants(app):
    waiting = [legacy(name)[1] for name in ("孙丽", "周杰", "吴敏")]
    _, confirmed = legacy("郑爽", confirmed=True)
    applicant(name="王芳")  # registered on the platform: never reminded
    now = beijing(date(2020, 12, 1))
    assert [queue_reminders(db.session, SCHEDULE, now=now, batch=2) for _ in range(3)] == [2, 1, 0]
    assert all(len(kinds_of(user)) == 1 for user in waiting)
    assert kinds_of(confirmed) == []
    assert db.session.scalar(select(Notification.id).where(Notification.kind == "reminder").offset(3)) is None


def submitted_at(workflow, blobs, moment, **kwargs):
    dossier, owner = applicant(**kwargs)
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    dossier.state_changed_at = moment  # as if submitted then
    db.session.commit()
    return dossier


def test_each_reviewer_gets_one_digest_a_day_of_their_own_queue(workflow, blobs, people):
    now = beijing(date(2019, 6, 20), 7)
    oldest = submitted_at(workflow, blobs, now - timedelta(days=6), name="王芳")
    submitted_at(workflow, blobs, now - timedelta(days=1), name="李娜")
    submitted_at(workflow, blobs, now - timedelta(days=3), name="赵磊", region_code="211303",
                 employer_name="朝阳市龙城区会计服务中心")
    assert queue_digests(db.session, workflow, SCHEDULE, now=now) == 0  # before 08:00 Beijing time
    at_nine = now + timedelta(hours=2)
    assert queue_digests(db.session, workflow, SCHEDULE, now=at_nine) == 3  # 双塔区, 龙城区, and the city's
    assert queue_digests(db.session, workflow, SCHEDULE, now=at_nine + timedelta(hours=5)) == 0  # once a day
    [shuangta] = kinds_of(people["reviewer"], "digest")
    assert shuangta.title == "待审核档案 2 份，最长已等待 6 天"
    assert oldest.number in shuangta.body and shuangta.link == "/review/"
    [city] = kinds_of(people["city_reviewer"], "digest")
    assert city.title == "待审核档案 3 份，最长已等待 6 天"
    [longcheng] = kinds_of(people["other_reviewer"], "digest")
    assert longcheng.title == "待审核档案 1 份，最长已等待 3 天" and oldest.number not in longcheng.body
    assert queue_digests(db.session, workflow, SCHEDULE, now=at_nine + timedelta(days=1)) == 3  # the next day


def test_a_round_after_the_digests_went_out_reads_no_queue(workflow, blobs, people):
    at_nine = beijing(date(2019, 6, 20), 9)
    submitted_at(workflow, blobs, at_nine - timedelta(days=2), name="王芳")
    submitted_at(workflow, blobs, at_nine - timedelta(days=1), name="赵磊", region_code="211303",
                 employer_name="朝阳市龙城区会计服务中心")
    assert queue_digests(db.session, workflow, SCHEDULE, now=at_nine) == 3
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert queue_digests(db.session, workflow, SCHEDULE, now=at_nine + timedelta(minutes=5)) == 0
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    # Who reviews and which digests are queued today, nothing of the queues themselves.
    assert statements and not [statement for statement in statements if "FROM dossiers" in statement]


def test_a_reviewer_with_an_empty_queue_gets_no_digest(workflow, people):
    assert queue_digests(db.session, workflow, SCHEDULE, now=beijing(date(2019, 6, 20), 9)) == 0


def test_a_dossier_waiting_too_long_goes_to_its_citys_administrator_once(workflow, blobs, people):
    now = beijing(date(2019, 6, 20))
    late = submitted_at(workflow, blobs, now - timedelta(days=11), name="王芳")
    submitted_at(workflow, blobs, now - timedelta(days=5), name="李娜")  # within the limit
    # No administrator in Chaoyang: the province's hears of it.
    assert queue_escalations(db.session, workflow, SCHEDULE, now=now) == 1
    [to_province] = kinds_of(people["administrator"], "escalation")
    assert to_province.title == f"档案 {late.number} 已等待审核 11 天"
    assert "双塔区" in to_province.body and "超过 10 天" in to_province.body
    city_admin = staff("admin_chaoyang", "administrator", "211300")
    county_admin = staff("admin_shuangta", "administrator", "211302")
    assert queue_escalations(db.session, workflow, SCHEDULE, now=now + timedelta(days=1)) == 1
    assert len(kinds_of(city_admin, "escalation")) == 1
    assert kinds_of(county_admin, "escalation") == []  # the city's, not the county office's
    assert queue_escalations(db.session, workflow, SCHEDULE, now=now + timedelta(days=2)) == 0  # told once
    # Decided, rejected, revised and submitted again: a new waiting period, told again when it runs late.
    fire_transition(db.session, workflow, late, "reject", people["reviewer"], "请补充材料")
    fire_transition(db.session, workflow, late, "revise", late.person.user)
    fire_transition(db.session, workflow, late, "submit", late.person.user)
    assert queue_escalations(db.session, workflow, SCHEDULE, now=now + timedelta(days=3)) == 0
    queue_escalations(db.session, workflow, SCHEDULE, now=late.state_changed_at + timedelta(days=11))
    told = db.session.scalars(select(Notification.user_id).where(
        Notification.kind == "escalation", Notification.dossier_id == late.id).order_by(Notification.id)).all()
    assert told == [people["administrator"].id, city_admin.id, city_admin.id]


def test_the_worker_round_queues_the_calendar_once(workflow, blobs, people):
    legacy()
    now = beijing(date(2020, 12, 1), 10)
    first = queue_scheduled(db.session, workflow, SCHEDULE, now=now)
    assert first == 1
    assert queue_scheduled(db.session, workflow, SCHEDULE, now=now) == 0


@pytest.mark.parametrize("text,expected", [("30,14,7", (30, 14, 7)), ("1, 7 ,7", (7, 1)), ("", ())])
def test_reminder_days_are_read_from_the_configuration(text, expected):
    from kjdms.config import reminder_days
    assert reminder_days(text) == expected


@pytest.mark.parametrize("text", ["7,x", "-1"])
def test_bad_reminder_days_are_refused_naming_the_variable(text):
    from kjdms.config import reminder_days
    with pytest.raises(ValueError, match="KJDMS_REMINDER_DAYS"):
        reminder_days(text)
