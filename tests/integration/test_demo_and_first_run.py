"""What a first run shows: demo documents like the real ones, OCR retried once installed, the icon, the request log."""
from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pypdf
import pytest
from sqlalchemy import select

from kjdms.backends import get_blob_store
from kjdms.documents.text import OCR_MISSING, extract_text
from kjdms.extensions import db
from kjdms.models import TEXT_DONE, TEXT_FAILED, TEXT_PENDING, AttachmentVersion, Dossier, Person
from kjdms.request_log import RequestLog
from kjdms.samples import sample_png
from kjdms.services.attachments import add_attachment_version
from kjdms.services.text_extraction import extract_pending
from kjdms.worker import work_once

ROOT = Path(__file__).resolve().parents[2]


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args), catch_exceptions=False)


def ocr_ready() -> bool:
    if shutil.which("tesseract") is None:
        return False
    listing = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30)
    return "chi_sim" in listing.stdout.split()


@pytest.fixture
def tesseract():
    """Skip where tesseract with chi_sim is missing, but fail under CI, which installs it."""
    if not ocr_ready():
        if os.environ.get("CI"):
            pytest.fail("tesseract with chi_sim is not installed")
        pytest.skip("tesseract with chi_sim is not installed")


def current(dossier: Dossier, slot: str) -> AttachmentVersion:
    return dossier.attachment(slot).current


def test_the_demo_documents_look_like_the_real_ones(app, tesseract):
    assert run(app, "demo").exit_code == 0
    person = db.session.scalar(select(Person).where(Person.name == "王芳"))
    dossier, blobs = person.dossier, get_blob_store()
    form = current(dossier, "basic_info_form")
    assert form.media_type == "application/pdf"
    printed = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(blobs.read(form.sha256))).pages)
    assert "基本信息表" in printed and dossier.number in printed and "王芳" in printed
    licence, diploma = current(dossier, "employer_certificate"), current(dossier, "education_certificate")
    assert licence.media_type == diploma.media_type == "image/jpeg"
    read = extract_text(blobs.read(licence.sha256), licence.media_type)
    assert read.method == "ocr" and "营业执照" in read.text and dossier.employer_uscc[:8] in read.text
    assert "朝阳市双塔区示范会计服务有限公司" in read.text
    read = extract_text(blobs.read(diploma.sha256), diploma.media_type)
    assert "毕业证书" in read.text and "王芳" in read.text and "会计学" in read.text
    qualified = db.session.scalar(select(Person).where(Person.name == "李娜")).dossier  # index 2: none; 刘洋 holds one
    assert qualified.attachment("qualification_certificate") is None
    holder = db.session.scalar(select(Person).where(Person.name == "刘洋")).dossier
    certificate = current(holder, "qualification_certificate")
    read = extract_text(blobs.read(certificate.sha256), certificate.media_type)
    assert "会计专业技术资格证书" in read.text and holder.qualification_certificate_number in read.text


def test_extractions_that_failed_for_want_of_ocr_are_retried_once_it_is_there(app, workflow, people, tesseract,
                                                                             monkeypatch, tmp_path):
    from kjdms.documents.certificates import certificate_jpeg

    blobs = get_blob_store()
    scan = certificate_jpeg("毕业证书", [("姓名", "张伟"), ("专业", "会计学")], issuer="辽宁大学", issued_on="2012年7月1日")
    version = add_attachment_version(db.session, workflow, blobs, people["dossier"], "education_certificate", scan,
                                     people["owner"], filename="毕业证书.jpg")
    broken = add_attachment_version(db.session, workflow, blobs, people["dossier"], "other", sample_png(seed=3),
                                    people["owner"], filename="其他.png")
    # The machine before `run.sh` installed tesseract: nothing named tesseract on the PATH.
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert extract_pending(db.session, blobs) == 2
    assert (version.text_status, version.text_error) == (TEXT_FAILED, OCR_MISSING)
    assert run(app, "extract", "--retry-failed").output == "重新排队：0 份\n提取文字：0 份\n"  # still missing
    monkeypatch.undo()
    # A failure of another cause (a blob gone) stays failed while its cause stays.
    broken.text_status, broken.text_error = TEXT_FAILED, "提取文字失败：文件缺失或已损坏"
    db.session.commit()
    blobs.delete(broken.sha256)
    output = run(app, "extract", "--retry-failed").output
    assert output == "重新排队：1 份\n提取文字：1 份\n"
    db.session.refresh(version)
    assert version.text_status == TEXT_DONE and version.text_method == "ocr" and "会计学" in version.extracted_text
    db.session.refresh(broken)
    assert broken.text_status == TEXT_FAILED


def test_the_worker_retries_them_by_itself(app, workflow, people, tesseract, monkeypatch, tmp_path):
    blobs = get_blob_store()
    version = add_attachment_version(db.session, workflow, blobs, people["dossier"], "other", sample_png(seed=5),
                                     people["owner"], filename="其他.png")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    work_once(app, calendar=False)
    db.session.expire_all()
    assert db.session.get(AttachmentVersion, version.id).text_error == OCR_MISSING
    monkeypatch.undo()
    work_once(app, calendar=False)  # between calendar rounds nothing is retried
    db.session.expire_all()
    assert db.session.get(AttachmentVersion, version.id).text_status == TEXT_FAILED
    work_once(app, calendar=True)
    db.session.expire_all()
    retried = db.session.get(AttachmentVersion, version.id)
    assert retried.text_status in (TEXT_PENDING, TEXT_DONE) and retried.text_error != OCR_MISSING


def test_the_icon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/vnd.microsoft.icon"
    assert response.data[:4] == b"\x00\x00\x01\x00"  # the ICO header
    assert 'rel="icon" href="/favicon.ico"' in client.get("/").get_data(as_text=True)


def test_the_request_log_names_the_path_and_status_but_never_the_query(app, caplog):
    caplog.set_level(logging.INFO, logger="kjdms.requests")
    logged = RequestLog(app)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/search/", "QUERY_STRING": "q=211302199001010017&name=%E5%BC%A0%E4%BC%9F",
               "SERVER_NAME": "localhost", "SERVER_PORT": "8000", "REMOTE_ADDR": "10.0.0.7", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(b""), "SERVER_PROTOCOL": "HTTP/1.1"}
    statuses = []
    body = b"".join(logged(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses and body
    [line] = [record.getMessage() for record in caplog.records if record.name == "kjdms.requests"]
    assert re.fullmatch(r"10\.0\.0\.7 GET /search/ 302 \S+ \d+ms", line), line
    assert "211302199001010017" not in caplog.text and "%E5" not in caplog.text and "q=" not in caplog.text


def test_the_second_demo_names_a_command_that_works(app):
    run(app, "demo")
    again = run(app, "demo").output
    command = re.search(r"请运行：(\S+) demo --reset-passwords", again).group(1)
    assert command == "kjdms" and shutil.which("kjdms") or Path(command).is_file(), command


def test_run_sh_installs_what_extraction_needs():
    listed = subprocess.run(["bash", "-c", 'source scripts/bootstrap.sh; echo "${RUNTIME_PACKAGES[@]}"'],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert {"tesseract-ocr", "tesseract-ocr-chi-sim", "fonts-wqy-microhei", "libmagic1"} <= set(listed)
    assert "ensure_debian_packages \"${RUNTIME_PACKAGES[@]}\"" in (ROOT / "run.sh").read_text()
