"""Status lookups for the systems downstream (exam registration, continuing education, senior-title review).

The name and ID number travel in the body only (never in an address, which logs and proxies keep), and are
neither logged nor audited: the audit row names the client, its purpose and how many persons it asked about.
"""
from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..backends import get_config
from ..extensions import db
from ..names import name_problem, normalize_name
from ..services import api_rate, audit
from ..services.api_clients import ClientActor
from ..services.status_lookup import look_up
from ..validators import ValidationError, check_text, validate_id_number
from . import BEARER, bp, responses, spec
from .auth import caller, client_required
from .errors import ApiError, FieldError

MAX_BATCH = 1000


def _detail(error: ValidationError) -> str:
    # The label is added by the API's messages from the field's path (api/validation.py).
    return error.message.split("：", 1)[-1]


class PersonQuery(BaseModel):
    """Whom to look up: the name and ID number as on the ID card; both must match."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="姓名（与身份证一致）", examples=["张伟"])
    id_number: str = Field(min_length=1, max_length=32, description="18位居民身份证号码", examples=["211302199001010017"])

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            check_text("name", "姓名", value)
        except ValidationError as error:
            raise ValueError(_detail(error)) from None
        name = normalize_name(value)
        problem = name_problem(name)
        if problem:
            raise ValueError(problem)
        return name

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str) -> str:
        try:
            return validate_id_number(value)
        except ValidationError as error:
            raise ValueError(_detail(error)) from None


class BatchQuery(BaseModel):
    """Up to 1,000 persons at once; the answers come back in the same order."""

    model_config = ConfigDict(extra="forbid")

    persons: list[PersonQuery] = Field(min_length=1, max_length=MAX_BATCH, description="至多1000人")


class PersonStatus(BaseModel):
    """What kjdms tells about one person: nothing at all unless name and ID number match within the client's regions."""

    found: bool = Field(description="姓名与身份证号均相符、且在本系统可查询的地区内；否则为 false，其余各项为空")
    collected: bool = Field(description="信息已采集并经财政部门审核确认（状态为 approved）")
    state: str | None = Field(description="档案状态：draft 填报中、submitted 待审核、approved 已审核确认、"
                                          "rejected 已退回、archived 已归档、purged 已删除")
    region_code: str | None = Field(description="归属地区代码")
    region_name: str | None = Field(description="归属地区名称")
    qualification_level: Literal["none", "junior", "intermediate", "senior", "principal"] | None = Field(
        description="会计专业技术资格：none 无、junior 初级、intermediate 中级、senior 高级、principal 正高级")
    last_approved_on: date | None = Field(description="最近一次审核确认的日期（北京时间）")
    live_credit_finding: bool | None = Field(description="信用档案中是否有有效记录；仅对获准查看的系统给出，其他为 null")
    legacy_confirmation: Literal["not_legacy", "pending", "confirmed"] | None = Field(
        description="原系统人员的更新确认：not_legacy 非原系统人员、pending 尚未更新确认、confirmed 已更新确认")


class BatchStatus(BaseModel):
    """The answers to a batch, in the order asked."""

    results: list[PersonStatus]


def _answer(queries: list[PersonQuery]) -> list[PersonStatus]:
    client = caller().client
    if len(queries) > client.rate_per_minute:  # no wait would make room: say so, not "try again later"
        message = (f"一次查询的人数（{len(queries)}）超过本客户端每分钟的查询上限（{client.rate_per_minute} 人），"
                   "请分批查询。")
        raise ApiError(422, message=message, errors=[FieldError(field="persons", message=message)])
    wait = api_rate.take(db.session, client, len(queries))
    if wait is not None:
        raise ApiError(429, message=f"请求过于频繁：每分钟至多查询 {client.rate_per_minute} 人，请 {wait} 秒后再试。",
                       headers={"Retry-After": str(wait)})
    statuses = look_up(db.session, client, [(query.name, query.id_number) for query in queries],
                       id_hash_key=get_config().ID_HASH_KEY)
    audit.record(db.session, ClientActor(client.label), "api_status_lookup", "api_client", client.id,
                 purpose=client.purpose, persons=len(queries), found=sum(status.found for status in statuses))
    db.session.commit()
    return [PersonStatus(**status.__dict__) for status in statuses]


@bp.post("/status-lookups")
@client_required
@spec.validate(json=PersonQuery, resp=responses(PersonStatus, 400, 422), tags=["downstream"],
               security=[{BEARER: []}])
def status_lookup(json: PersonQuery):
    """查询一人的采集状态（姓名和身份证号放在请求体中，不放在地址里）。"""
    return _answer([json])[0]


@bp.post("/status-lookups/batch")
@client_required
@spec.validate(json=BatchQuery, resp=responses(BatchStatus, 400, 413, 422), tags=["downstream"],
               security=[{BEARER: []}])
def status_lookup_batch(json: BatchQuery):
    """批量查询至多1000人的采集状态，按请求顺序返回。"""
    return BatchStatus(results=_answer(json.persons))
