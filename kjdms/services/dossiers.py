"""Register persons and change their basic information, with every field validated first."""
from __future__ import annotations

import datetime
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..documents.base import unprintable
from ..models import Dossier, Person, Region, User
from ..names import name_problem, normalize_name
from ..permissions import Actor, require
from ..validators import (ValidationError, ValidationErrors, check_sex_and_birth_date, check_text,
                          id_number_birth_date, id_number_sex, validate_id_number,
                          validate_org_code, validate_phone, validate_uscc)
from ..vocabulary import (ATTACHMENT_SLOTS, DOSSIER_LABELS, DRAFT_STATE, EDUCATION_LEVELS, JOB_TYPES, QUALIFICATION_LEVELS,
                          SCOPE_CATEGORIES)
from ..workflow import WorkflowEngine
from . import audit
from .transaction import committing

# The dossier's own fields (the name and ID number belong to the person), as a working copy carries them.
DOSSIER_FIELDS = (
    "phone", "education", "scope_category", "job_types", "employer_name", "employer_uscc",
    "employer_org_code", "employer_region_id", "household_region_id", "is_student", "school_region_id",
    "qualification_level", "qualification_certificate_number", "legacy_certificate_number", "region_id",
    "job_started_on", "information_changed_on",
)
DATE_FIELDS = ("job_started_on", "information_changed_on")
EDITABLE_FIELDS = tuple(field for field in DOSSIER_LABELS if field not in ("id_number", "sex", "birth_date"))
REGION_FIELDS = ("employer_region", "household_region", "school_region")

_CERTIFICATE = re.compile(r"[0-9A-Za-z\-]{4,32}")
DUPLICATE_MESSAGE = "身份证号：该身份证号已登记，请直接登录"
DALIAN_MESSAGE = "大连地区会计人员的信息采集按大连市财政局相关要求执行（辽财会〔2019〕116号 二（五）），请向大连市财政局咨询"


def _fail(field: str, detail: str) -> ValidationError:
    return ValidationError(field, f"{DOSSIER_LABELS[field]}：{detail}")


def validate_name(value) -> str:
    """Return the cleaned name or raise a ValidationError naming 姓名."""
    name = normalize_name(value)
    if not name:
        raise _fail("name", "必填")
    problem = name_problem(name)
    if problem:
        raise _fail("name", problem)
    # Accepted means printed: the form the person signs must show every character of the name.
    missing = unprintable(name)
    if missing:
        raise _fail("name", f"“{'、'.join(missing)}”字尚无可打印的字形，基本信息表无法打印，请联系归属地区财政部门")
    return name


def _choice(field: str, value, choices: dict) -> str | None:
    if value in (None, ""):
        return None
    if value not in choices:
        raise _fail(field, f"“{value}”不是可选项")
    return value


def _region(session, field: str, code) -> Region | None:
    if code in (None, ""):
        return None
    region = code if isinstance(code, Region) else session.scalar(select(Region).where(Region.code == str(code)))
    if region is None:
        raise _fail(field, f"没有代码为“{code}”的地区")
    if region.children:
        raise _fail(field, f"请选择到{region.name}下属的县（市、区）或市本级")
    return region


def _text(field: str, value, limit: int) -> str | None:
    text = str(value or "").strip()
    if len(text) > limit:
        raise _fail(field, f"不能超过{limit}个字")
    return text or None


def _certificate(field: str, value) -> str | None:
    text = str(value or "").strip().upper()
    if text and not _CERTIFICATE.fullmatch(text):
        raise _fail(field, "应为4至32位数字或字母")
    return text or None


