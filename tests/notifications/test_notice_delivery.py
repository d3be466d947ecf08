"""Notices written in the transaction of their event, and delivered by e-mail (a real SMTP server) and SMS."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from kjdms.backends import get_config
from kjdms.extensions import db
from kjdms.messaging import LoggingSmsGateway, SmtpMailer, mask_email, mask_phone, mask_text
from kjdms.models import Notification, NotificationDelivery, User, utcnow
from kjdms.permissions import SYSTEM
from kjdms.samples import sample_png
from kjdms.services.attachments import add_attachment_version
from kjdms.services.credit import record_finding
from kjdms.services.lifecycle import fire_transition, purge_dossier
from kjdms.services.notice_delivery import Channels, backoff, deliver_due, deliver_one, dispatch_new
from tests.helpers import CommitFailed, applicant, fail_next_commit, upload_required
from tests.notifications.smtp_server import SmtpServer, free_port

REASON = "学历证书照片不清晰，请重新上传"


def notices(user=None):
    db.session.expire_all()
    query = select(Notification).order_by(Notification.id)
    return db.session.scalars(query.where(Notification.user_id == user.id) if user else query).all()


def submitted(workflow, blobs, **kwargs):
    dossier, owner = applicant(**kwargs)
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    return dossier, owner


def kjdms_log(caplog) -> str:
    """Return what kjdms itself logged (the test's SMTP server logs its own side of the talk)."""
    return "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("kjdms"))


def mailer(port):
    return SmtpMailer("127.0.0.1", port, sender="kjdms@czt.ln.gov.cn", timeout=5)


def test_a_rejection_tells_the_applicant_the_reason_in_its_own_transaction(workflow, blobs, people):
    dossier, owner = submitted(workflow, blobs)
    assert notices(owner) == []  # submitting tells nobody
    fire_transition(db.session, workflow, dossier, "reject", people["reviewer"], REASON)
    [notice] = notices(owner)
    assert notice.kind == "rejected" and notice.dossier_id == dossier.id and notice.read_at is None
    assert f"退回原因：{REASON}" in notice.body and dossier.number in notice.body
    assert notice.link == "/me/"
    # The office that decided is named; a reviewer's user name never reaches the applicant.
    assert "被双塔区财政局退回" in notice.body and "reviewer_shuangta" not in notice.body


def test_a_decision_by_staff_of_no_office_names_the_finance_department(workflow, blobs, people):
    dossier, owner = submitted(workflow, blobs)
    people["reviewer"].region = None
    db.session.commit()
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
    [notice] = notices(owner)
    assert "已由财政部门审核确认" in notice.body and "reviewer_shuangta" not in notice.body


def test_an_approval_tells_the_applicant_and_a_decision_rolled_back_tells_nobody(workflow, blobs, people,
                                                                                monkeypatch):
    dossier, owner = submitted(workflow, blobs)
    fail_next_commit(monkeypatch)
    with pytest.raises(CommitFailed):
        fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
    assert notices() == []
    fire_transition(db.session, workflow, db.session.merge(dossier), "approve", people["reviewer"])
    [notice] = notices(owner)
    assert notice.kind == "approved" and notice.title == "您的会计人员信息档案已审核确认"


def test_an_approved_change_is_one_notice(workflow, blobs, people):
    from kjdms.services.dossiers import update_basic_information
    from kjdms.services.working_copy import start_working_copy
    dossier, owner = submitted(workflow, blobs)
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
    copy = start_working_copy(db.session, workflow, dossier, owner)
    update_basic_information(db.session, workflow, copy, {"employer_name": "朝阳市双塔区新华会计师事务所有限公司"}, owner)
    add_attachment_version(db.session, workflow, blobs, copy, "basic_info_form", sample_png(seed=42), owner,
                           filename="新表.png")
    fire_transition(db.session, workflow, copy, "submit", owner)
    fire_transition(db.session, workflow, copy, "approve", people["reviewer"])
    assert [notice.title for notice in notices(owner)] == ["您的会计人员信息档案已审核确认", "您的信息变更已审核确认"]


def test_a_new_credit_record_tells_the_person(workflow, blobs, people):
    from datetime import date
    dossier, owner = submitted(workflow, blobs)
    evidence = [dossier.attachment("education_certificate").current.id]
    record_finding(db.session, workflow, dossier, people["credit_officer"], kind="falsified_information",
                   finding="学历证书系伪造", evidence=evidence, found_on=date(2019, 6, 1), today=date(2019, 6, 1),
                   id_hash_key=get_config().ID_HASH_KEY)
    [notice] = notices(owner)
    assert notice.kind == "credit_record" and "虚报信息" in notice.body and notice.link == "/me/credit"
    # The finding itself stays on the credit-file page: the notice says where to look, not what was found.
    assert "伪造" not in notice.body


def test_a_rejection_is_emailed_once_to_a_real_smtp_server(workflow, blobs, people):
    dossier, owner = submitted(workflow, blobs)
    owner.email = "zhangwei@example.com"
    db.session.commit()
    fire_transition(db.session, workflow, dossier, "reject", people["reviewer"], REASON)
    with SmtpServer() as server:
        channels = Channels(mailer(server.port), None, "https://kjdms.example.cn")
        assert dispatch_new(db.session, channels) == 1
        assert deliver_due(db.session, channels) == 1
        assert deliver_due(db.session, channels) == 0  # sent is sent: the next round finds nothing
        assert dispatch_new(db.session, channels) == 0
    [(recipients, message)] = server.messages
    assert recipients == ["zhangwei@example.com"]
    assert message["Subject"] == "您的会计人员信息档案被退回，请修改后重新提交"
    body = message.get_content()
    assert REASON in body and "https://kjdms.example.cn/me/" in body
    assert message["Message-ID"] == f"<kjdms-notice-{notices(owner)[0].id}-email@czt.ln.gov.cn>"
    delivery = db.session.scalars(select(NotificationDelivery)).one()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 1, None)


