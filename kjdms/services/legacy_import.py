"""Import the old provincial system's records (二（三）) as persons with draft dossiers marked to confirm."""
from __future__ import annotations

import csv
import datetime
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from ..models import AuditEvent, Dossier, LegacyImport, Person, Region, User, utcnow
from ..validators import ValidationError, ValidationErrors, check_sex_and_birth_date, validate_id_number
from ..vocabulary import DRAFT_STATE, EDUCATION_LEVELS, QUALIFICATION_LEVELS, SEXES
from . import audit_chain
from .change_tracking import enqueue, leave_outbox_to_worker
from .dossiers import DALIAN_MESSAGE, clean_fields

CHUNK_ROWS = 1000
ACTOR_LABEL = "system:import-legacy"
# Every file must carry these columns, spelled exactly so (values may be empty unless noted in the README).
REQUIRED_COLUMNS = ("姓名", "身份证号", "性别", "出生日期", "工作单位", "统一社会信用代码", "所在地区代码",
                    "学历", "会计专业技术资格", "原会计从业资格证号", "联系电话")
OPTIONAL_COLUMNS = ("组织机构代码", "资格证书编号", "从事会计工作日期")
WHOLE_ROW = "（整行）"
# The dossier field a validator names → the column the report names.
FIELD_COLUMNS = {
    "name": "姓名", "id_number": "身份证号", "sex": "性别", "birth_date": "出生日期", "phone": "联系电话",
    "education": "学历", "employer_name": "工作单位", "employer_uscc": "统一社会信用代码",
    "employer_org_code": "组织机构代码", "employer_region": "所在地区代码", "household_region": "所在地区代码",
    "qualification_level": "会计专业技术资格", "qualification_certificate_number": "资格证书编号",
    "legacy_certificate_number": "原会计从业资格证号", "job_started_on": "从事会计工作日期",
}
# The old system's wordings, besides the labels the platform itself shows.
EDUCATION_ALIASES = {**{label: code for code, label in EDUCATION_LEVELS.items()},
                     "博士": "doctorate", "研究生": "master", "硕士": "master", "本科": "bachelor",
                     "大专": "college", "专科": "college", "中专": "secondary_vocational", "职高": "secondary_vocational",
                     "技校": "secondary_vocational", "高中": "high_school_or_below", "初中": "high_school_or_below"}
QUALIFICATION_ALIASES = {**{label: code for code, label in QUALIFICATION_LEVELS.items()},
                         "": "none", "会计员": "junior", "助理会计师": "junior", "初级会计师": "junior",
                         "会计师": "intermediate", "中级会计师": "intermediate", "高级会计师": "senior",
                         "正高级会计师": "principal"}
REPORT_HEADER = ("行号", "字段", "原因")


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, or its header is wrong); nothing was written."""


@dataclass
class Refusal:
    """One reason a row was refused: row number as a spreadsheet shows it (the header is row 1)."""

    line: int
    column: str
    reason: str


@dataclass
class ImportResult:
    """What a run did, and where it left its report."""

    run_id: int
    rows_total: int
    imported: int
    unchanged: int
    refused: int
    resumed_after: int
    refusals: list[Refusal] = field(default_factory=list)


# -- reading the file ------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    """Return the sha256 of the file's bytes: a run resumes only over the very same file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode(data: bytes) -> str:
    """Decode CSV bytes: UTF-8 (with or without BOM), else GB18030, what old Chinese systems export."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError as error:
            raise ImportFileError(f"文件编码无法识别（应为 UTF-8 或 GB18030）：第 {error.start} 字节起") from None


class TruncatedNumber(str):
    """A cell holding a number of 16 or more digits: spreadsheets keep 15 significant digits, the rest are lost."""


NUMBER_TRUNCATED = "以数值格式保存，超过15位的数字已丢失末尾几位：请把该列设为文本格式后重新导出"


def _cell(value) -> str | datetime.date:
    """Return a cell as text, or as a date when the spreadsheet holds one."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, float) and value.is_integer():
        # A number typed into a text column (a phone number); an ID number stored as one has lost digits.
        return str(int(value)) if abs(value) < 1e15 else TruncatedNumber(f"{value:.0f}")
    return str(value).strip()


