"""The province administrator's report page: refusals for everyone else, a run off the request with its progress,
the list, the signed files as one audited ZIP, and no half report after a crash."""
from __future__ import annotations

import io
import stat
import time
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import select

from kjdms.backends import get_config, get_signing_key
from kjdms.extensions import db
from kjdms.local_time import local_today
from kjdms.models import AuditEvent, ReportRun, utcnow
from kjdms.services.archive import verify_package
from kjdms.services.mof_report import write_report
from kjdms.signing import public_key_pem
from tests.helpers import staff
from tests.stats_data import Spec, insert
from tests.webclient import database_snapshot, text

PAGES = ("/reports/", "/reports/runs/1")
POSTS = ("/reports/generate", "/reports/MOF-20190630/download")


def audited(action: str) -> list[dict]:
    return db.session.scalars(select(AuditEvent.detail).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).all()


def finished(browser, timeout: float = 60) -> dict:
    """Follow the newest run's progress as the page does, until it ends; return its last answer."""
    run_id = db.session.scalar(select(ReportRun.id).order_by(ReportRun.id.desc()).limit(1))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = browser.get(f"/reports/runs/{run_id}").get_json()
        if answer["state"] != "running":
            db.session.expire_all()
            return answer
        time.sleep(0.2)
    raise AssertionError("the report run did not end")


def generate(browser, as_of: str, since: str = ""):
    return browser.submit("/reports/generate", {"as_of": as_of, "since": since}, page="/reports/")


class TestRefusals:
    @pytest.mark.parametrize("who", ["owner", "reviewer", "city_reviewer", "credit_officer", "archivist"])
    def test_everyone_but_administrators_is_refused_with_403(self, auth, who):
        browser = auth(who)
        for path in PAGES:
            assert browser.get(path).status_code == 403, path
        for path in POSTS:
            assert browser.submit(path, {"as_of": "2019-06-30"}, page="/stats/" if who != "owner" else "/me/"
                                  ).status_code == 403, path
        assert db.session.scalar(select(ReportRun.id)) is None

    def test_a_city_administrator_is_refused_too(self, browser, people):
        city_admin = browser().enter_as(staff("chaoyang_admin", "administrator", "211300"))
        before = database_snapshot()
        for path in PAGES:
            assert city_admin.get(path).status_code == 403, path
        for path in POSTS:
            assert city_admin.submit(path, {"as_of": "2019-06-30"}, page="/stats/").status_code == 403, path
        assert database_snapshot() == before
        assert "上报财政部" not in text(city_admin.get("/stats/"))

    def test_anonymous_visitors_are_sent_to_sign_in(self, browser):
        response = browser().get("/reports/")
        assert response.status_code == 302 and "/login" in response.headers["Location"]

    @pytest.mark.parametrize("as_of, since, message", [
        ("2019-13-01", "", "截至日期：请按“年-月-日”填写"), ("", "", "截至日期：请按“年-月-日”填写"),
        ("2999-01-01", "", "截至日期：不能晚于今天"), ("2019-06-30", "MOF-20190101", "基准报告：请从已生成的报告中选择"),
        ("2019-06-30", "../../etc", "基准报告：请从已生成的报告中选择")])
    def test_bad_input_is_refused_naming_the_field_and_nothing_is_saved(self, auth, as_of, since, message):
        browser = auth("administrator")
        before = database_snapshot()
        response = generate(browser, as_of, since)
        assert response.status_code == 422 and message in text(response)
        assert database_snapshot() == before

    def test_a_base_written_elsewhere_by_the_command_is_refused(self, app, auth, tmp_path):
        insert(Spec())
        browser = auth("administrator")  # before the report, which lets go of every loaded row
        write_report(db.session, day=local_today() - timedelta(days=2), out=tmp_path / "elsewhere",
                     signing_key=get_signing_key(), id_hash_key="k", reported_states=("approved",),
                     approved_state="approved")
        db.session.commit()
        base = f"MOF-{local_today() - timedelta(days=2):%Y%m%d}"
        page = text(browser.get("/reports/"))
        assert base in page and "不在报告目录（由命令行写到其他目录）" in page
        before = database_snapshot()
        response = generate(browser, local_today().isoformat(), since=base)
        assert response.status_code == 422 and f"基准报告：{base} 由命令行写到了其他目录" in text(response)
        assert database_snapshot() == before
        assert browser.submit(f"/reports/{base}/download", page="/reports/").status_code == 404

    def test_an_unknown_or_malformed_report_is_not_found(self, auth):
        browser = auth("administrator")
        for report_id in ("MOF-20190630", "..", "MOF-2019063O"):
            assert browser.submit(f"/reports/{report_id}/download", page="/reports/").status_code == 404
        assert browser.get("/reports/runs/999").status_code == 404
        assert audited("mof_report.download") == []


