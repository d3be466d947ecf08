"""The archivist's pages: the list, a dossier's whole record, its past, archiving, and the package download."""
import io
import re
import zipfile
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from sqlalchemy import select

from kjdms.extensions import db
from kjdms.models import AuditEvent, Dossier, DossierRevision, WorkflowHistory
from kjdms.samples import sample_pdf
from kjdms.services import archive as archive_service
from kjdms.backends import get_signing_key
from kjdms.services.archive import verify_package
from kjdms.signing import public_key_pem
from kjdms.services.attachments import add_attachment_version
from kjdms.services.lifecycle import fire_transition
from tests.helpers import applicant, staff, upload_required
from tests.webclient import csrf_of, database_snapshot, flashes, fresh, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

CONFLICT = "该档案已被他人处理或修改"


def approved(workflow, blobs, people, name, region_code="211302", other_versions=()) -> Dossier:
    """Return a new person's dossier in region_code, complete (other_versions added to 其他材料), submitted, approved."""
    dossier, owner = applicant(name=name, region_code=region_code)
    upload_required(workflow, blobs, dossier, owner)
    for label in other_versions:
        add_attachment_version(db.session, workflow, blobs, dossier, "other", sample_pdf(label), owner,
                               filename=f"{label}.pdf")
    fire_transition(db.session, workflow, dossier, "submit", owner)
    reviewer = (people["city_reviewer"] if region_code.startswith("2113")
                else staff(f"reviewer_{region_code}", "reviewer", region_code))
    fire_transition(db.session, workflow, dossier, "approve", reviewer, "信息属实")
    return dossier


@pytest.fixture
def site(people, workflow, blobs):
    """欧阳明月 approved in 双塔区 (two versions of 其他材料), 王五 archived in 双塔区, 李四 approved in 龙城区,
    陈七 approved in 沈阳市, and the people fixture's 张伟 still a draft with documents."""
    main = approved(workflow, blobs, people, "欧阳明月", other_versions=("one", "two"))
    archived = approved(workflow, blobs, people, "王五")
    fire_transition(db.session, workflow, archived, "archive", people["archivist"], "调离会计岗位")
    elsewhere = approved(workflow, blobs, people, "李四", region_code="211303")
    shenyang = approved(workflow, blobs, people, "陈七", region_code="210100")
    upload_required(workflow, blobs, people["dossier"], people["owner"])
    return {"main": main, "archived": archived, "elsewhere": elsewhere, "shenyang": shenyang,
            "draft": people["dossier"], "main_other": main.attachment("other").versions}


@pytest.fixture
def longcheng_archivist(app):
    return staff("archivist_longcheng", "archivist", "211303")


def listed_numbers(response) -> list[str]:
    return re.findall(r'href="/archive/\d+">(KJ\d+)</a>', text(response))


class TestList:
    def test_the_archivist_sees_approved_and_archived_dossiers_of_their_regions_only(self, auth, site):
        response = auth("archivist").get("/archive/")
        assert response.status_code == 200
        assert set(listed_numbers(response)) == {site[key].number for key in ("main", "archived", "elsewhere")}
        body = text(response)
        assert "陈七" not in body and "张伟" not in body
        assert site["main"].person.id_number not in body and site["main"].person.id_number[-4:] in body
        assert 'action="/search/"' in body and 'name="q"' in body

    def test_a_county_archivist_sees_only_their_county(self, auth, site, longcheng_archivist):
        assert listed_numbers(auth(longcheng_archivist).get("/archive/")) == [site["elsewhere"].number]

    def test_filter_by_state(self, auth, site):
        archivist = auth("archivist")
        assert listed_numbers(archivist.get("/archive/?state=archived")) == [site["archived"].number]
        assert set(listed_numbers(archivist.get("/archive/?state=approved"))) == {
            site["main"].number, site["elsewhere"].number}
        # A state archivists may not see, or nonsense, falls back to the whole list.
        assert len(listed_numbers(archivist.get("/archive/?state=draft"))) == 3
        assert len(listed_numbers(archivist.get("/archive/?state=%3Cscript%3E&page=99999999999"))) == 3

    def test_pages(self, auth, site, monkeypatch):
        monkeypatch.setattr(archive_service, "PAGE_SIZE", 2)
        archivist = auth("archivist")
        first, second = archivist.get("/archive/?page=1"), archivist.get("/archive/?page=2")
        assert len(listed_numbers(first)) == 2 and len(listed_numbers(second)) == 1
        assert set(listed_numbers(first) + listed_numbers(second)) == {
            site[key].number for key in ("main", "archived", "elsewhere")}
        assert listed_numbers(archivist.get("/archive/?page=7")) == listed_numbers(second)
        assert 'href="/archive/?page=2"' in text(first)

    def test_other_roles_are_refused_and_anonymous_visitors_sent_to_sign_in(self, auth, client, site, people):
        for role in ("reviewer", "credit_officer", "administrator", "owner"):
            assert auth(role).get("/archive/").status_code == 403, role
        response = client.get("/archive/")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")

    def test_the_nav_shows_the_archive_to_archivists_only(self, auth, site):
        assert 'href="/archive/"' in text(auth("archivist").get("/"))
        assert 'href="/archive/"' not in text(auth("reviewer").get("/"))