def read_table(path: Path) -> tuple[list[str], int, Iterator[list]]:
    """Return the header, the number of data rows and an iterator over the data rows of a CSV or XLSX file."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return _read_xlsx(path)
    if suffix in (".csv", ".txt"):
        text = _decode(path.read_bytes())
        # Lines, not records: only the progress bar reads it, and a quoted line break is rare.
        total = text.count("\n") - (1 if text.endswith("\n") else 0)
        rows = csv.reader(io.StringIO(text))
        header = next(rows, None)
        if header is None:
            raise ImportFileError("文件为空：第1行应为列名")
        return [name.strip() for name in header], max(total, 0), ([value.strip() for value in row] for row in rows)
    raise ImportFileError(f"不支持的文件类型“{path.suffix}”：请使用 .csv 或 .xlsx")


def _read_xlsx(path: Path):
    from python_calamine import CalamineError, CalamineWorkbook, SheetTypeEnum

    # calamine (Rust) decodes the sheet 15-20 times faster than openpyxl (bench/legacy_import.py); it
    # holds the decoded sheet in memory, about as much as the CSV path holds the file's text.
    try:
        workbook = CalamineWorkbook.from_path(str(path))
        first = next((index for index, sheet in enumerate(workbook.sheets_metadata)
                      if sheet.typ == SheetTypeEnum.WorkSheet), None)
        if first is None:
            raise ImportFileError("无法读取 Excel 文件：没有工作表")
        sheet = workbook.get_sheet_by_index(first)
    except (CalamineError, OSError, ValueError) as error:
        raise ImportFileError(f"无法读取 Excel 文件：{error}") from None
    rows = sheet.iter_rows()
    header = next(rows, None)
    if header is None:
        workbook.close()
        raise ImportFileError("工作表为空：第1行应为列名")

    def data_rows():
        try:
            for row in rows:
                yield [_cell(value) for value in row]
        finally:
            workbook.close()
    # iter_rows starts at row 1 however many rows are blank above the data; end is the last row's index.
    total = sheet.end[0] if sheet.end else 0
    return [_cell(name) for name in header], total, data_rows()


def check_header(header: list[str]) -> list[str]:
    """Return the column names in order, or raise ImportFileError naming the missing and unknown columns."""
    names = [str(name) for name in header]
    while names and names[-1] == "":
        names.pop()  # spreadsheets often carry empty trailing columns
    problems = []
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        problems.append("缺少列：" + "、".join(missing))
    unknown = [name or f"第{index + 1}列（无列名）" for index, name in enumerate(names)
               if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        problems.append("无法识别的列：" + "、".join(unknown))
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        problems.append("重复的列：" + "、".join(repeated))
    if problems:
        raise ImportFileError("；".join(problems) + "。列名须与说明文档完全一致。")
    return names


# -- checking one row ------------------------------------------------------------------------

@dataclass
class RegionInfo:
    """What a row needs of a region, read once (the session's objects expire at every chunk's commit)."""

    region: Region
    collected_elsewhere: bool


def load_regions(engine) -> dict[str, RegionInfo]:
    """Return every region by code, with its parent and children loaded, detached from any session."""
    with Session(engine) as session:
        regions = session.scalars(select(Region).options(
            selectinload(Region.children), selectinload(Region.parent))).all()
        found = {region.code: RegionInfo(region, any(node.collected_elsewhere for node in region.ancestors_and_self()))
                 for region in regions}
        session.expunge_all()
    return found


@dataclass
class GoodRow:
    """A row that passed every check: the values to write."""

    data_row: int
    id_number: str
    person: dict
    dossier: dict


def _refusals(line: int, errors) -> list[Refusal]:
    return [Refusal(line, FIELD_COLUMNS.get(error.field, error.field), error.message) for error in errors]


class RowChecker:
    """Checks rows against the registration validators, remembering what repeats from row to row."""

    def __init__(self, session, columns: list[str], regions: dict[str, RegionInfo]):
        self.session, self.columns, self.regions = session, columns, regions
        self.seen: dict[str, int] = {}
        # Employers and regions repeat across thousands of rows: check each combination once.
        self._places: dict[tuple, dict | ValidationErrors] = {}

    def place(self, fields: dict) -> dict:
        """Return the employer and region fields cleaned by clean_fields, or raise its ValidationErrors."""
        key = tuple(fields.items())
        if key not in self._places:
            try:
                self._places[key] = clean_fields(self.session, fields)
            except ValidationErrors as failure:
                self._places[key] = failure
        found = self._places[key]
        if isinstance(found, ValidationErrors):
            raise found
        return found

    def check(self, values: list, data_row: int) -> GoodRow | list[Refusal]:
        """Validate one data row; return what to write, or why not."""
        return check_row(self, values, data_row)


def check_row(checker: RowChecker, values: list, data_row: int) -> GoodRow | list[Refusal]:
    """Validate one data row with the registration validators; return what to write, or why not."""
    line = data_row + 1
    if all(value in ("", None) for value in values):
        return [Refusal(line, WHOLE_ROW, "空行")]
    row = dict(zip(checker.columns, values))
    truncated = [ValidationError(column, f"{column}：{NUMBER_TRUNCATED}")
                 for column, value in row.items() if isinstance(value, TruncatedNumber)]
    if truncated:  # the row cannot be imported from this file whatever else it holds
        return _refusals(line, truncated)
    get = lambda name: row.get(name, "")  # noqa: E731
    seen, regions, session = checker.seen, checker.regions, checker.session
    errors: list[ValidationError] = []
    id_number = born = None
    try:
        id_number = validate_id_number(str(get("身份证号")))
    except ValidationError as error:
        errors.append(error)
    else:
        # Valid now, so its digits can be read directly: the validators would check the number again.
        born = datetime.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
        sex, birth_date = get("性别") or None, _iso(get("出生日期")) or None
        # Only a value that differs from the number's goes through the validator, for its message.
        for given, matches in ((dict(sex=sex), sex in (None, SEXES[_sex(id_number)])),
                               (dict(birth_date=birth_date), birth_date in (None, born, born.isoformat()))):
            if matches:
                continue
            try:
                check_sex_and_birth_date(id_number, **given)
            except ValidationError as error:
                errors.append(error)
    if id_number is not None:
        first = seen.setdefault(id_number, data_row)
        if first != data_row:
            errors.append(ValidationError("id_number", f"身份证号：与第 {first + 1} 行重复"))
    employed = bool(get("工作单位"))
    code = str(get("所在地区代码"))
    info = regions.get(code)
    region_field = "employer_region" if employed else "household_region"
    fields = {
        "name": get("姓名"), "phone": get("联系电话"),
        "education": EDUCATION_ALIASES.get(get("学历"), get("学历")),
        "qualification_level": QUALIFICATION_ALIASES.get(get("会计专业技术资格"), get("会计专业技术资格")),
        "qualification_certificate_number": get("资格证书编号"),
        "legacy_certificate_number": get("原会计从业资格证号"),
        "job_started_on": get("从事会计工作日期"),
    }
    place = {"employer_name": get("工作单位"), "employer_uscc": get("统一社会信用代码"),
             "employer_org_code": get("组织机构代码"), region_field: info.region if info else code}
    cleaned = {}
    for check in (lambda: clean_fields(session, fields, birth_date=born), lambda: checker.place(place)):
        try:
            cleaned.update(check())
        except ValidationErrors as failure:
            errors.extend(failure.errors)
    if info is not None and info.collected_elsewhere and not any(e.field == region_field for e in errors):
        errors.append(ValidationError(region_field, f"所在地区代码：{DALIAN_MESSAGE}"))
    if errors:
        return _refusals(line, errors)
    region = cleaned[region_field]
    uscc = cleaned["employer_uscc"]
    dossier = {
        "phone": cleaned["phone"], "education": cleaned["education"], "employer_name": cleaned["employer_name"],
        "employer_uscc": uscc, "employer_org_code": cleaned["employer_org_code"] or (uscc[8:17] if uscc else None),
        "employer_region_id": region.id if employed and region else None,
        "household_region_id": None if employed or region is None else region.id,
        "region_id": region.id if region else None,
        "qualification_level": cleaned["qualification_level"],
        "qualification_certificate_number": cleaned["qualification_certificate_number"],
        "legacy_certificate_number": cleaned["legacy_certificate_number"],
        "job_started_on": cleaned["job_started_on"],
    }
    person = {"id_number": id_number, "name": cleaned["name"], "sex": _sex(id_number), "birth_date": born}
    return GoodRow(data_row, id_number, person, dossier)


def _sex(id_number: str) -> str:
    """Return the sex the 17th digit of a validated ID number encodes (validators.id_number_sex, unchecked)."""
    return "male" if int(id_number[16]) % 2 else "female"


def _iso(value) -> str | datetime.date:
    """Return a birth-date cell in ISO form when it is written 19900101 or 1990/01/01, else as it was."""
    if isinstance(value, datetime.date) or not value:
        return value
    text = str(value).strip().replace("/", "-").replace(".", "-")
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    parts = text.split("-")
    if len(parts) == 3 and all(part.isdigit() for part in parts):
        return f"{int(parts[0]):04d}-{int(parts[1]):02d}-{int(parts[2]):02d}"
    return text


# -- writing ---------------------------------------------------------------------------------

def bulk_insert(connection, table, rows: list[dict], **constants) -> None:
    """Insert rows (all with the same keys) plus the constant columns, by one executemany at the driver.

    The SQL is compiled by SQLAlchemy for the connection's dialect; each column's bind processor runs
    once per constant and once per varying value, which makes it three times quicker than
    connection.execute(insert(table), rows) on SQLite, where that per-row work dominates.
    """
    if not rows:
        return
    dialect = connection.dialect
    varying = list(rows[0])
    compiled = insert(table).compile(dialect=dialect, column_keys=varying + list(constants))

    def processor(name):
        return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)

    fixed = {name: (process(value) if (process := processor(name)) else value) for name, value in constants.items()}
    processors = [(name, process) for name in varying if (process := processor(name))]
    parameters = []
    for row in rows:
        values = {**row, **fixed}
        for name, process in processors:
            values[name] = process(values[name])
        parameters.append(values)
    if compiled.positional:
        order = compiled.positiontup
        parameters = [tuple(values[name] for name in order) for values in parameters]
    connection.exec_driver_sql(compiled.string, parameters)


def _write_chunk(session, run_id: int, good: list[GoodRow]) -> tuple[int, int]:
    """Insert the chunk's new persons, accounts, dossiers, audit and outbox rows; return (imported, unchanged)."""
    if not good:
        return 0, 0
    existing = set(session.scalars(select(Person.id_number).where(
        Person.id_number.in_([row.id_number for row in good]))))
    new = [row for row in good if row.id_number not in existing]
    if not new:
        return 0, len(good)
    connection, now = session.connection(), utcnow()
    numbers = [row.id_number for row in new]
    # Then one look-up by the unique keys: RETURNING in parameter order would make SQLite insert row by row.
    bulk_insert(connection, Person.__table__, [row.person for row in new], is_legacy=True, created_at=now)
    person_ids = dict(connection.execute(select(Person.id_number, Person.id).where(Person.id_number.in_(numbers))).all())
    # No password: the person sets one at first sign-in with name and ID number (views/auth.py).
    bulk_insert(connection, User.__table__, [{"person_id": person_ids[number]} for number in numbers],
                is_active=True, must_change_password=False, created_at=now)
    bulk_insert(connection, Dossier.__table__, [{**row.dossier, "person_id": person_ids[row.id_number]} for row in new],
                state=DRAFT_STATE, state_changed_at=now, to_confirm=True, job_types=[], is_student=False,
                created_at=now, updated_at=now, lock_version=1)
    dossier_ids = connection.execute(select(Dossier.id).where(
        Dossier.person_id.in_(list(person_ids.values())), Dossier.baseline_id.is_(None))).scalars().all()
    events = [{"object_id": dossier_id, "occurred_at": now, "actor_label": ACTOR_LABEL, "action": "dossier.register",
               "object_type": "dossier", "detail": {"legacy": True, "import_run": run_id}} for dossier_id in dossier_ids]
    audit_chain.link(connection, events)  # Core inserts pass no ORM hook: chain them here
    bulk_insert(connection, AuditEvent.__table__, events)
    enqueue(session, dossier_ids)
    return len(new), len(good) - len(new)


