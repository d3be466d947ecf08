"""The kjdms command: init, demo, workflow show, blobs verify/gc, and the home page it serves."""
import os
import re
import time

import pytest

from sqlalchemy import func, select

from kjdms.backends import get_blob_store
from kjdms.extensions import db
from kjdms.models import AuditEvent, Dossier, Region, User
from kjdms.services.demo import APPLICANTS, STAFF
from tests.helpers import applicant, upload_required


def run(app, *args):
    result = app.test_cli_runner().invoke(args=list(args), catch_exceptions=False)
    return result


def test_init_is_idempotent_and_ships_the_region_tree(app):
    first = run(app, "init")
    assert first.exit_code == 0 and "地区：新增 0，更新 0" in first.output  # the fixture loaded them
    assert run(app, "init").output == first.output
    regions = {region.code: region for region in db.session.scalars(select(Region))}
    cities = [r for r in regions.values() if r.kind == "city"]
    assert len(cities) == 14
    assert {"210000-SF", "210000-ZZ"} <= set(regions)
    assert regions["210200"].collected_elsewhere and not regions["210100"].collected_elsewhere
    chaoyang_offices = {r.name: (r.phone, r.address) for r in regions["211300"].children}
    assert len(chaoyang_offices) == 8
    assert chaoyang_offices["市本级"] == ("0421-3608136", "朝阳大街三段 11 号 111 室")
    assert chaoyang_offices["龙城区"] == ("0421-2611447", "朝阳友谊大街三段 14-1 号")


def test_init_restores_edited_reference_data(app):
    region = db.session.scalar(select(Region).filter_by(code="211302"))
    region.phone = "0421-0000000"
    db.session.commit()
    assert "更新 1" in run(app, "init").output
    db.session.expire_all()
    assert db.session.scalar(select(Region.phone).filter_by(code="211302")) == "0421-2855527"


@pytest.mark.long
def test_demo_loads_every_state_once_and_prints_working_sign_ins(app):
    result = run(app, "demo")
    assert result.exit_code == 0
    for username, *_ in STAFF:
        assert re.search(rf"{username}\s+[A-Za-z]{{6}}[0-9]{{4}}", result.output)
    states = set(db.session.scalars(select(Dossier.state)))
    assert states == {"draft", "submitted", "approved", "rejected", "archived", "purged"}
    assert db.session.scalar(select(func.count()).select_from(Dossier)) == len(APPLICANTS) + 1
    again = run(app, "demo")
    assert "演示数据已存在" in again.output
    assert db.session.scalar(select(func.count()).select_from(Dossier)) == len(APPLICANTS) + 1
    reset = run(app, "demo", "--reset-passwords")
    admin_password = lambda output: re.search(r"admin\s+([A-Za-z]{6}[0-9]{4})", output).group(1)  # noqa: E731
    assert admin_password(reset.output) != admin_password(result.output)  # random, never hard-coded
    assert db.session.scalar(select(func.count()).select_from(User).where(User.username.is_not(None))) == len(STAFF)


def test_workflow_show_prints_mermaid(app):
    output = run(app, "workflow", "show").output
    assert output.startswith("stateDiagram-v2")
    assert "submitted --> approved: approve" in output


def test_blobs_verify_names_a_corrupt_blob_and_gc_removes_orphans(app, workflow, people):
    blobs = get_blob_store()
    upload_required(workflow, blobs, people["dossier"], people["owner"])
    assert run(app, "blobs", "verify").output.endswith("缺失 0 个，损坏 0 个\n")
    victim = next(iter(blobs.iter_hashes()))
    path = blobs.path_for(victim)
    os.chmod(path, 0o600)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run(app, "blobs", "verify")
    assert result.exit_code == 1 and f"损坏 {victim}" in result.output

    orphan = blobs.put(b"%PDF-1.4 left behind by a crash between blob and row").sha256
    assert "将删除 0 个无引用文件" in run(app, "blobs", "gc", "--dry-run").output  # still within the grace period
    old = time.time() - 7200
    os.utime(blobs.path_for(orphan), (old, old))
    assert "将删除 1 个无引用文件" in run(app, "blobs", "gc", "--dry-run").output
    assert blobs.exists(orphan)
    assert "已删除 1 个无引用文件" in run(app, "blobs", "gc").output
    assert not blobs.exists(orphan) and blobs.exists(victim)