def _date(field: str, value, birth_date: datetime.date | None) -> datetime.date | None:
    """Return value as a date no later than today and not before birth_date, or raise naming field."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime.datetime):
        value = value.date()
    if not isinstance(value, datetime.date):
        text = str(value).strip()
        digits = re.sub(r"[-/.年月日]", "-", text).strip("-")
        try:
            value = (datetime.datetime.strptime(digits, "%Y%m%d").date() if digits.isdigit()
                     else datetime.date(*map(int, digits.split("-"))))
        except (ValueError, TypeError):
            raise _fail(field, f"“{text}”不是有效日期，应为 年-月-日，如 2019-04-15") from None
    if value > datetime.date.today():
        raise _fail(field, f"{value.isoformat()} 晚于今天")
    if birth_date is not None and value < birth_date:
        raise _fail(field, f"{value.isoformat()} 早于出生日期")
    return value


def _clean_field(session, field: str, value, birth_date: datetime.date | None = None):
    """Return value cleaned for field, or raise a ValidationError naming it."""
    for text in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(text, str):
            check_text(field, DOSSIER_LABELS[field], text)
    if field in DATE_FIELDS:
        return _date(field, value, birth_date)
    if field == "name":
        return validate_name(value)
    if field == "phone":
        return validate_phone(value) if value else None
    if field == "education":
        return _choice(field, value, EDUCATION_LEVELS)
    if field == "scope_category":
        return _choice(field, value, SCOPE_CATEGORIES)
    if field == "qualification_level":
        return _choice(field, value, QUALIFICATION_LEVELS) or "none"
    if field == "job_types":
        values = [value] if isinstance(value, str) else list(value or [])
        for job in values:
            _choice(field, job, JOB_TYPES)
        return [job for job in JOB_TYPES if job in values]  # canonical order, no repeats
    if field == "employer_name":
        return _text(field, value, 128)
    if field == "employer_uscc":
        return validate_uscc(value) if value else None
    if field == "employer_org_code":
        return validate_org_code(value) if value else None
    if field in REGION_FIELDS:
        return _region(session, field, value)
    if field == "is_student":
        return value in (True, "1", "true", "on", "y", "yes")
    return _certificate(field, value)


def clean_fields(session, values: dict, *, birth_date: datetime.date | None = None) -> dict:
    """Validate every given field at once; raise ValidationErrors listing all failures.

    birth_date, when known, is the earliest date the time-rule dates may hold.
    """
    cleaned, errors = {}, []
    for field, value in values.items():
        if field not in EDITABLE_FIELDS:
            errors.append(ValidationError(field, f"“{field}”不是可修改的字段"))
            continue
        try:
            cleaned[field] = _clean_field(session, field, value, birth_date)
        except ValidationError as error:
            errors.append(error)
    if not errors:
        uscc, org_code = cleaned.get("employer_uscc"), cleaned.get("employer_org_code")
        # GB 32100: characters 9-17 of a USCC are the organisation code; the two must agree.
        if uscc and org_code and uscc[8:17] != org_code:
            errors.append(_fail("employer_org_code", "与统一社会信用代码第9至17位不一致"))
    if errors:
        raise ValidationErrors(errors)
    return cleaned


def collecting_region(dossier: Dossier) -> Region | None:
    """Apply the territorial rule (二（四）): school for students, else employer, else household."""
    if dossier.is_student:
        return dossier.school_region
    return dossier.employer_region or dossier.household_region


def _apply(dossier: Dossier, cleaned: dict):
    for field, value in cleaned.items():
        if field == "name":
            dossier.person.name = value
        else:
            setattr(dossier, field, value)
    # A new USCC carries its own organisation code: keeping the old one would contradict it.
    if dossier.employer_uscc and not cleaned.get("employer_org_code") and (
            "employer_uscc" in cleaned or not dossier.employer_org_code):
        dossier.employer_org_code = dossier.employer_uscc[8:17]
    # clean_fields compares the two only when both change; an update may change one of them.
    uscc, org_code = dossier.employer_uscc, dossier.employer_org_code
    if uscc and org_code and uscc[8:17] != org_code:
        raise ValidationErrors([_fail("employer_org_code", "与统一社会信用代码第9至17位不一致")])
    region = collecting_region(dossier)
    if region is not None and any(r.collected_elsewhere for r in region.ancestors_and_self()):
        deciding = "school_region" if dossier.is_student else (
            "employer_region" if dossier.employer_region else "household_region")
        raise ValidationErrors([ValidationError(deciding, f"{DOSSIER_LABELS[deciding]}：{DALIAN_MESSAGE}")])
    dossier.region = region


def register_person(session, *, name, id_number, actor: Actor | None = None, sex=None, birth_date=None,
                    is_legacy=False, to_confirm=False, password_hash: str | None = None, **fields) -> Dossier:
    """Create a person, their account and their draft dossier; save nothing when a field is bad.

    The account has no password until one is set: a legacy person sets it at first sign-in.
    """
    id_number, cleaned = _registration(session, name, id_number, sex, birth_date, fields)
    person = Person(id_number=id_number, sex=id_number_sex(id_number),
                    birth_date=id_number_birth_date(id_number), is_legacy=is_legacy)
    person.user = User(password_hash=password_hash)
    dossier = Dossier(person=person, state=DRAFT_STATE, to_confirm=to_confirm, job_types=[])
    try:
        with committing(session):
            _apply(dossier, cleaned)
            session.add(dossier)
            session.flush()
            audit.record(session, actor or person.user, "dossier.register", "dossier", dossier.id, legacy=is_legacy)
    except IntegrityError as error:
        # Two registrations of one ID number at once: the unique constraint lets one through.
        raise ValidationErrors([ValidationError("id_number", DUPLICATE_MESSAGE)]) from error
    return dossier


def registration_errors(session, *, name, id_number, registry: bool = True) -> list[ValidationError]:
    """Return every reason the name and ID number cannot be registered (none: they can), saving nothing.

    With registry False, only their form is checked, not whether the ID number is registered already.
    """
    try:
        _registration(session, name, id_number, None, None, {}, registry=registry)
    except ValidationErrors as failure:
        return failure.errors
    return []


def _registration(session, name, id_number, sex, birth_date, fields: dict, registry: bool = True) -> tuple[str, dict]:
    """Return the normalised ID number and the cleaned fields; raise ValidationErrors listing every failure."""
    errors = []
    try:
        id_number = validate_id_number(id_number)
        check_sex_and_birth_date(id_number, sex=sex or None, birth_date=birth_date or None)
    except ValidationError as error:
        errors.append(error)
    cleaned = {}
    try:
        born = id_number_birth_date(id_number) if not errors else None
        cleaned = clean_fields(session, {"name": name, **fields}, birth_date=born)
    except ValidationErrors as failure:
        errors.extend(failure.errors)
    if registry and not errors and session.scalar(select(Person.id).where(Person.id_number == id_number)):
        errors.append(ValidationError("id_number", DUPLICATE_MESSAGE))
    if errors:
        raise ValidationErrors(errors)
    return id_number, cleaned


def update_basic_information(session, workflow: WorkflowEngine, dossier: Dossier,
                             changes: dict, actor: Actor) -> list[str]:
    """Change fields of dossier if its state lets actor edit; return the names of the fields changed."""
    require(workflow, actor, "edit", dossier)
    cleaned = clean_fields(session, _derived_code_follows(dossier, changes), birth_date=dossier.person.birth_date)
    changed = [field for field, value in cleaned.items() if _current(dossier, field) != value]
    if not changed:
        return []
    with committing(session):
        _apply(dossier, {field: cleaned[field] for field in changed})
        # Field names only: the audit trail must not become a second copy of personal data.
        audit.record(session, actor, "dossier.update", "dossier", dossier.id, fields=changed)
    return changed


def _derived_code_follows(dossier: Dossier, changes: dict) -> dict:
    """Drop an organisation code that was derived from the USCC being replaced: the new USCC derives its own."""
    old_uscc, old_code = dossier.employer_uscc, dossier.employer_org_code
    new_uscc, typed_code = changes.get("employer_uscc"), changes.get("employer_org_code")
    if not (old_uscc and old_code == old_uscc[8:17] and new_uscc and typed_code):
        return changes
    # The edit page sends the stored code back as it was shown; unchanged, it is still the old USCC's.
    if str(typed_code).upper().replace("-", "").strip() != old_code or _uscc_or_none(new_uscc) == old_uscc:
        return changes
    return {**changes, "employer_org_code": ""}


def _uscc_or_none(value) -> str | None:
    """Return the normalised USCC, or None when it is not one (clean_fields then names the mistake)."""
    try:
        return validate_uscc(value)
    except ValidationError:
        return None


def _current(dossier: Dossier, field: str):
    return dossier.person.name if field == "name" else getattr(dossier, field)


def required_slots(dossier: Dossier) -> list[str]:
    """Return the attachment slots this dossier must fill before it is submitted (二（二）)."""
    slots = ["basic_info_form", "education_certificate"]
    if dossier.employer_name or dossier.scope_category == "in_accounting_work":
        slots.insert(1, "employer_certificate")
    if dossier.qualification_level not in (None, "none"):
        slots.append("qualification_certificate")
    return slots


def missing_items(dossier: Dossier) -> list[str]:
    """Return, in Chinese, what still keeps the dossier from being submitted."""
    missing = [DOSSIER_LABELS[field] for field in ("phone", "education", "scope_category")
               if not getattr(dossier, field)]
    if not dossier.person.name:
        missing.insert(0, DOSSIER_LABELS["name"])
    if dossier.scope_category == "in_accounting_work":
        if not dossier.employer_name:
            missing.append(DOSSIER_LABELS["employer_name"])
        if not (dossier.employer_uscc or dossier.employer_org_code):
            missing.append("统一社会信用代码或组织机构代码")
        if not dossier.employer_region:
            missing.append(DOSSIER_LABELS["employer_region"])
        if not dossier.job_types:
            missing.append(DOSSIER_LABELS["job_types"])
    if dossier.scope_category == "qualified_not_working" and dossier.qualification_level in (None, "none"):
        missing.append(DOSSIER_LABELS["qualification_level"])
    if dossier.qualification_level not in (None, "none") and not dossier.qualification_certificate_number:
        missing.append(DOSSIER_LABELS["qualification_certificate_number"])
    if dossier.is_student and not dossier.school_region:
        missing.append(DOSSIER_LABELS["school_region"])
    if dossier.region is None and not any(label in missing for label in
                                          (DOSSIER_LABELS["employer_region"], DOSSIER_LABELS["school_region"])):
        missing.append("归属地区（工作单位、学籍或户籍所在地区）")
    for slot in required_slots(dossier):
        attachment = dossier.attachment(slot)
        if attachment is None or attachment.current is None:
            missing.append(ATTACHMENT_SLOTS[slot].title)
    if dossier.is_working_copy and _needs_new_signed_form(dossier):
        missing.append("按变更后信息重新打印、签字盖章的基本信息表")
    return missing


def _needs_new_signed_form(copy: Dossier) -> bool:
    """Tell whether a working copy changes fields but still carries the form signed for the old ones."""
    baseline = copy.baseline
    if all(getattr(copy, field) == getattr(baseline, field) for field in DOSSIER_FIELDS):
        return False
    new, old = copy.attachment("basic_info_form"), baseline.attachment("basic_info_form")
    return bool(new and new.current and old and old.current and new.current.sha256 == old.current.sha256)


def dossier_is_complete(dossier: Dossier) -> str | None:
    """Workflow condition 'complete': None when submittable, else what is missing."""
    missing = missing_items(dossier)
    return f"尚不能提交，还缺少：{'、'.join(missing)}" if missing else None
