"""The region tree and each finance office's consultation contact, as the province administrator edits them."""
from __future__ import annotations

from sqlalchemy import exists, or_, select

from ..models import CreditRecord, Dossier, Region, RoleAssignment, User, api_client_regions, utcnow
from ..permissions import PermissionDenied
from ..validators import ValidationError
from . import audit
from .staff import is_province_administrator
from .transaction import committing

KINDS = {"province": "省", "city": "市", "office": "县（市、区）", "special": "其他单位"}
# What the back office may change, with the limits of the columns.
FIELDS = {"name": 64, "office_name": 64, "phone": 32, "address": 128, "hours": 64}


def _require_province(actor) -> None:
    if not is_province_administrator(actor):
        raise PermissionDenied("只有省级系统管理员可以修改地区和咨询电话")


def _clean(values: dict) -> dict:
    cleaned = {}
    for field, limit in FIELDS.items():
        if field in values:
            text = (values[field] or "").strip()
            if len(text) > limit:
                raise ValidationError(field, f"不能超过{limit}个字符")
            cleaned[field] = text or None
    if "name" in cleaned and not cleaned["name"]:
        raise ValidationError("name", "名称：必填")
    for field in ("sort_order", "collected_elsewhere", "kind"):
        if field in values:
            cleaned[field] = values[field]
    if "kind" in cleaned and cleaned["kind"] not in KINDS:
        raise ValidationError("kind", "级别：请选择")
    return cleaned


def _value(value):
    return value.code if isinstance(value, Region) else value


def add_region(session, actor, *, code: str, parent: Region | None, **values) -> Region:
    """Add a region under parent (code unique, like GB/T 2260's six digits), audited."""
    _require_province(actor)
    code = (code or "").strip()
    if not code or len(code) > 32:
        raise ValidationError("code", "代码：必填，不超过32个字符")
    cleaned = _clean({"kind": "office", "sort_order": 0, "collected_elsewhere": False, **values})
    with committing(session):
        if session.scalar(select(exists().where(Region.code == code))):
            raise ValidationError("code", "代码：已有此代码的地区")
        region = Region(code=code, parent=parent, edited_at=utcnow(), **cleaned)
        session.add(region)
        session.flush()
        audit.record(session, actor, "region.create", "region", region.id, code=code,
                     parent=parent.code if parent else None)
    return region


def _would_cycle(region: Region, parent: Region | None) -> bool:
    return parent is not None and region in parent.ancestors_and_self()


def update_region(session, actor, region: Region, **values) -> list[str]:
    """Change region's fields (a move is a change of parent), auditing each old and new value; return the fields changed."""
    _require_province(actor)
    cleaned = _clean(values)
    if "parent" in values:
        if _would_cycle(region, values["parent"]):
            raise ValidationError("parent", "上级地区：不能是它自己或它的下级")
        cleaned["parent"] = values["parent"]
    changes = {field: {"old": _value(getattr(region, field)), "new": _value(value)}
               for field, value in cleaned.items() if getattr(region, field) != value}
    if not changes:
        return []
    with committing(session):
        for field, value in cleaned.items():
            setattr(region, field, value)
        region.edited_at = utcnow()
        audit.record(session, actor, "region.update", "region", region.id, code=region.code, changes=changes)
    return sorted(changes)


def delete_region(session, actor, region: Region) -> None:
    """Delete an empty region; one with dossiers, staff or regions below it is refused (nothing is orphaned)."""
    _require_province(actor)
    used = session.scalar(select(exists().where(or_(
        Dossier.region_id == region.id, Dossier.employer_region_id == region.id,
        Dossier.household_region_id == region.id, Dossier.school_region_id == region.id)))) or session.scalar(
        select(exists().where(CreditRecord.office_region_id == region.id))) or session.scalar(
        select(exists().where(api_client_regions.c.region_id == region.id)))
    staffed = session.scalar(select(exists().where(User.region_id == region.id))) or session.scalar(
        select(exists().where(RoleAssignment.region_id == region.id)))
    if region.children or used or staffed:
        raise ValidationError("region", "该地区下有下级地区、档案、工作人员或可查询它的接口客户端，不能删除（可以改名或移动）")
    with committing(session):
        audit.record(session, actor, "region.delete", "region", region.id, code=region.code, name=region.name)
        session.delete(region)


def contact_office(region: Region | None) -> Region | None:
    """Return the nearest finance office at or above region that publishes a consultation phone."""
    return next((r for r in (region.ancestors_and_self() if region else []) if r.phone), None)


def contact_offices(session) -> list[Region]:
    """Return every finance office in tree order (cities, then the offices under each), for /contacts."""
    regions = session.scalars(select(Region)).all()
    children: dict[int | None, list[Region]] = {}
    for region in regions:
        children.setdefault(region.parent_id, []).append(region)
    ordered: list[Region] = []

    def visit(parent_id):
        for region in sorted(children.get(parent_id, []), key=lambda r: (r.sort_order, r.code)):
            ordered.append(region)
            visit(region.id)

    visit(None)
    return ordered
