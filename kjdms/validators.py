"""Validate and normalise identity numbers, organisation codes, phone numbers and e-mail addresses."""

import datetime
import re
import unicodedata

from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidComponent

FIELD_LABELS = {
    "id_number": "身份证号",
    "name": "姓名",
    "sex": "性别",
    "birth_date": "出生日期",
    "phone": "联系电话",
    "employer_uscc": "统一社会信用代码",
    "employer_org_code": "组织机构代码",
    "email": "电子邮箱",
}

# GB/T 2260 province-level codes. stdnum's own lookup (cn/loc.dat) lacks 83 and
# rejects 81/82 for births before the handovers, yet 港澳台居民居住证 carry
# 810000/820000/830000 whatever the holder's birth year, so we check provinces
# ourselves and do not call ric.validate().
PROVINCE_CODES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46"
    " 50 51 52 53 54 61 62 63 64 65 71 81 82 83".split()
)

# GB 32100-2015 第1位 登记管理部门代码, as extended by later assignments.
USCC_AUTHORITIES = frozenset("123456789ANY")
_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"

_ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

# Chinese input methods often produce full-width forms (０-９, Ｘ, －); map the
# whole full-width ASCII block so every validator sees plain ASCII.
_FULL_WIDTH = {0xFF01 + i: 0x21 + i for i in range(94)}
_FULL_WIDTH[0x3000] = 0x20

_SEX_VALUES = {"male": "male", "female": "female", "男": "male", "女": "female"}
_SEX_LABELS = {"male": "男", "female": "女"}

# An ID number inside free text (18 characters, or the old 15 digits): such text must not reach an audit row.
ID_NUMBER_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9A-Za-z])")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
# Local numbers never start with 0 or 1: those are trunk and service prefixes.
_LANDLINE = re.compile(r"0[1-9][0-9]{1,2}-?[2-9][0-9]{6,7}(-[0-9]{1,6})?")


class ValidationError(ValueError):
    """A field value that failed validation, with a Chinese message for the user."""

    def __init__(self, field: str, message: str):
        super().__init__(field, message)  # both in args so the error pickles
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


class ValidationErrors(ValueError):
    """Several field errors reported together, e.g. for a whole form."""

    def __init__(self, errors: list[ValidationError]):
        self.errors = list(errors)
        super().__init__(self.errors)

    def __str__(self) -> str:
        return "；".join(error.message for error in self.errors)

    def as_dict(self) -> dict[str, str]:
        """Return the messages keyed by field name."""
        return {error.field: error.message for error in self.errors}


def _error(field: str, detail: str) -> ValidationError:
    return ValidationError(field, f"{FIELD_LABELS[field]}：{detail}")


def _compact(value: str | None) -> str:
    return "".join((value or "").translate(_FULL_WIDTH).split())


def normalize_id_number(value: str) -> str:
    """Return the ID number in ASCII without spaces and with an upper-case X."""
    return _compact(value).upper()


def id_number_check_digit(first17: str) -> str:
    """Return the GB 11643 (ISO 7064 MOD 11-2) check digit for 17 body digits."""
    # stdnum expects the whole number and ignores its last character.
    return ric.calc_check_digit(first17 + "0")


def validate_id_number(value: str) -> str:
    """Return the normalised 18-digit ID number or raise ValidationError."""
    field = "id_number"
    number = normalize_id_number(value)
    if not number:
        raise _error(field, "必填")
    if len(number) == 15 and number.isascii() and number.isdigit():
        raise _error(
            field,
            "不接受15位旧身份证号（15位号码没有校验位，出生年份只有两位），"
            "请使用18位的第二代居民身份证号码（GB 11643-1999，2004年起换发）",
        )
    if len(number) != 18:
        raise _error(field, f"应为18位，当前为 {len(number)} 位")
    for position, char in enumerate(number):
        allowed = "0123456789X" if position == 17 else "0123456789"
        if char not in allowed:
            raise _error(field, f"含有非法字符“{char}”，前17位应为数字，最后一位为数字或 X")
    if number[:2] not in PROVINCE_CODES:
        raise _error(field, f"前两位省级行政区划代码 {number[:2]} 不存在")
    digits = number[6:14]
    try:
        birth_date = ric.get_birth_date(number)
    except InvalidComponent:
        raise _error(field, f"出生日期 {digits} 不存在") from None
    if birth_date > datetime.date.today():
        raise _error(field, f"出生日期 {digits} 晚于今天")
    if birth_date.year < 1900:
        raise _error(field, f"出生日期 {digits} 早于1900年")
    expected = id_number_check_digit(number[:17])
    if number[17] != expected:
        # Never the right digit: that would turn a mistyped or made-up number into a valid-looking one.
        raise _error(field, "校验位错误（第18位与前17位不符），请对照身份证逐位核对")
    return number


def id_number_birth_date(id_number: str) -> datetime.date:
    """Return the birth date encoded in a valid ID number."""
    return ric.get_birth_date(validate_id_number(id_number))


def id_number_sex(id_number: str) -> str:
    """Return "male" or "female" from the 17th digit of a valid ID number."""
    return "male" if int(validate_id_number(id_number)[16]) % 2 else "female"


