"""Staff accounts from the shell, for an operator bootstrapping a deployment before anyone can sign in on the web."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..extensions import db
from ..permissions import PermissionDenied, SystemActor
from ..vocabulary import STAFF_ROLES

# The operator at the shell holds every right: the command line is how the first administrator is made.
OPERATOR = SystemActor(label="cli")
ROLE = click.Choice(sorted(STAFF_ROLES))


def _region(code: str):
    from ..services.reference import region_by_code

    region = region_by_code(db.session, code.strip())
    if region is None:
        raise click.BadParameter(f"没有代码为“{code}”的地区（见 kjdms/data/regions.yaml）", param_hint="--region")
    return region


def _account(username: str):
    from ..services import staff

    try:
        return staff.find_account_by_name(db.session, staff.EVERYTHING, username)
    except staff.OutOfScope:
        raise click.ClickException(f"没有用户名为“{username}”的工作人员账号") from None


def _run(action):
    from ..validators import ValidationError

    try:
        return action()
    except (PermissionDenied, ValidationError) as error:
        raise click.ClickException(getattr(error, "message", str(error))) from None


@click.group("user")
def user_group():
    """管理工作人员账号和角色（新部署时创建第一个管理员）。"""


@user_group.command("create")
@click.argument("username")
@click.option("--region", "region_code", required=True, help="所属单位的地区代码，如 210000（省）、211302（双塔区）。")
@click.option("--role", type=ROLE, help="同时在该地区授予的角色。")
@click.option("--display-name", help="姓名（默认同用户名）。")
@click.option("--department", default="", help="科室。")
@click.option("--phone", default="", help="联系电话。")
@with_appcontext
def user_create(username, region_code, role, display_name, department, phone):
    """创建工作人员账号，显示一次性初始密码（首次登录须修改）。"""
    from ..services import staff

    user, password = _run(lambda: staff.create_account(
        db.session, OPERATOR, username=username, display_name=display_name or username, region=_region(region_code),
        department=department, phone=phone, role=role))
    click.echo(f"已创建 {user.username}（{user.region.path_name}）" + (f"，角色：{STAFF_ROLES[role]}" if role else ""))
    click.echo(f"一次性初始密码（只显示这一次）：{password}")
    click.echo("首次登录 /login 的“工作人员”页后须设置自己的密码。")


def _change_role(username: str, role: str, region_code: str, give: bool) -> None:
    from ..services import staff

    user, region = _account(username), _region(region_code)
    change = staff.grant_role if give else staff.revoke_role
    try:
        _run(lambda: change(db.session, OPERATOR, user, role, region))
    except staff.OutOfScope:
        raise click.ClickException(f"{username} 在 {region.name} 没有{STAFF_ROLES[role]}角色") from None
    click.echo(f"已{'授予' if give else '取消'} {username}：{STAFF_ROLES[role]}（{region.path_name}）")


@user_group.command("grant")
@click.argument("username")
@click.argument("role", type=ROLE)
@click.option("--region", "region_code", required=True, help="授予角色的地区代码（含下级地区）。")
@with_appcontext
def user_grant(username, role, region_code):
    """在地区上授予角色（该地区及其下级）。"""
    _change_role(username, role, region_code, give=True)


@user_group.command("revoke")
@click.argument("username")
@click.argument("role", type=ROLE)
@click.option("--region", "region_code", required=True, help="取消角色的地区代码。")
@with_appcontext
def user_revoke(username, role, region_code):
    """取消在地区上的角色；该账号的全部登录立即失效。"""
    _change_role(username, role, region_code, give=False)


def _set_active(username: str, active: bool) -> None:
    from ..services import staff

    user = _account(username)
    _run(lambda: staff.set_active(db.session, OPERATOR, user, active))
    click.echo(f"{username} 已{'启用' if active else '停用，全部登录已失效'}")


@user_group.command("disable")
@click.argument("username")
@with_appcontext
def user_disable(username):
    """停用账号，立即结束其全部登录。"""
    _set_active(username, False)


@user_group.command("enable")
@click.argument("username")
@with_appcontext
def user_enable(username):
    """重新启用账号。"""
    _set_active(username, True)


@user_group.command("reset-password")
@click.argument("username")
@with_appcontext
def user_reset_password(username):
    """重置密码：显示新的一次性密码，原有登录全部失效。"""
    from ..services import staff

    user = _account(username)
    password = _run(lambda: staff.reset_password(db.session, OPERATOR, user))
    click.echo(f"{username} 的一次性密码（只显示这一次）：{password}")


@user_group.command("list")
@click.option("--region", "region_code", help="只列出所属单位在此地区的账号。")
@click.option("--role", type=ROLE, help="只列出持有此角色的账号。")
@click.option("--disabled", is_flag=True, help="只列出已停用的账号。")
@with_appcontext
def user_list(region_code, role, disabled):
    """列出工作人员账号：用户名、姓名、所属单位、角色、状态、最近登录。"""
    from ..local_time import local_text
    from ..services import staff

    region = _region(region_code) if region_code else None
    accounts = staff.list_accounts(db.session, OPERATOR, region=region, role=role, active=False if disabled else None)
    for user in accounts:
        roles = "、".join(f"{STAFF_ROLES[a.role]}（{a.region.name}）" for a in user.role_assignments) or "—"
        click.echo("\t".join([user.username, user.display_name or "", user.region.path_name if user.region else "—",
                              roles, "已启用" if user.is_active else "已停用",
                              local_text(user.last_login_at) or "从未登录"]))
    click.echo(f"共 {len(accounts)} 个账号")


COMMANDS = (user_group,)