class TestDossierPage:
    def test_shows_every_field_every_version_and_the_whole_history(self, auth, site):
        main = site["main"]
        body = text(auth("archivist").get(f"/archive/{main.id}"))
        assert "欧阳明月" in body and "朝阳市双塔区示范会计服务有限公司" in body and "辽宁省 / 朝阳市 / 双塔区" in body
        assert main.person.id_number not in body
        for version in (v for a in fresh(Dossier, main.id).attachments for v in a.versions):
            assert f'href="/files/{version.id}"' in body and version.sha256[:12] in body
        assert "one.pdf" in body and "two.pdf" in body and "信息属实" in body
        assert body.count("现行版本：等待提取文字，提取后可检索") == len(fresh(Dossier, main.id).attachments)
        assert 'name="date"' in body and "下载档案包" in body and ">归档</button>" in body

    def test_an_archived_dossier_has_no_archive_button(self, auth, site):
        body = text(auth("archivist").get(f"/archive/{site['archived'].id}"))
        assert "调离会计岗位" in body and ">归档</button>" not in body and "下载档案包" in body

    def test_answers_404_outside_the_archivists_regions_states_and_roles(self, auth, site, people,
                                                                         longcheng_archivist, client):
        archivist, county = auth("archivist"), auth(longcheng_archivist)
        for key in ("draft", "shenyang"):
            assert archivist.get(f"/archive/{site[key].id}").status_code == 404, key
        assert county.get(f"/archive/{site['main'].id}").status_code == 404
        assert county.get(f"/archive/{site['elsewhere'].id}").status_code == 200
        assert archivist.get("/archive/999999").status_code == 404
        for role in ("reviewer", "city_reviewer", "credit_officer", "administrator", "owner"):
            for path in (f"/archive/{site['main'].id}", f"/archive/{site['main'].id}/as-of?date=2020-01-01"):
                assert auth(role).get(path).status_code == 404, (role, path)
        assert client.get(f"/archive/{site['main'].id}").status_code == 302

    def test_archivists_download_every_version_through_the_files_route(self, auth, site, blobs):
        archivist = auth("archivist")
        for version in site["main_other"]:
            response = archivist.get(f"/files/{version.id}")
            assert response.status_code == 200 and response.data == blobs.read(version.sha256)
        for key in ("draft", "shenyang"):
            assert archivist.get(f"/files/{site[key].attachments[0].current.id}").status_code == 404, key

    def test_no_get_writes_anything(self, auth, site):
        archivist = auth("archivist")
        before = database_snapshot()
        for path in ("/archive/", f"/archive/{site['main'].id}", f"/archive/{site['main'].id}/as-of?date=2020-01-01",
                     f"/archive/{site['main'].id}/archive", f"/archive/{site['main'].id}/package"):
            assert archivist.get(path).status_code in (200, 405)
        assert archivist.get(f"/archive/{site['main'].id}/archive").status_code == 405
        assert database_snapshot() == before


