"""Three server processes and one worker on PostgreSQL and SeaweedFS, driven by 30 clients over real HTTP."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
import urllib3

from kjdms.samples import sample_pdf, sample_png
from tests.conftest import POSTGRES_URL
from tests.helpers import make_id_number
from tests.s3server import _free_ports
from tests.webclient import basic_information

pytestmark = pytest.mark.postgres

CLIENTS, REVIEWERS, TIME_LIMIT = 30, 3, 240
KJDMS = str(Path(sys.executable).with_name("kjdms"))
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
LOCK = re.compile(r'name="lock_version"[^>]*value="(\d+)"')
SURNAMES, GIVEN = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗", "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"


class Visitor:
    """One browser over real HTTP from its own loopback address (registration is throttled per address)."""

    def __init__(self, base: str, address: str, statuses: Counter) -> None:
        self.base, self.cookie, self.statuses = base, "", statuses
        self.pool = urllib3.HTTPConnectionPool("127.0.0.1", int(base.rsplit(":", 1)[1]), source_address=(address, 0),
                                               maxsize=1, retries=False, timeout=60)

    def request(self, method: str, path: str, **kwargs) -> urllib3.BaseHTTPResponse:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        response = self.pool.request(method, path, headers=headers, redirect=False, **kwargs)
        self.statuses[response.status] += 1
        for cookie in response.headers.getlist("Set-Cookie"):
            if cookie.startswith("session="):
                self.cookie = cookie.split(";", 1)[0]
        return response

    def page(self, path: str) -> str:
        return self.request("GET", path).data.decode("utf-8")

    def post(self, path: str, fields: dict, page: str | None = None, multipart: bool = False):
        token = CSRF.search(self.page(page or path)).group(1)
        fields = {**fields, "csrf_token": token}
        if multipart:
            return self.request("POST", path, fields=fields)
        return self.request("POST", path, fields=_pairs(fields), encode_multipart=False)


def _pairs(fields: dict) -> list[tuple[str, str]]:
    return [(name, item) for name, value in fields.items() for item in (value if isinstance(value, list) else [value])]


@pytest.fixture
def deployment(tmp_path, s3_server):
    """A production-shaped instance: PostgreSQL, S3, `kjdms serve --workers 3` and one `kjdms worker`."""
    schema = f"kjdms_procs_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options=-csearch_path%3D{schema}"
    port = _free_ports(1)[0]
    env = {key: value for key, value in os.environ.items() if not key.startswith("KJDMS_")}
    env.update(KJDMS_STORAGE_DIR=str(tmp_path), KJDMS_DATABASE_URL=url, KJDMS_BLOB_STORE="s3",
               KJDMS_S3_ENDPOINT_URL=s3_server.endpoint, KJDMS_S3_BUCKET=s3_server.BUCKET,
               KJDMS_S3_PREFIX=f"procs-{uuid.uuid4().hex[:8]}", KJDMS_S3_ACCESS_KEY="kjdms", KJDMS_S3_SECRET_KEY="kjdms",
               KJDMS_WORKER="external", KJDMS_INDEX_AFTER_COMMIT="0", KJDMS_OCR="0")
    run = lambda *args: subprocess.run([KJDMS, *args], env=env, capture_output=True, text=True, timeout=300)  # noqa: E731
    assert run("init").returncode == 0
    demo = run("demo")
    assert demo.returncode == 0, demo.stderr
    password = re.search(r"reviewer_shuangta\s+(\S+)", demo.stdout).group(1)
    log = open(tmp_path / "processes.log", "w")
    processes = [subprocess.Popen([KJDMS, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                 for args in (("serve", "--workers", "3", "--port", str(port), "--threads", "6"),
                              ("worker", "--interval", "0.5"))]
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib3.request("GET", f"{base}/", retries=False, timeout=2).status == 200:
                break
        except urllib3.exceptions.HTTPError:
            time.sleep(0.3)
    try:
        yield {"base": base, "password": password, "run": run, "url": url, "log": tmp_path / "processes.log"}
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
        leftover = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True).stdout.split()
        assert not leftover, f"server processes survived: {leftover}"
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def applicant_journey(base: str, number: int, statuses: Counter, submitted: list) -> None:
    """Register, fill in, upload every required document and submit, as one person does."""
    me = Visitor(base, f"127.0.0.{10 + number}", statuses)
    name = SURNAMES[number % len(SURNAMES)] + GIVEN[(number * 7) % len(GIVEN)]
    password = f"Kuaiji{number:02d}x2026"
    response = me.post("/register", {"name": name, "id_number": make_id_number(sequence=500 + number),
                                     "password": password, "password_confirm": password})
    assert response.status == 302, response.data.decode()[:500]
    assert me.post("/me/edit", basic_information(name=name)).status == 302
    for slot in re.findall(r'action="/me/documents/([a-z_]+)"', me.page("/me/documents")):
        data, filename = ((sample_png(seed=number * 10 + len(slot)), f"{slot}.png") if len(slot) % 2
                          else (sample_pdf(f"{slot} {number}"), f"{slot}.pdf"))
        content = "image/png" if filename.endswith(".png") else "application/pdf"
        if slot in ("basic_info_form", "employer_certificate", "education_certificate"):
            assert me.post(f"/me/documents/{slot}", {"comment": "", "file": (filename, data, content)},
                           page="/me/documents", multipart=True).status == 302
    page = me.page("/me/")
    response = me.post("/me/transition/submit", {"comment": "", "lock_version": LOCK.search(page).group(1)},
                       page="/me/")
    assert response.status == 302
    submitted.append(number)


def reviewer_round(base: str, number: int, password: str, statuses: Counter, stop: threading.Event,
                   approved: set) -> None:
    """Sign in as the county's reviewer, approve what the queue holds, search now and then, until stopped."""
    me = Visitor(base, f"127.0.1.{10 + number}", statuses)
    token = CSRF.search(me.page("/login")).group(1)
    signed_in = me.request("POST", "/login/staff", encode_multipart=False, fields={
        "staff-csrf_token": token, "staff-username": "reviewer_shuangta", "staff-password": password})
    assert signed_in.status == 302
    while not stop.is_set():
        queue = [int(found) for found in re.findall(r'href="/review/(\d+)"', me.page("/review/"))]
        for dossier_id in queue[number::REVIEWERS] or queue[:1]:
            page = me.page(f"/review/{dossier_id}")
            version = LOCK.search(page)
            if version is None:
                continue
            response = me.post(f"/review/{dossier_id}/approve", {"comment": "", "lock_version": version.group(1)},
                               page=f"/review/{dossier_id}")
            if response.status == 302:
                approved.add(dossier_id)
        me.page(f"/search/?q={SURNAMES[number]}")
        time.sleep(0.2)