def test_a_server_down_is_retried_with_backoff_until_it_answers(workflow, blobs, people):
    dossier, owner = submitted(workflow, blobs)
    owner.email = "zhangwei@example.com"
    db.session.commit()
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
    port = free_port()
    channels = Channels(mailer(port))
    dispatch_new(db.session, channels)
    start = utcnow()
    assert deliver_due(db.session, channels, now=start) == 1  # tried, and failed: nobody listens
    delivery = db.session.scalars(select(NotificationDelivery)).one()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "邮件发送失败" in delivery.last_error and "zhangwei@example.com" not in delivery.last_error
    assert abs((delivery.next_attempt_at.replace(tzinfo=None) - (start + backoff(1)).replace(tzinfo=None))
               .total_seconds()) < 1
    assert deliver_due(db.session, channels, now=start + timedelta(seconds=10)) == 0  # not due yet
    assert deliver_due(db.session, channels, now=start + backoff(1)) == 1
    db.session.refresh(delivery)
    assert (delivery.status, delivery.attempts) == ("pending", 2)
    assert backoff(2) == 2 * backoff(1) and backoff(30) == timedelta(hours=2)
    with SmtpServer(port) as server:
        assert deliver_due(db.session, channels, now=start + backoff(1) + backoff(2)) == 1
    db.session.refresh(delivery)
    assert (delivery.status, delivery.attempts) == ("sent", 3)
    assert len(server.messages) == 1


def test_an_address_the_server_refuses_fails_at_once_and_is_never_logged_in_full(workflow, blobs, people, caplog):
    dossier, owner = submitted(workflow, blobs)
    owner.email = "nobody.here@example.com"
    db.session.commit()
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
    caplog.set_level(logging.DEBUG)
    with SmtpServer(refused={"nobody.here@example.com"}) as server:
        channels = Channels(mailer(server.port))
        dispatch_new(db.session, channels)
        deliver_due(db.session, channels)
    delivery = db.session.scalars(select(NotificationDelivery)).one()
    assert delivery.status == "failed" and delivery.attempts == 1  # permanent: not retried
    assert "拒收" in delivery.last_error and mask_email("nobody.here@example.com") in delivery.last_error
    assert "n***@example.com" in kjdms_log(caplog)
    assert "nobody.here@example.com" not in delivery.last_error + kjdms_log(caplog)
    assert server.messages == []