def test_home_page_says_what_the_site_is_in_chinese_with_safe_headers(app, client):
    response = client.get("/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "辽财会〔2019〕116号" in page and "属地化原则" in page
    assert "0421-7955041" in page and "凌源市财政局" in page
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_no_write_on_get_the_home_page_is_read_only(app, client):
    applicant()
    before = db.session.scalar(select(func.count()).select_from(Dossier))
    client.get("/")
    assert db.session.scalar(select(func.count()).select_from(Dossier)) == before
    assert client.post("/").status_code in (400, 405)


def _leaf_commands(group, prefix=""):
    """Yield (path, help line) for every command below a click group, subcommands of groups included."""
    import click

    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group) and command.commands:
            yield from _leaf_commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", (command.help or "").strip().splitlines()[0]


def test_help_lists_every_command_in_chinese_as_the_readme_table_does(app):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| `kjdms ([a-z-]+(?: [a-z-]+)?)[^`]*` \| (.+) \|$", readme, re.MULTILINE))
    listed = run(app, "--help").output
    commands = dict(_leaf_commands(app.cli))
    commands = {path: line for path, line in commands.items() if not path.startswith("db ")}  # Flask-Migrate's own
    for path, line in commands.items():
        assert re.search(r"[\u4e00-\u9fff]", line), f"kjdms {path}: help is not in Chinese"
        assert path in table, f"README's operations table has no row for kjdms {path}"
        assert table[path].startswith(line), f"kjdms {path}: README says {table[path]!r}, --help says {line!r}"
        assert path.split()[0] in listed
    assert set(table) - {"db"} == set(commands), "README lists a command kjdms does not have"


def test_user_commands_bootstrap_a_fresh_instance(app):
    from kjdms.services.accounts import password_matches

    created = run(app, "user", "create", "zhang_admin", "--region", "210000", "--role", "administrator",
                  "--display-name", "张管理")
    assert created.exit_code == 0, created.output
    password = re.search(r"一次性初始密码（只显示这一次）：([A-Za-z0-9]+)", created.output).group(1)
    user = db.session.scalar(select(User).where(User.username == "zhang_admin"))
    assert password_matches(user, password) and user.must_change_password
    assert run(app, "user", "grant", "zhang_admin", "reviewer", "--region", "211302").exit_code == 0
    listed = run(app, "user", "list", "--role", "reviewer").output
    assert "zhang_admin\t张管理\t辽宁省" in listed and "审核人员（双塔区）" in listed
    assert run(app, "user", "revoke", "zhang_admin", "reviewer", "--region", "211302").exit_code == 0
    assert run(app, "user", "revoke", "zhang_admin", "reviewer", "--region", "211302").exit_code == 1
    assert run(app, "user", "disable", "zhang_admin").exit_code == 0
    assert "共 1 个账号" in run(app, "user", "list", "--disabled").output
    assert run(app, "user", "enable", "zhang_admin").exit_code == 0
    reset = run(app, "user", "reset-password", "zhang_admin").output
    db.session.expire_all()
    assert password_matches(user, re.search(r"：([A-Za-z0-9]+)$", reset.strip()).group(1))
    assert run(app, "user", "create", "zhang_admin", "--region", "210000").exit_code == 1  # taken
    assert run(app, "user", "create", "li", "--region", "999999").exit_code == 2
    assert run(app, "user", "disable", "nobody").exit_code == 1
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.actor_label == "cli")).all()
    assert {"user.create", "role.assign", "role.revoke", "user.disable", "user.enable", "user.reset_password"} <= set(actions)
