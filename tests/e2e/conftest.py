"""Fixtures for browser tests: a live server on a copy of the migrated database, chromium, a camera."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from kjdms import create_app
from kjdms.config import PROJECT_ROOT
from kjdms.extensions import db
from tests.conftest import make_config
from tests.helpers import staff

CHROMIUM = Path("/usr/bin/chromium")
# Checked to work here (ARCHITECTURE.md): no sandbox in containers, no GPU, nothing fetched from the internet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "e2e"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
REVIEWER = "reviewer_shuangta"


@dataclass
class Site:
    """A kjdms instance served over HTTP for the browser."""

    app: Flask
    url: str


@contextmanager
def served(app: Flask) -> Iterator[Site]:
    """Serve app on a free 127.0.0.1 port while the block runs."""
    # One log line per request drowns the useful part of a failure report.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Threaded, like waitress in production: the page and its stylesheet and previews load at once.
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="kjdms-e2e-server", daemon=True)
    thread.start()
    try:
        yield Site(app=app, url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def site(tmp_path, sqlite_template):
    """Serve a fresh application (SQLite copy of the migrated template) with the 双塔区 reviewer."""
    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    app = create_app(make_config(tmp_path))
    with app.app_context():
        staff(REVIEWER, "reviewer", "211302")
        db.session.remove()
    with served(app) as running:
        yield running


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium under Playwright; skipped when it is not installed, except in CI, where that fails."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is not installed (Debian package chromium; scripts/bootstrap.sh TEST_PACKAGES)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # The browser's own strings (a file input's 选择文件) in Chinese, as a clerk's Chromium shows them: Chromium
        # on Linux takes its interface language from LANGUAGE (chromium-l10n has the strings), not from --lang.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                             env={**os.environ, "LANGUAGE": "zh_CN"})
        yield browser
        browser.close()


class Camera:
    """Take a full-page screenshot of each page visited, numbered in the order taken."""

    def __init__(self, folder: Path):
        self.folder, self.taken = folder, []

    def shoot(self, page, name: str, viewport: dict | None = None) -> Path:
        """Save page as NN-name.png, at viewport if given (then back to the page's own size)."""
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        previous = page.viewport_size
        if viewport:
            page.set_viewport_size(viewport)
        # Lazy previews below the fold would be blank in a full-page shot: load them all first.
        page.evaluate("""() => Promise.all([...document.images].map(img => {
            img.loading = 'eager';
            return img.complete ? null : new Promise(done => { img.onload = img.onerror = done; });
        }))""")
        page.screenshot(path=str(path), full_page=True)
        if viewport:
            page.set_viewport_size(previous)
        self.taken.append(path)
        return path


def watch(page, problems: list[str]):
    """Collect the page's failed requests, script errors and policy refusals into problems; return the page."""
    page.set_default_timeout(10_000)
    page.on("response", lambda response: problems.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico") else None)
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    # A Content-Security-Policy refusal (an inline handler, a javascript: link, an inline style) is no script error:
    # Chromium only reports it on the console.
    page.on("console", lambda message: problems.append(f"policy refusal on {page.url}: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text else None)
    return page


@contextmanager
def watched_pages(chromium, camera: Camera, *people: str) -> Iterator[tuple[list[str], list]]:
    """Give each person a browser of their own and a watched page; photograph every page if the block fails."""
    problems: list[str] = []
    contexts = [chromium.new_context(viewport=DESKTOP, locale="zh-CN", accept_downloads=True) for _ in people]
    pages = [watch(context.new_page(), problems) for context in contexts]
    try:
        yield problems, pages
    except Exception:
        # What each person saw when it went wrong, and any failed request behind it, for the CI report.
        print("failed requests and script errors:", problems)
        for who, page in zip(people, pages):
            with contextlib.suppress(Exception):  # the page may be gone; the first error is the one to see
                camera.shoot(page, f"failure-{who}")
        raise
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def camera(request):
    """A Camera writing into test-artifacts/e2e/<test name>/, emptied first so no stale screenshot misleads."""
    # A folder per test: one test's screenshots never wipe another's.
    folder = ARTIFACTS / request.node.name.removeprefix("test_")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Camera(folder)


def sign_in_staff(page, site: Site, username: str = REVIEWER, password: str | None = None) -> None:
    """Sign in on the login page's staff tab as username (with the test staff password unless given)."""
    from tests.helpers import STAFF_PASSWORD

    page.goto(site.url + "/login")
    page.get_by_role("tab", name="财政部门工作人员").click()
    pane = page.locator("#staff")
    pane.get_by_label("用户名", exact=True).fill(username)
    pane.get_by_label("密码", exact=True).fill(password or STAFF_PASSWORD)
    pane.get_by_role("button", name="登录").click()


def sign_in_applicant(page, site: Site, name: str, id_number: str, password: str) -> None:
    """Sign in from the home page's link on the accounting-person tab by name, ID number and password."""
    from playwright.sync_api import expect  # here, as in chromium(): without playwright the tests skip

    page.goto(site.url + "/")
    page.get_by_role("link", name="登录（含原系统登记人员）").click()
    pane = page.locator("#applicant")
    pane.get_by_label("姓名", exact=True).fill(name)
    pane.get_by_label("身份证号", exact=True).fill(id_number)
    pane.get_by_label("密码", exact=True).fill(password)
    pane.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name=re.compile("^我的档案"))).to_be_visible()
