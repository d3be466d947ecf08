"""Who the API takes the caller for, and staff tokens for scripts, issued to a signed-in staff session."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from flask import current_app
from pydantic import BaseModel, Field

from ..backends import get_config
from ..extensions import db
from ..models import utcnow
from ..services import audit
from ..services.api_tokens import issue_token
from . import BEARER, SESSION, bp, responses, spec
from .auth import caller, staff_required, unauthenticated
from .errors import ApiError


class Me(BaseModel):
    """The caller as the API sees it: a downstream system or a staff user, never more than its own labels."""

    kind: Literal["client", "staff"] = Field(description="client：下游系统；staff：工作人员")
    name: str = Field(description="下游系统的名称，或工作人员的用户名")
    regions: list[str] = Field(description="可查询或管辖的地区代码")
    expires_at: datetime | None = Field(default=None, description="API 密钥的到期时间（仅下游系统）")


class StaffToken(BaseModel):
    """A staff token: send it as `Authorization: Bearer <token>`; it ends when the user's sessions end."""

    token: str = Field(description="以 kjs_ 开头的令牌，只显示这一次")
    expires_at: datetime = Field(description="最迟失效时间（修改密码、停用账号或撤销角色时立即失效）")


@bp.get("/me")
@spec.validate(resp=responses(Me), tags=["session"], security=[{BEARER: []}, {SESSION: []}])
def me():
    """Tell the caller who the API takes them for."""
    who = caller()
    if who is None:
        raise unauthenticated()
    if who.client is not None:
        return Me(kind="client", name=who.client.name, regions=[region.code for region in who.client.regions],
                  expires_at=who.client.expires_at)
    if who.user.is_applicant:
        raise ApiError(403, message="此接口仅供下游系统和工作人员调用。")
    regions = sorted({assignment.region.code for assignment in who.user.role_assignments})
    return Me(kind="staff", name=who.user.username, regions=regions)


@bp.post("/staff-tokens")
@staff_required
@spec.validate(resp=responses(StaffToken, 400, status=201), tags=["session"], security=[{SESSION: []}])
def create_staff_token():
    """Issue a token for scripts to a staff user signed in on the site (the session's CSRF token required)."""
    who = caller()
    if who.by_token:
        raise ApiError(403, message="令牌只能由登录网站的工作人员申请，不能以令牌换取令牌。")
    token = issue_token(current_app.secret_key, who.user)
    audit.record(db.session, who.user, "api_token_issued", "user", who.user.id)
    db.session.commit()
    lifetime: timedelta = get_config().STAFF_SESSION_LIFETIME
    return StaffToken(token=token, expires_at=utcnow() + lifetime), 201