def test_a_claimed_delivery_is_sent_by_one_worker_only(workflow, blobs, people):
    dossier, owner = submitted(workflow, blobs)
    owner.email = "zhangwei@example.com"
    db.session.commit()
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
    with SmtpServer() as server:
        channels = Channels(mailer(server.port))
        dispatch_new(db.session, channels)
        delivery_id = db.session.scalar(select(NotificationDelivery.id))
        # Another worker holds it (claimed a moment ago): this one leaves it alone.
        db.session.execute(NotificationDelivery.__table__.update().values(status="sending", claimed_at=utcnow()))
        db.session.commit()
        assert deliver_one(db.session, channels, delivery_id) is None
        assert deliver_due(db.session, channels) == 0
        # That worker died after its claim: after the claim timeout the delivery is taken over, once.
        later = utcnow() + timedelta(minutes=11)
        assert deliver_due(db.session, channels, now=later) == 1
        assert deliver_due(db.session, channels, now=later) == 0
    assert len(server.messages) == 1


def test_without_an_address_or_a_channel_the_notice_stays_in_the_site_only(workflow, blobs, people):
    dossier, owner = submitted(workflow, blobs)  # no e-mail address
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
    channels = Channels(mailer(free_port()), None)
    dispatch_new(db.session, channels)
    deliver_due(db.session, channels)
    delivery = db.session.scalars(select(NotificationDelivery)).one()
    assert (delivery.channel, delivery.status, delivery.last_error) == ("email", "skipped", "未填写电子邮箱")
    assert len(notices(owner)) == 1


def test_sms_go_through_the_logging_gateway_masked(workflow, blobs, people, caplog):
    dossier, owner = submitted(workflow, blobs)  # phone 13904211234
    fire_transition(db.session, workflow, dossier, "reject", people["reviewer"], REASON)
    gateway = LoggingSmsGateway()
    caplog.set_level(logging.DEBUG)
    channels = Channels(None, gateway)
    dispatch_new(db.session, channels)
    assert deliver_due(db.session, channels) == 1
    assert gateway.sent == 1
    delivery = db.session.scalars(select(NotificationDelivery)).one()
    assert (delivery.channel, delivery.status) == ("sms", "sent")
    logged = kjdms_log(caplog)
    assert "139****1234" in logged and "13904211234" not in logged
    text = "【辽宁省会计人员信息采集】您的会计人员信息档案被退回，请修改后重新提交，详情请登录平台查看。"
    assert mask_text(text) in logged and text not in logged and REASON not in logged


def test_masking_keeps_only_enough_to_recognise():
    assert mask_phone("13904211234") == "139****1234"
    assert mask_phone("0421-2612345") == "042****2345"
    assert mask_phone("12345") == "*****"
    assert mask_email("zhangwei@example.com") == "z***@example.com"
    assert mask_text("一二三四五六七八九十") == "一二三四五六…（共10字）"
    assert mask_text("短信") == "（共2字）"


def test_a_purge_takes_the_persons_notices_and_deliveries_with_it(workflow, blobs, people):
    dossier, owner = submitted(workflow, blobs)
    fire_transition(db.session, workflow, dossier, "reject", people["reviewer"], REASON)
    dispatch_new(db.session, Channels(None, LoggingSmsGateway()))
    fire_transition(db.session, workflow, dossier, "revise", owner)
    purge_dossier(db.session, workflow, blobs, dossier, SYSTEM, "测试删除", id_hash_key=get_config().ID_HASH_KEY)
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0
    assert db.session.scalar(select(func.count()).select_from(NotificationDelivery)) == 0
    assert db.session.scalar(select(func.count()).select_from(User).where(User.id == owner.id)) == 0


def test_a_rejection_notice_lists_the_items_the_reviewer_flagged(workflow, blobs, people):
    dossier, owner = submitted(workflow, blobs)
    fire_transition(db.session, workflow, dossier, "reject", people["reviewer"], REASON,
                    flagged=["employer_name", "attachment:education_certificate"])
    [notice] = notices(owner)
    assert "有问题的项目：工作单位名称、学历证书" in notice.body