def check_sex_and_birth_date(
    id_number: str,
    sex: str | None = None,
    birth_date: datetime.date | str | None = None,
) -> None:
    """Raise ValidationError if the given sex or birth date contradicts the ID number."""
    if sex is not None:
        if sex not in _SEX_VALUES:
            raise _error("sex", "只能是男或女")
        expected_sex = id_number_sex(id_number)
        if _SEX_VALUES[sex] != expected_sex:
            raise _error("sex", f"与身份证号不符（身份证号表明为{_SEX_LABELS[expected_sex]}）")
    if birth_date is not None:
        if isinstance(birth_date, datetime.datetime):
            birth_date = birth_date.date()
        elif isinstance(birth_date, str):
            try:
                birth_date = datetime.date.fromisoformat(birth_date.strip())
            except ValueError:
                raise _error("birth_date", f"{birth_date} 不是有效日期") from None
        expected_date = id_number_birth_date(id_number)
        if birth_date != expected_date:
            raise _error("birth_date", f"与身份证号不符（身份证号表明为 {expected_date.isoformat()}）")


def org_code_check_char(body: str) -> str:
    """Return the GB 11714 check character for an 8-character organisation code body."""
    # int(c, 36) gives 0-9 for digits and A=10 … Z=35, the values GB 11714 uses.
    total = sum(int(char, 36) * weight for char, weight in zip(body, _ORG_CODE_WEIGHTS))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def validate_org_code(value: str) -> str:
    """Return the 9-character organisation code without hyphen or raise ValidationError."""
    field = "employer_org_code"
    code = _compact(value).upper()
    if not code:
        raise _error(field, "必填")
    # Certificates print the code as "12345678-9"; only that hyphen is allowed.
    if code[-2:-1] == "-":
        code = code[:-2] + code[-1]
    if len(code) != 9:
        raise _error(field, f"应为9位（8位本体代码加1位校验码），当前为 {len(code)} 位")
    for char in code:
        if not ("0" <= char <= "9" or "A" <= char <= "Z"):
            raise _error(field, f"含有非法字符“{char}”，只能是数字或大写字母")
    expected = org_code_check_char(code[:8])
    if code[8] != expected:
        raise _error(field, "校验位错误（第9位与前8位不符），请对照证书逐位核对")
    return code


def uscc_check_char(first17: str) -> str:
    """Return the GB 32100 check character for the first 17 characters of a USCC."""
    return uscc.calc_check_digit(first17)


def validate_uscc(value: str) -> str:
    """Return the normalised 18-character unified social credit code or raise ValidationError."""
    field = "employer_uscc"
    code = _compact(value).upper().replace("-", "")
    if not code:
        raise _error(field, "必填")
    if len(code) != 18:
        raise _error(field, f"应为18位，当前为 {len(code)} 位")
    for char in code:
        if char not in _USCC_CHARSET:
            raise _error(field, f"含有非法字符“{char}”，只能是数字或大写字母（不使用 I、O、Z、S、V）")
    # stdnum's validate() insists the first 8 are digits, which wrongly rejects
    # the A, N and Y registration authorities, so only its checksum is reused.
    if code[0] not in USCC_AUTHORITIES:
        raise _error(field, f"第1位登记管理部门代码 {code[0]} 不存在")
    if not code[1:8].isdigit():
        raise _error(field, "第2-8位机构类别代码和行政区划码应为数字")
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        raise _error(field, "校验位错误（第18位与前17位不符），请对照营业执照或登记证书逐位核对")
    if org_code_check_char(code[8:16]) != code[16]:
        raise _error(field, f"第9-17位组织机构代码 {code[8:17]} 校验位错误")
    return code


def validate_phone(value: str) -> str:
    """Return the phone number without spaces or raise ValidationError."""
    field = "phone"
    phone = _compact(value)
    if not phone:
        raise _error(field, "必填")
    if not (_MOBILE.fullmatch(phone) or _LANDLINE.fullmatch(phone)):
        raise _error(field, "格式不正确，应为11位手机号或带区号的固定电话（如 0421-3608136）")
    return phone


MAX_EMAIL = 254  # RFC 5321's limit on a forward path
# Deliberately plain: one @, a dot in the domain, no spaces; the mail server has the last word.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def validate_email(value: str | None) -> str | None:
    """Return the e-mail address without surrounding spaces, None when blank, or raise ValidationError."""
    field = "email"
    address = (value or "").strip()
    check_text(field, FIELD_LABELS[field], address)
    if not address:
        return None
    if len(address) > MAX_EMAIL or not _EMAIL.fullmatch(address):
        raise _error(field, "格式不正确，应如 zhangwei@example.com")
    return address


# C0 controls but tab, newline and carriage return; DEL; C1 controls; lone surrogates; the bidirectional
# embeddings, overrides and isolates, which make text display in another order than its characters.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def forbidden_character(text: str) -> str | None:
    """Return the first character of text that input must not carry, or None."""
    match = _FORBIDDEN.search(text or "")
    return match.group() if match else None


def forbidden_character_detail(text: str | None) -> str | None:
    """Return why text may not be taken, in Chinese (the control or direction-override character it carries), or None."""
    character = forbidden_character(text or "")
    return f"不能包含控制字符或文字方向控制符（U+{ord(character):04X}）" if character is not None else None


def check_text(field: str, label: str, text: str | None) -> None:
    """Raise ValidationError naming the field when text carries a control or direction-override character."""
    detail = forbidden_character_detail(text)
    if detail is not None:
        raise ValidationError(field, f"{label}：{detail}")


def clean_filename(name: str | None) -> str | None:
    """Return an uploaded file name without the characters that would make it display otherwise than it is."""
    if name is None:
        return None
    cleaned = _FORBIDDEN.sub("", name).strip()
    return cleaned or None


def quotes_an_id_number(text: str) -> bool:
    """Return whether text holds something shaped like an ID number (full-width digits count as digits)."""
    return ID_NUMBER_IN_TEXT.search(unicodedata.normalize("NFKC", text)) is not None