@pytest.mark.long
def test_three_server_processes_and_a_worker_serve_thirty_clients(deployment):
    base, statuses, submitted, approved, stop = deployment["base"], Counter(), [], set(), threading.Event()
    applicants = [threading.Thread(target=applicant_journey, args=(base, n, statuses, submitted))
                  for n in range(CLIENTS)]
    reviewers = [threading.Thread(target=reviewer_round, args=(base, n, deployment["password"], statuses, stop,
                                                               approved)) for n in range(REVIEWERS)]
    for thread in applicants + reviewers:
        thread.start()
    deadline = time.monotonic() + TIME_LIMIT
    for thread in applicants:
        thread.join(max(0, deadline - time.monotonic()))
    engine = sa.create_engine(deployment["url"])
    # What the county's reviewers can approve (the demo has a submitted dossier in another county too).
    query = sa.text("SELECT count(*) FROM dossiers d JOIN regions r ON r.id = d.region_id "
                    "WHERE d.state = 'submitted' AND d.baseline_id IS NULL AND r.code = '211302'")
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if not connection.execute(query).scalar():
                break
        time.sleep(0.5)
    stop.set()
    for thread in reviewers:
        thread.join(60)

    log = deployment["log"].read_text(errors="replace")
    # A server error's traceback, wherever it is in the log, rather than the log's last lines.
    failure = log[max(0, log.find("Traceback") - 300):][:6000] if "Traceback" in log else log[-3000:]
    assert not [status for status in statuses if status >= 500], (statuses, failure)
    assert len(submitted) == CLIENTS, (statuses, log[-3000:])
    assert len(approved) >= CLIENTS
    with engine.connect() as connection:
        left_in_queue = connection.execute(query).scalar()
        states = dict(connection.execute(sa.text(
            "SELECT state, count(*) FROM dossiers WHERE baseline_id IS NULL GROUP BY state")).all())
        # Every dossier's state is where its history leads, each step starting where the one before ended.
        history = connection.execute(sa.text(
            "SELECT d.id, d.state, h.from_state, h.to_state FROM dossiers d JOIN workflow_history h "
            "ON h.dossier_id = d.id ORDER BY d.id, h.id")).all()
    engine.dispose()
    assert left_in_queue == 0 and states["approved"] >= CLIENTS
    walked = {}
    for dossier_id, state, source, target in history:
        assert walked.get(dossier_id, source) == source, f"dossier {dossier_id}: a step from {source}"
        walked[dossier_id] = target
    assert all(walked[dossier_id] == state for dossier_id, state, _, _ in history)

    run = deployment["run"]
    assert run("worker", "--once").returncode == 0
    verified = run("blobs", "verify")
    assert verified.returncode == 0 and "缺失 0 个，损坏 0 个" in verified.stdout, verified.stdout
    checked = run("index", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_several_processes_need_the_worker_outside_them(tmp_path):
    """Each process would otherwise take the index's one writer lock in turn, or drain the outbox twice."""
    from kjdms import create_app
    from tests.conftest import make_config

    app = create_app(make_config(tmp_path))
    result = app.test_cli_runner().invoke(args=["serve", "--workers", "3"])
    assert result.exit_code != 0
    assert "KJDMS_WORKER=external" in result.output and "KJDMS_INDEX_AFTER_COMMIT=0" in result.output
