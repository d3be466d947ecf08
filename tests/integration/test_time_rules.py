"""The time rules (三): one month to register or update, flagged to the reviewer; windows and the deadline as configuration."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from kjdms.config import Config
from kjdms.extensions import db
from kjdms.models import Dossier
from kjdms.services.dossiers import update_basic_information
from kjdms.services.lifecycle import fire_transition
from kjdms.services.time_rules import (current_window, late_flags, next_window, one_month_after, registration_flag,
                                       update_flag)
from kjdms.services.working_copy import start_working_copy
from kjdms.validators import ValidationErrors
from tests.conftest import make_config
from tests.helpers import applicant, staff, upload_required
from tests.webclient import basic_information, fresh, text

TODAY = date.today()


def days_ago(days: int) -> date:
    """Return the date days before today."""
    return TODAY - timedelta(days=days)


@pytest.mark.parametrize("day, expected", [
    (date(2019, 1, 31), date(2019, 2, 28)), (date(2020, 1, 31), date(2020, 2, 29)),
    (date(2019, 12, 15), date(2020, 1, 15)), (date(2019, 4, 15), date(2019, 5, 15)),
])
def test_one_month_after_keeps_the_day_or_takes_the_shorter_months_last(day, expected):
    assert one_month_after(day) == expected


def test_registering_more_than_a_month_after_taking_the_job_is_flagged(app):
    late, _ = applicant(name="刘洋", job_started_on=days_ago(45))
    in_time, _ = applicant(name="陈静", job_started_on=days_ago(20))
    undated, _ = applicant(name="王芳")
    flag = registration_flag(late)
    assert flag.label == "逾期登记" and days_ago(45).isoformat() in flag.detail
    assert registration_flag(in_time) is None and registration_flag(undated) is None
    # The old system's people registered there: an import years after the job starts is no late registration.
    late.person.is_legacy = True
    assert registration_flag(late) is None


def test_registration_counts_the_day_in_beijing(app):
    dossier, _ = applicant(job_started_on=date(2019, 4, 15))
    # 2019-05-15 17:00 UTC is already 5月16日 in Beijing: one day over the month.
    dossier.created_at = datetime(2019, 5, 15, 17, 0, tzinfo=timezone.utc)
    assert registration_flag(dossier).label == "逾期登记"
    dossier.created_at = datetime(2019, 5, 15, 15, 0, tzinfo=timezone.utc)
    assert registration_flag(dossier) is None


def test_updating_more_than_a_month_after_the_change_is_flagged_when_submitted(app, workflow, blobs):
    reviewer = staff("reviewer_shuangta", "reviewer", "211302")
    dossier, owner = applicant(information_changed_on=days_ago(40))
    assert update_flag(dossier).label == "逾期更新"  # not submitted yet: counted to now
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    assert [flag.kind for flag in late_flags(dossier)] == ["update"]
    fire_transition(db.session, workflow, dossier, "approve", reviewer)
    # A change reported in time, in a working copy: no flag; the copy keeping the old date declares none.
    copy = start_working_copy(db.session, workflow, dossier, owner)
    assert update_flag(copy) is None
    update_basic_information(db.session, workflow, copy, {"employer_name": "朝阳市双塔区新单位有限公司",
                                                          "information_changed_on": days_ago(10)}, owner)
    assert update_flag(copy) is None
    update_basic_information(db.session, workflow, copy, {"information_changed_on": days_ago(35)}, owner)
    assert update_flag(copy).label == "逾期更新"


def test_the_dates_are_validated_like_every_field(app, workflow):
    dossier, owner = applicant()
    born = dossier.person.birth_date
    for changes, message in (
            ({"job_started_on": TODAY + timedelta(days=1)}, "从事会计工作日期："),
            ({"information_changed_on": "2999-01-01"}, "晚于今天"),
            ({"job_started_on": born - timedelta(days=1)}, "早于出生日期"),
            ({"information_changed_on": "2019-02-30"}, "不是有效日期"),
            ({"job_started_on": "昨天"}, "不是有效日期")):
        with pytest.raises(ValidationErrors) as refused:
            update_basic_information(db.session, workflow, dossier, changes, owner)
        assert message in str(refused.value)
    assert fresh(Dossier, dossier.id).job_started_on is None
    assert update_basic_information(db.session, workflow, dossier, {"job_started_on": "2019/4/15"}, owner) == [
        "job_started_on"]
    assert fresh(Dossier, dossier.id).job_started_on == date(2019, 4, 15)


def test_collection_windows_are_configuration(tmp_path):
    config = make_config(tmp_path, COLLECTION_WINDOWS="2019-04-15:2019-06-30, 2030-04-01:2030-06-30")
    assert str(current_window(config, date(2019, 5, 1))) == "2019年4月15日至2019年6月30日"
    assert current_window(config, date(2019, 7, 1)) is None
    assert str(next_window(config, date(2019, 7, 1))) == "2030年4月1日至2030年6月30日"
    default = Config(environ={"KJDMS_SECRET_KEY": "k", "KJDMS_ID_HASH_KEY": "k", "KJDMS_STORAGE_DIR": str(tmp_path)})
    assert default.COLLECTION_WINDOWS == ((date(2019, 4, 15), date(2019, 6, 30)),)
    assert default.CONFIRMATION_DEADLINE == date(2020, 12, 31)
    with pytest.raises(ValueError, match="KJDMS_COLLECTION_WINDOWS"):
        make_config(tmp_path, COLLECTION_WINDOWS="2019-06-30:2019-04-15")


def test_the_applicant_page_shows_the_window_and_a_legacy_person_the_deadline(tmp_path, sqlite_template):
    import shutil

    from kjdms import create_app

    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    window = f"{days_ago(10).isoformat()}:{(TODAY + timedelta(days=10)).isoformat()}"
    app = create_app(make_config(tmp_path, COLLECTION_WINDOWS=window, CONFIRMATION_DEADLINE="2030-12-31"))
    from tests.webclient import WebClient

    app.test_client_class = WebClient
    with app.app_context():
        dossier, owner = applicant(is_legacy=True, to_confirm=True)
        page = text(app.test_client().enter_as(owner).get("/me/"))
        assert f"本期信息采集时间：{days_ago(10).year}年" in page
        assert "2030年12月31日" in page and "确认并提交" in page
        db.session.remove()
        db.engine.dispose()


def test_the_reviewer_sees_the_late_flags_on_the_queue_and_the_dossier(app, auth, people, workflow, blobs):
    late, owner = applicant(name="刘洋", job_started_on=days_ago(70))
    upload_required(workflow, blobs, late, owner)
    fire_transition(db.session, workflow, late, "submit", owner)
    punctual, punctual_owner = applicant(name="陈静", job_started_on=days_ago(5))
    upload_required(workflow, blobs, punctual, punctual_owner)
    fire_transition(db.session, workflow, punctual, "submit", punctual_owner)
    reviewer = auth("reviewer")
    queue = text(reviewer.get("/review/"))
    assert queue.count("逾期登记") == 1
    page = text(reviewer.get(f"/review/{late.id}"))
    assert "逾期登记" in page and "应在一个月内登记" in page and days_ago(70).isoformat() in page
    assert "逾期" not in text(reviewer.get(f"/review/{punctual.id}"))


def test_the_applicant_enters_the_dates_on_the_form(app, auth, people):
    owner_browser = auth("owner")
    saved = owner_browser.submit("/me/edit", basic_information(job_started_on="2019-03-01",
                                                               information_changed_on=""))
    assert saved.status_code == 302
    assert fresh(Dossier, people["dossier"].id).job_started_on == date(2019, 3, 1)
    refused = owner_browser.submit("/me/edit", basic_information(job_started_on="2999-01-01"))
    assert refused.status_code == 422 and "从事会计工作日期：2999-01-01 晚于今天" in text(refused)
    assert fresh(Dossier, people["dossier"].id).job_started_on == date(2019, 3, 1)


def test_the_worklist_reads_in_one_query_the_flags_the_time_rules_find_on_each_dossier(app, workflow, blobs):
    from kjdms.services.worklist import reviewer_queue

    reviewer = staff("reviewer_chaoyang", "reviewer", "211300")
    late_registration, owner = applicant(name="刘洋", job_started_on=days_ago(70))
    late_update, update_owner = applicant(name="陈静", information_changed_on=days_ago(40))
    legacy, legacy_owner = applicant(name="王芳", job_started_on=days_ago(900), is_legacy=True)
    punctual, punctual_owner = applicant(name="李娜", job_started_on=days_ago(5))
    changed, changed_owner = applicant(name="赵磊", job_started_on=days_ago(80))
    kept, kept_owner = applicant(name="孙丽", information_changed_on=days_ago(50))
    for seed, (dossier, user) in enumerate([(late_registration, owner), (late_update, update_owner),
                                            (legacy, legacy_owner), (punctual, punctual_owner),
                                            (changed, changed_owner), (kept, kept_owner)]):
        upload_required(workflow, blobs, dossier, user, seed=seed)
        fire_transition(db.session, workflow, dossier, "submit", user)
    for dossier in (changed, kept):
        fire_transition(db.session, workflow, dossier, "approve", reviewer)
    # Working copies: one reports a change late (and keeps the baseline's late registration), one keeps the old date.
    changed_copy = start_working_copy(db.session, workflow, changed, changed_owner)
    update_basic_information(db.session, workflow, changed_copy, {"information_changed_on": days_ago(45)},
                             changed_owner)
    upload_required(workflow, blobs, changed_copy, changed_owner, seed=7)  # the form printed again, and so on
    fire_transition(db.session, workflow, changed_copy, "submit", changed_owner)
    kept_copy = start_working_copy(db.session, workflow, kept, kept_owner)
    update_basic_information(db.session, workflow, kept_copy, {"employer_name": "朝阳市双塔区新单位有限公司"}, kept_owner)
    upload_required(workflow, blobs, kept_copy, kept_owner, seed=8)
    fire_transition(db.session, workflow, kept_copy, "submit", kept_owner)
    db.session.commit()

    rows = {row.id: row for row in reviewer_queue(db.session, workflow, reviewer).dossiers}
    assert set(rows) == {late_registration.id, late_update.id, legacy.id, punctual.id, changed_copy.id, kept_copy.id}
    for dossier in (late_registration, late_update, legacy, punctual, changed_copy, kept_copy):
        assert rows[dossier.id].late_flags == late_flags(db.session.get(Dossier, dossier.id)), dossier.person.name
    assert [flag.kind for flag in rows[late_registration.id].late_flags] == ["registration"]
    assert [flag.kind for flag in rows[late_update.id].late_flags] == ["update"]
    assert [flag.kind for flag in rows[changed_copy.id].late_flags] == ["registration", "update"]
    assert rows[legacy.id].late_flags == rows[punctual.id].late_flags == rows[kept_copy.id].late_flags == []
    assert rows[changed_copy.id].number == changed.number and rows[changed_copy.id].is_working_copy
