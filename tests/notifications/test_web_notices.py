"""The notices page and the count in the navigation; from a reviewer's rejection to the applicant's inbox."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import event, select

from kjdms.backends import backends
from kjdms.extensions import db
from kjdms.messaging import SmtpMailer
from kjdms.models import Notification, User
from kjdms.services.lifecycle import fire_transition
from kjdms.worker import work_once
from tests.helpers import applicant, upload_required
from tests.notifications.smtp_server import SmtpServer
from tests.webclient import csrf_of, decide, flashes, fresh, text

pytestmark = pytest.mark.pages
REASON = "学历证书照片不清晰，请重新上传"


def badge(page) -> str | None:
    """Return the unread count the navigation shows, or None without one."""
    match = re.search(r'href="/notices/">通知 <span[^>]*>(\d+)</span>', text(page))
    return match.group(1) if match else None


@pytest.fixture
def rejected(workflow, blobs, people, auth):
    """张伟's dossier, submitted and rejected through the review page."""
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    assert decide(auth("reviewer"), dossier.id, "reject", REASON).status_code == 302
    return dossier


def test_the_applicant_sees_the_rejection_and_its_reason_and_marks_it_read(auth, people, rejected):
    me = auth("owner")
    assert badge(me.get("/me/")) == "1"
    page = me.get("/notices/")
    assert page.status_code == 200
    assert "您的会计人员信息档案被退回，请修改后重新提交" in text(page) and f"退回原因：{REASON}" in text(page)
    [notice] = db.session.scalars(select(Notification)).all()
    response = me.post(f"/notices/{notice.id}/read", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 302
    assert fresh(Notification, notice.id).read_at is not None
    assert badge(me.get("/me/")) is None and "未读" not in text(me.get("/notices/"))
    # Marking it again is harmless.
    assert me.post(f"/notices/{notice.id}/read", data={"csrf_token": csrf_of(page)}).status_code == 302


def test_nobody_else_can_read_or_mark_a_persons_notice(auth, browser, people, rejected):
    [notice] = db.session.scalars(select(Notification)).all()
    _, other_owner = applicant(name="李娜")
    for visitor in (auth(other_owner), auth("reviewer"), auth("administrator")):
        page = visitor.get("/notices/")
        assert page.status_code == 200 and REASON not in text(page)
        assert visitor.post(f"/notices/{notice.id}/read", data={"csrf_token": csrf_of(page)}).status_code == 404
        assert visitor.post("/notices/read-all", data={"csrf_token": csrf_of(page)}).status_code == 302
    assert fresh(Notification, notice.id).read_at is None
    anonymous = browser()
    assert anonymous.get("/notices/").status_code == 302
    assert anonymous.post(f"/notices/{notice.id}/read", data={"csrf_token": anonymous.csrf_token()}).status_code == 302
    assert fresh(Notification, notice.id).read_at is None


def test_marking_read_needs_the_token(auth, rejected):
    [notice] = db.session.scalars(select(Notification)).all()
    me = auth("owner")
    for data in ({}, {"csrf_token": "forged"}):
        assert me.post(f"/notices/{notice.id}/read", data=data).status_code == 400
        assert me.post("/notices/read-all", data=data).status_code == 400
    assert fresh(Notification, notice.id).read_at is None


def test_staff_see_their_notices_with_the_count_in_the_navigation(auth, people):
    db.session.add(Notification(user_id=people["reviewer"].id, kind="digest", title="待审核档案 2 份，最长已等待 6 天",
                                body="……", link="/review/"))
    db.session.commit()
    visitor = auth("reviewer")
    assert badge(visitor.get("/review/")) == "1"
    page = visitor.get("/notices/")
    assert "待审核汇总" in text(page) and "待审核档案 2 份" in text(page)
    assert visitor.post("/notices/read-all", data={"csrf_token": csrf_of(page)}).status_code == 302
    assert badge(visitor.get("/review/")) is None


def test_a_page_reads_the_count_with_the_user_and_a_post_that_renders_counts_again(auth, people):
    db.session.add(Notification(user_id=people["reviewer"].id, kind="digest", title="待审核档案 2 份", body="……",
                                link="/review/"))
    db.session.commit()
    visitor, statements = auth("reviewer"), []
    listen = lambda *args: statements.append(args[2].lower())  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        page = visitor.get("/review/")
        on_get, statements[:] = list(statements), []
        refused = visitor.post("/notices/email", data={"csrf_token": csrf_of(page), "email": "a@b"})
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    # One statement reads the user, the roles and the unread count (main's code counted in a second one).
    assert badge(page) == "1" and [sql for sql in on_get if "notifications" in sql] == [
        sql for sql in on_get if "from users" in sql]
    # A POST may change the notices before it renders: the layout counts after the view, not at login.
    assert refused.status_code == 400 and badge(refused) == "1"
    assert [sql for sql in statements if "read_at is null" in sql and "from users" not in sql]


@pytest.mark.parametrize("address", ["zhangwei", "zhang wei@example.com", "a@b", "x" * 250 + "@example.com",
                                     "zhangwei@example.com\u202e"])
def test_a_malformed_address_is_refused_naming_the_field_and_nothing_is_saved(auth, people, address):
    me = auth("owner")
    page = me.get("/notices/")
    response = me.post("/notices/email", data={"csrf_token": csrf_of(page), "email": address})
    assert response.status_code == 400 and "电子邮箱：" in text(response)
    assert fresh(User, people["owner"].id).email is None


def test_the_address_is_saved_and_cleared(auth, people):
    me = auth("owner")
    page = me.get("/notices/")
    response = me.post("/notices/email", data={"csrf_token": csrf_of(page), "email": " zhangwei@example.com "},
                       follow_redirects=True)
    assert "通知将同时发送到 zhangwei@example.com。" in flashes(response)
    assert fresh(User, people["owner"].id).email == "zhangwei@example.com"
    response = me.post("/notices/email", data={"csrf_token": csrf_of(page), "email": ""}, follow_redirects=True)
    assert "已不再通过电子邮件发送通知。" in flashes(response)
    assert fresh(User, people["owner"].id).email is None


def test_from_the_rejection_to_the_applicants_mailbox_through_the_worker(app, auth, people, workflow, blobs):
    me = auth("owner")
    page = me.get("/notices/")
    me.post("/notices/email", data={"csrf_token": csrf_of(page), "email": "zhangwei@example.com"})
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    with SmtpServer() as server:
        chosen = backends()
        chosen.mailer = SmtpMailer("127.0.0.1", server.port, sender="kjdms@czt.ln.gov.cn", timeout=5)
        decide(auth("reviewer"), dossier.id, "reject", REASON)
        done = work_once(app, calendar=False)
        assert done.notified >= 2  # dispatched, then sent (and the SMS through the logging gateway)
        assert work_once(app, calendar=False).notified == 0
    [(recipients, message)] = server.messages
    assert recipients == ["zhangwei@example.com"] and REASON in message.get_content()
    assert "退回原因" in text(me.get("/notices/"))