def archive_form(browser, dossier_id, comment="已不再从事会计工作", page=None):
    page = page or browser.get(f"/archive/{dossier_id}")
    version = re.search(r'name="lock_version"[^>]*value="(\d+)"', text(page)).group(1)
    return browser.post(f"/archive/{dossier_id}/archive",
                        data={"csrf_token": csrf_of(page), "lock_version": version, "comment": comment})


class TestArchiving:
    def test_archiving_moves_the_state_and_records_the_reason(self, auth, site, people):
        main, archivist = site["main"], auth("archivist")
        response = archive_form(archivist, main.id)
        assert response.status_code == 302 and response.headers["Location"] == f"/archive/{main.id}"
        assert fresh(Dossier, main.id).state == "archived"
        row = db.session.scalars(select(WorkflowHistory).where(WorkflowHistory.dossier_id == main.id)
                                 .order_by(WorkflowHistory.id.desc())).first()
        assert (row.action, row.actor_role, row.comment, row.actor_id) == (
            "archive", "archivist", "已不再从事会计工作", people["archivist"].id)
        assert db.session.scalars(select(DossierRevision).where(DossierRevision.dossier_id == main.id)
                                  .order_by(DossierRevision.id.desc())).first().state == "archived"
        assert "已归档：欧阳明月" in flashes(archivist.get(f"/archive/{main.id}"))[0]

    def test_a_reason_is_required(self, auth, site):
        before = database_snapshot()
        response = archive_form(auth("archivist"), site["main"].id, comment="   ")
        assert response.status_code == 422 and "归档原因：必填" in text(response)
        assert database_snapshot() == before

    def test_without_the_csrf_token_nothing_happens(self, auth, site):
        before = database_snapshot()
        response = auth("archivist").post(f"/archive/{site['main'].id}/archive",
                                          data={"lock_version": fresh(Dossier, site["main"].id).lock_version,
                                                "comment": "x"})
        assert response.status_code == 400 and database_snapshot() == before

    def test_a_page_gone_stale_is_a_conflict_that_keeps_the_reason(self, auth, site, people, workflow):
        archivist = auth("archivist")
        page = archivist.get(f"/archive/{site['elsewhere'].id}")
        other = auth(staff("archivist_second", "archivist", "211300"))
        assert archive_form(other, site["elsewhere"].id, comment="先归档").status_code == 302
        response = archive_form(archivist, site["elsewhere"].id, comment="后归档的原因", page=page)
        assert response.status_code == 409 and CONFLICT in text(response) and "后归档的原因" in text(response)
        rows = db.session.scalars(select(WorkflowHistory).where(WorkflowHistory.dossier_id == site["elsewhere"].id,
                                                                WorkflowHistory.action == "archive")).all()
        assert [row.comment for row in rows] == ["先归档"]

    def test_an_archived_dossier_cannot_be_archived_again(self, auth, site):
        archived, archivist = site["archived"], auth("archivist")
        page = archivist.get(f"/archive/{archived.id}")
        response = archivist.post(f"/archive/{archived.id}/archive", data={
            "csrf_token": csrf_of(page), "lock_version": fresh(Dossier, archived.id).lock_version, "comment": "再次"})
        assert response.status_code == 422 and fresh(Dossier, archived.id).state == "archived"

    def test_others_cannot_archive(self, auth, site, longcheng_archivist):
        main = site["main"]
        page = auth("archivist").get(f"/archive/{main.id}")
        for who in (auth(longcheng_archivist), auth("city_reviewer"), auth("administrator")):
            response = who.post(f"/archive/{main.id}/archive", data={
                "csrf_token": csrf_of(who.get("/")), "lock_version": fresh(Dossier, main.id).lock_version,
                "comment": "越权"})
            assert response.status_code == 404
        assert page.status_code == 200 and fresh(Dossier, main.id).state == "approved"


BEIJING = timezone(timedelta(hours=8))