class TestGeneration:
    def test_a_full_then_an_incremental_report_run_off_the_request_and_download_signed(self, auth, people):
        # Imported in bulk and never changed since: a past day's report reads them as they stand (no revision).
        insert(Spec(region="211302", bulk=True))
        insert(Spec(region="211303", qualification_level="senior", bulk=True))
        browser = auth("administrator")
        page = text(browser.get("/reports/"))
        assert "生成报告" in page and "尚未生成报告" in page
        day = (local_today() - timedelta(days=1)).isoformat()
        response = generate(browser, day)
        assert response.status_code == 302
        answer = finished(browser)
        assert (answer["state"], answer["processed"], answer["total"], answer["percent"]) == ("done", 2, 2, 100)
        report_id = answer["report_id"]
        page = text(browser.get("/reports/"))
        assert report_id in page and "已完成（2 人）" in page and "下载（ZIP，含签名）" in page

        folder = get_config().REPORT_DIR / report_id
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in folder.iterdir())
        download = browser.submit(f"/reports/{report_id}/download", page="/reports/")
        assert download.status_code == 200 and download.mimetype == "application/zip"
        assert download.headers["Content-Disposition"].startswith("attachment;")
        assert download.headers["X-Content-Type-Options"] == "nosniff"
        assert download.headers["Cache-Control"] == "no-store" and "sandbox" in download.headers["Content-Security-Policy"]
        archive = zipfile.ZipFile(io.BytesIO(download.data))
        assert {name.split("/")[1] for name in archive.namelist()} >= {"manifest.json", "manifest.json.sig",
                                                                       "persons.jsonl", "persons.csv"}
        unpacked = get_config().STORAGE_DIR / "unpacked"
        archive.extractall(unpacked)
        assert verify_package(unpacked / report_id, [public_key_pem(get_signing_key())]).ok

        assert generate(browser, local_today().isoformat(), since=report_id).status_code == 302
        incremental = finished(browser)
        assert incremental["state"] == "done" and incremental["report_id"] == f"MOF-{local_today():%Y%m%d}-SINCE-{report_id}"
        assert [event["report_id"] for event in audited("mof_report.generate")] == [report_id, incremental["report_id"]]
        assert [event["report_id"] for event in audited("mof_report.request")] == [report_id, incremental["report_id"]]
        downloads = audited("mof_report.download")
        assert len(downloads) == 1 and downloads[0]["report_id"] == report_id and downloads[0]["size"] == len(download.data)

    def test_a_second_run_waits_for_the_first_but_an_interrupted_one_does_not_block(self, auth, people):
        browser = auth("administrator")
        running = ReportRun(report_id="MOF-20190630", as_of=local_today(), state="running", total=10, processed=3,
                            requested_by_label="admin")
        db.session.add(running)
        db.session.commit()
        before = database_snapshot()
        response = generate(browser, "2019-06-30")
        assert response.status_code == 422 and "报告 MOF-20190630 正在生成，请等它完成后再生成" in text(response)
        assert database_snapshot() == before
        assert 'class="run-progress"' in text(browser.get("/reports/"))
        assert browser.get(f"/reports/runs/{running.id}").get_json()["percent"] == 30

        running.updated_at = utcnow() - timedelta(minutes=11)  # its process ended without a word
        db.session.commit()
        assert "已中断" in text(browser.get("/reports/"))
        assert browser.get(f"/reports/runs/{running.id}").get_json()["state"] == "failed"
        assert generate(browser, "2019-06-30").status_code == 302
        assert finished(browser)["state"] == "done"

    def test_a_crash_leaves_a_failed_run_and_no_report(self, auth, people, app):
        insert(Spec())
        config = app.extensions["kjdms"].config
        blocked = config.STORAGE_DIR / "not-a-folder"
        blocked.write_text("a file where the report folder should be")
        original, config.REPORT_DIR = config.REPORT_DIR, blocked
        try:
            browser = auth("administrator")
            assert generate(browser, local_today().isoformat()).status_code == 302
            answer = finished(browser)
        finally:
            config.REPORT_DIR = original
        assert answer["state"] == "failed" and "生成中断，未留下报告文件" in answer["error"]
        assert audited("mof_report.generate") == []
        page = text(browser.get("/reports/"))
        assert "失败：生成中断" in page and "尚未生成报告" in page


def test_a_failure_after_the_files_are_written_leaves_nothing_under_the_report_name(app, tmp_path):
    insert(Spec())
    out = tmp_path / "reports"
    with pytest.raises(AttributeError):  # no key to sign the manifest with: the last step fails
        write_report(db.session, day=local_today(), out=out, signing_key=None, id_hash_key="k",
                     reported_states=("approved",), approved_state="approved")
    assert list(out.iterdir()) == []  # neither the report's folder nor its staging folder
    db.session.rollback()
    assert audited("mof_report.generate") == []
