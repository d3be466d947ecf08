"""What /me/ says to a legacy person about the confirmation deadline: ahead, passed, or passed before the import."""
from datetime import date, timedelta

import pytest
from sqlalchemy import update

from kjdms.backends import get_config
from kjdms.extensions import db
from kjdms.local_time import local_today
from kjdms.models import Dossier
from tests.helpers import applicant
from tests.webclient import text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages


def notice(browser, user) -> str:
    page = text(browser().enter_as(user).get("/me/"))
    return page.split('id="confirmation-deadline">')[1].split("</div>")[0]


@pytest.fixture
def legacy(app):
    dossier, user = applicant(name="刘洋", password=None, is_legacy=True, to_confirm=True)
    return dossier, user


def set_deadline(day: date):
    get_config().CONFIRMATION_DEADLINE = day


def test_before_the_deadline_the_date_to_confirm_by_is_given(browser, legacy):
    set_deadline(local_today() + timedelta(days=30))
    shown = notice(browser, legacy[1])
    day = get_config().CONFIRMATION_DEADLINE
    assert f"请在 <strong>{day.year}年{day.month}月{day.day}日</strong> 前更新并确认信息" in shown
    assert "已过" not in shown


def test_after_the_deadline_the_page_says_it_passed_what_it_means_and_whom_to_call(browser, legacy):
    dossier, user = legacy
    set_deadline(date(2020, 12, 31))
    db.session.execute(update(Dossier).where(Dossier.id == dossier.id).values(created_at=date(2019, 5, 1)))
    db.session.commit()
    shown = notice(browser, user)
    assert "截止日期 2020年12月31日 已过，您尚未确认" in shown
    assert "信息将做删除处理" in shown and "年限中断，不能接续" in shown and "尚未删除" in shown
    assert "请在" not in shown  # nothing says the deadline is ahead
    # 双塔区's office of 朝财会〔2019〕127号 附件1, with its phone.
    region = db.session.get(Dossier, dossier.id).region
    assert region.phone and f"电话 {region.phone}" in shown


def test_a_record_imported_after_the_deadline_is_told_it_is_not_purged_for_it(browser, legacy):
    set_deadline(local_today() - timedelta(days=10))
    shown = notice(browser, legacy[1])
    assert "已过" in shown and "在该日期之后导入的，不会因逾期而删除" in shown


def test_a_confirmed_person_sees_no_deadline_notice(browser, legacy):
    dossier, user = legacy
    dossier.to_confirm = False
    db.session.commit()
    assert 'id="confirmation-deadline"' not in text(browser().enter_as(user).get("/me/"))