def unfinished_run(session, sha256: str) -> LegacyImport | None:
    """Return the latest interrupted run over the file with this hash, if any."""
    return session.scalar(select(LegacyImport).where(
        LegacyImport.file_sha256 == sha256, LegacyImport.finished_at.is_(None)).order_by(LegacyImport.id.desc()))


def import_legacy(session, path: Path | str, *, chunk: int = CHUNK_ROWS,
                  started: Callable[[int, int], None] = lambda total, resumed_after: None,
                  progress: Callable[[int], None] = lambda rows: None) -> ImportResult:
    """Import path's rows; refuse the bad ones, leave persons already present unchanged, resume an interrupted run.

    Every row is checked on every run (so the report is whole and duplicates are found across the
    resume point); rows up to the interrupted run's last committed chunk are not written again.
    Each chunk commits its rows, their outbox rows and the run's progress together.
    """
    path = Path(path)
    header, total, rows = read_table(path)
    columns = check_header(header)
    sha256 = file_sha256(path)
    run = unfinished_run(session, sha256)
    if run is None:
        run = LegacyImport(file_sha256=sha256, filename=path.name[:255], rows_total=total, started_at=utcnow())
        session.add(run)
        session.commit()
    run_id, resume_after = run.id, run.last_row
    started(total, resume_after)
    progress(min(resume_after, total))
    checker = RowChecker(session, columns, load_regions(session.get_bind()))
    refusals: list[Refusal] = []
    good: list[GoodRow] = []
    refused_in_chunk = data_row = 0

    def commit_chunk(last: int) -> None:
        nonlocal good, refused_in_chunk
        for attempt in (1, 2):
            try:
                added, kept = _write_chunk(session, run_id, good)
                current = session.get(LegacyImport, run_id)
                current.last_row = last
                current.imported += added
                current.unchanged += kept
                current.refused += refused_in_chunk
                # Not drained inline after this commit: indexing 1,000 dossiers per chunk would take
                # minutes; the rows stay queued for the worker (`kjdms worker`, or the serve thread).
                leave_outbox_to_worker(session)
                session.commit()
                break
            except IntegrityError:
                # Someone registered one of these ID numbers meanwhile: look again, once.
                session.rollback()
                if attempt == 2:
                    raise
        progress(len(good) + refused_in_chunk)
        good, refused_in_chunk = [], 0

    for data_row, values in enumerate(rows, start=1):
        checked = checker.check(values, data_row)
        if isinstance(checked, list):
            refusals.extend(checked)
        if data_row <= resume_after:
            continue  # committed by the interrupted run; checked again only for the report and duplicates
        if isinstance(checked, list):
            refused_in_chunk += 1
        else:
            good.append(checked)
        if data_row % chunk == 0:
            commit_chunk(data_row)
    if data_row > resume_after and data_row % chunk:
        commit_chunk(data_row)
    finished = session.get(LegacyImport, run_id)
    finished.finished_at, finished.rows_total = utcnow(), data_row
    session.commit()
    return ImportResult(run_id, data_row, finished.imported, finished.unchanged, finished.refused,
                        resume_after, refusals)


def write_report(path: Path | str, refusals: list[Refusal]) -> None:
    """Write the refused rows as CSV (行号, 字段, 原因), with a BOM so that Excel reads the Chinese."""
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REPORT_HEADER)
        writer.writerows((refusal.line, refusal.column, refusal.reason) for refusal in refusals)


def default_report_path(path: Path | str) -> Path:
    """Return where the report goes unless --report says otherwise: beside the file, named after it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.errors.csv")
