"""Show dossier values to people: Chinese labels for codes, and ID numbers masked by default."""
from __future__ import annotations

from datetime import date

from .models import Dossier, Region
from .vocabulary import EDUCATION_LEVELS, JOB_TYPES, QUALIFICATION_LEVELS, SCOPE_CATEGORIES, SEXES

_PERSON_FIELDS = ("name", "id_number", "sex", "birth_date")
_CHOICES = {
    "sex": SEXES,
    "education": EDUCATION_LEVELS,
    "scope_category": SCOPE_CATEGORIES,
    "qualification_level": QUALIFICATION_LEVELS,
}


def field_value(dossier: Dossier, field: str) -> str:
    """Return field of dossier (or of its person) as the Chinese text the form prints."""
    owner = dossier.person if field in _PERSON_FIELDS else dossier
    value = getattr(owner, field)
    if value is None or value == "" or value == []:
        return "—"  # a dash, not a blank that a pen could fill in after the form is signed
    if field in _CHOICES:
        return _CHOICES[field].get(value, value)
    if field == "job_types":
        return "、".join(JOB_TYPES.get(job, job) for job in value)
    if isinstance(value, Region):
        return value.path_name
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, date):
        return f"{value.year}年{value.month}月{value.day}日"
    return str(value)


def mask_id_number(id_number: str | None) -> str:
    """Return the ID number with all but its first four and last four characters hidden."""
    if not id_number:
        return "—"
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]