class TestAsOfPage:
    def test_each_date_shows_the_dossier_as_it_stood(self, auth, site, people, workflow):
        dossier = site["main"]
        # Move the recorded history back in time: yesterday it had another employer.
        now = datetime.now(timezone.utc)
        yesterday = (now.astimezone(BEIJING) - timedelta(days=1)).date()
        for revision in db.session.scalars(select(DossierRevision).where(DossierRevision.dossier_id == dossier.id)):
            revision.recorded_at = revision.recorded_at - timedelta(days=2)
        dossier.created_at = now - timedelta(days=3)
        db.session.commit()
        # Today it changed (as a checked-in information change does): the listener records a revision now.
        dossier.employer_name = "朝阳市今日新单位"
        db.session.commit()
        archivist = auth("archivist")
        then = text(archivist.get(f"/archive/{dossier.id}/as-of?date={yesterday.isoformat()}"))
        assert "朝阳市双塔区示范会计服务有限公司" in then and "朝阳市今日新单位" not in then
        for version in site["main_other"][-1:]:
            assert f'href="/files/{version.id}"' in then
        today = (now.astimezone(BEIJING)).date()
        current = text(archivist.get(f"/archive/{dossier.id}/as-of?date={today.isoformat()}"))
        assert "朝阳市今日新单位" in current
        long_ago = text(archivist.get(f"/archive/{dossier.id}/as-of?date=2001-01-01"))
        assert "此日期之前无记录" in long_ago and 'id="as-of-fields"' not in long_ago

    def test_a_bad_or_future_date_is_refused_naming_the_field(self, auth, site):
        archivist = auth("archivist")
        for value, message in (("2020-13-01", "日期：请按"), ("yesterday", "日期：请按"), ("2020-1-1", "日期：请按"),
                               ("2999-01-01", "日期：不能晚于今天")):
            response = archivist.get(f"/archive/{site['main'].id}/as-of?date={value}")
            assert response.status_code == 422 and message in text(response), value
        assert archivist.get(f"/archive/{site['main'].id}/as-of").status_code == 200


class TestPackageDownload:
    def package(self, browser, dossier_id):
        page = browser.get(f"/archive/{dossier_id}")
        return browser.post(f"/archive/{dossier_id}/package", data={"csrf_token": csrf_of(page)})

    def test_the_download_is_a_verified_zip_with_safe_headers_and_an_audit_event(self, auth, site, people):
        main = site["main"]
        response = self.package(auth("archivist"), main.id)
        assert response.status_code == 200 and response.mimetype == "application/zip"
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="{main.number}.zip"; filename*=UTF-8\'\'{quote(main.number + "-档案包.zip", safe="")}')
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert int(response.headers["Content-Length"]) == len(response.data)
        instance_key = public_key_pem(get_signing_key())
        assert verify_package(io.BytesIO(response.data), [instance_key]).trusted  # signed by this instance
        with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
            assert sum(name.startswith("files/other/") for name in archive.namelist()) == 2
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "dossier.export_package")).one()
        assert (event.actor_id, event.object_id, event.detail["files"]) == (people["archivist"].id, main.id, 5)

    def test_without_the_csrf_token_or_the_right_nothing_is_sent(self, auth, site, longcheng_archivist):
        main = site["main"]
        before = database_snapshot()
        assert auth("archivist").post(f"/archive/{main.id}/package").status_code == 400
        county = auth(longcheng_archivist)
        assert county.post(f"/archive/{main.id}/package", data={"csrf_token": csrf_of(county.get("/"))}
                           ).status_code == 404
        reviewer = auth("city_reviewer")
        assert reviewer.post(f"/archive/{main.id}/package", data={"csrf_token": csrf_of(reviewer.get("/"))}
                             ).status_code == 404
        assert database_snapshot() == before

    def test_a_missing_stored_file_is_reported_not_packaged(self, auth, site, blobs):
        blobs.delete(site["main_other"][0].sha256)
        response = self.package(auth("archivist"), site["main"].id)
        assert response.status_code == 500 and "档案包未能生成" in text(response)
        assert db.session.scalars(select(AuditEvent).where(AuditEvent.action == "dossier.export_package")).all() == []
