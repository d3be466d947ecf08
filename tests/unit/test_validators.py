"""Unit tests for kjdms.validators."""

import datetime

import pytest
from hypothesis import given, strategies as st

from kjdms.validators import (
    FIELD_LABELS,
    PROVINCE_CODES,
    ValidationError,
    ValidationErrors,
    check_sex_and_birth_date,
    id_number_birth_date,
    id_number_check_digit,
    id_number_sex,
    normalize_id_number,
    org_code_check_char,
    uscc_check_char,
    validate_email,
    validate_id_number,
    validate_org_code,
    validate_phone,
    validate_uscc,
)


def reference_check_digit(first17):
    """Compute the GB 11643 check digit the textbook way, independent of stdnum."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(digit) * weight for digit, weight in zip(first17, weights))
    return "10X98765432"[total % 11]


def make_id(first17):
    return first17 + id_number_check_digit(first17)


def assert_fails(func, value, field, fragment):
    with pytest.raises(ValidationError) as caught:
        func(value)
    assert caught.value.field == field
    assert fragment in caught.value.message
    assert str(caught.value) == caught.value.message
    assert caught.value.message.startswith(FIELD_LABELS[field] + "：")
    return caught.value


# --- ValidationError / ValidationErrors / labels -------------------------------


def test_field_labels_cover_the_form_fields():
    assert FIELD_LABELS["id_number"] == "身份证号"
    assert FIELD_LABELS["name"] == "姓名"
    assert FIELD_LABELS["sex"] == "性别"
    assert FIELD_LABELS["birth_date"] == "出生日期"
    assert FIELD_LABELS["phone"] == "联系电话"
    assert FIELD_LABELS["employer_uscc"] == "统一社会信用代码"
    assert FIELD_LABELS["employer_org_code"] == "组织机构代码"


def test_validation_errors_collects_messages_by_field():
    errors = []
    attempts = [(validate_id_number, ""), (validate_phone, "123"), (validate_uscc, "91110000600037341L")]
    for func, value in attempts:
        try:
            func(value)
        except ValidationError as error:
            errors.append(error)
    collected = ValidationErrors(errors)
    assert isinstance(collected, ValueError)
    assert collected.as_dict() == {
        "id_number": "身份证号：必填",
        "phone": errors[1].message,
    }
    assert "身份证号：必填" in str(collected)


# --- ID numbers: valid ------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002X",  # the published GB 11643 sample
        "210102199001010015",
        "210102199001010023",
        "21010219850312005X",
        "21010219850312013X",
        "830000199001010020",  # 台湾居民居住证
        "810000198001010030",  # 港澳居民居住证, born before the 1997 handover
        "211402190001010011",
    ],
)
def test_valid_id_numbers(number):
    assert validate_id_number(number) == number


def test_check_digit_matches_textbook_algorithm():
    bodies = ["11010519491231002", "21010219850312005", "21010219900101001", "65010219991231999"]
    for first17 in bodies:
        assert id_number_check_digit(first17) == reference_check_digit(first17)
    assert id_number_check_digit("11010519491231002") == "X"


def test_lowercase_x_is_upper_cased():
    assert validate_id_number("11010519491231002x") == "11010519491231002X"


def test_full_width_and_spaces_are_normalised():
    assert normalize_id_number(" １１０１０５ １９４９１２３１００２ｘ　") == "11010519491231002X"
    assert validate_id_number("１１０１０５１９４９１２３１００２Ｘ") == "11010519491231002X"


def test_birth_date_and_sex_from_id_number():
    assert id_number_birth_date("11010519491231002X") == datetime.date(1949, 12, 31)
    assert id_number_sex("11010519491231002X") == "female"
    assert id_number_sex("210102199001010015") == "male"


# --- ID numbers: invalid ----------------------------------------------------------


def test_empty_id_number():
    assert_fails(validate_id_number, "  ", "id_number", "必填")
    assert_fails(validate_id_number, None, "id_number", "必填")


def test_fifteen_digit_number_is_refused_with_reason():
    error = assert_fails(validate_id_number, "110105491231002", "id_number", "不接受15位旧身份证号")
    assert "没有校验位" in error.message
    assert "18位" in error.message
    # Second-generation cards were issued from 2004; 1999 is the year of their standard, not of the cards.
    assert "第二代居民身份证" in error.message and "GB 11643-1999" in error.message and "2004年起换发" in error.message
    assert "1999年起" not in error.message


@pytest.mark.parametrize("number", ["1101051949123100", "11010519491231002X1"])
def test_wrong_length(number):
    assert_fails(validate_id_number, number, "id_number", f"当前为 {len(number)} 位")


@pytest.mark.parametrize(
    "number", ["1101051949123100XX", "11010519A91231002X", "11010519491231002Y", "110105194912310０2²"]
)
def test_illegal_characters(number):
    assert_fails(validate_id_number, number, "id_number", "非法字符")


@pytest.mark.parametrize("number, right", [("110105194912310021", "X"), ("21010219900101001X", "5")])
def test_wrong_check_digit_is_named_but_the_right_one_never_printed(number, right):
    error = assert_fails(validate_id_number, number, "id_number", "校验位错误（第18位与前17位不符）")
    assert right not in error.message.removeprefix("身份证号：").replace("18", "").replace("17", "")


def test_thirtieth_of_february_does_not_exist():
    number = make_id("21130219900230012")
    assert_fails(validate_id_number, number, "id_number", "出生日期 19900230 不存在")


def test_month_thirteen_does_not_exist():
    assert_fails(validate_id_number, make_id("21010219901301001"), "id_number", "出生日期 19901301 不存在")


def test_future_birth_date():
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    number = make_id(f"210102{tomorrow:%Y%m%d}001")
    assert_fails(validate_id_number, number, "id_number", f"出生日期 {tomorrow:%Y%m%d} 晚于今天")


def test_birth_date_before_1900():
    assert_fails(validate_id_number, make_id("21010218991231001"), "id_number", "早于1900年")


@pytest.mark.parametrize("province", ["10", "16", "20", "24", "47", "55", "66", "72", "84", "99"])
def test_unknown_province(province):
    number = make_id(f"{province}010219900101001")
    assert_fails(validate_id_number, number, "id_number", f"省级行政区划代码 {province} 不存在")


# --- ID numbers: property ---------------------------------------------------------

id_bodies = st.builds(
    lambda province, area, birth, sequence: f"{province}{area:04d}{birth:%Y%m%d}{sequence:03d}",
    st.sampled_from(sorted(PROVINCE_CODES)),
    st.integers(0, 9999),
    st.dates(datetime.date(1900, 1, 1), datetime.date.today()),
    st.integers(0, 999),
)


@given(id_bodies, st.characters())
def test_only_the_computed_check_digit_validates(body, other):
    number = body + id_number_check_digit(body)
    assert validate_id_number(number) == number
    if normalize_id_number(body + other) == number:
        return  # "x" for "X" is the same number, not a different one
    with pytest.raises(ValidationError) as caught:
        validate_id_number(body + other)
    assert caught.value.field == "id_number"
    assert caught.value.message.startswith("身份证号：")


# --- sex and birth date against the ID number -------------------------------------


def test_matching_sex_and_birth_date_pass():
    check_sex_and_birth_date(
        "11010519491231002X", sex="female", birth_date=datetime.date(1949, 12, 31)
    )
    check_sex_and_birth_date("11010519491231002X", sex="女", birth_date="1949-12-31")
    check_sex_and_birth_date("210102199001010015", sex="male")
    check_sex_and_birth_date("210102199001010015")


def test_sex_contradicting_id_number():
    with pytest.raises(ValidationError) as caught:
        check_sex_and_birth_date("11010519491231002X", sex="male")
    assert caught.value.field == "sex"
    assert caught.value.message == "性别：与身份证号不符（身份证号表明为女）"


def test_unknown_sex_value():
    with pytest.raises(ValidationError) as caught:
        check_sex_and_birth_date("11010519491231002X", sex="unknown")
    assert caught.value.field == "sex"
    assert "只能是男或女" in caught.value.message


@pytest.mark.parametrize(
    "birth_date", [datetime.date(1949, 12, 30), datetime.datetime(1950, 1, 1, 8, 0), "1949-01-31"]
)
def test_birth_date_contradicting_id_number(birth_date):
    with pytest.raises(ValidationError) as caught:
        check_sex_and_birth_date("11010519491231002X", birth_date=birth_date)
    assert caught.value.field == "birth_date"
    assert "与身份证号不符（身份证号表明为 1949-12-31）" in caught.value.message


def test_unparseable_birth_date():
    with pytest.raises(ValidationError) as caught:
        check_sex_and_birth_date("11010519491231002X", birth_date="1949年12月31日")
    assert caught.value.field == "birth_date"
    assert "不是有效日期" in caught.value.message


# --- organisation codes -----------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("D2143569-X", "D2143569X"),  # the textbook GB 11714 example
        ("d2143569x", "D2143569X"),
        ("60003734-1", "600037341"),  # embedded in USCC 91110000600037341L
        ("600037341", "600037341"),
        ("12345678-8", "123456788"),
        ("00000001-9", "000000019"),
        ("MA0QCXL4-2", "MA0QCXL42"),
    ],
)
def test_valid_org_codes(value, expected):
    assert validate_org_code(value) == expected


def test_org_code_check_char_wraps_ten_and_eleven():
    assert org_code_check_char("D2143569") == "X"  # C = 10
    # A body whose weighted sum is a multiple of 11 gives C = 11, written "0".
    assert org_code_check_char("00000000") == "0"


@pytest.mark.parametrize("code, right", [("D2143569-1", "X"), ("600037342", "1")])
def test_org_code_wrong_check_char(code, right):
    error = assert_fails(validate_org_code, code, "employer_org_code", "校验位错误（第9位与前8位不符）")
    assert right not in error.message.removeprefix("组织机构代码：").replace("9", "").replace("8", "")


@pytest.mark.parametrize("value", ["1234567-8", "123456788-1", "12-345678-8"])
def test_org_code_wrong_length_or_hyphen(value):
    assert_fails(validate_org_code, value, "employer_org_code", "应为9位")


def test_org_code_illegal_character():
    assert_fails(validate_org_code, "1234567*-8", "employer_org_code", "非法字符")


def test_org_code_empty():
    assert_fails(validate_org_code, "", "employer_org_code", "必填")


# --- unified social credit codes --------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("91110000600037341L", "91110000600037341L"),  # stdnum's published sample
        ("9 1 110000 600037341l", "91110000600037341L"),
        ("91210200-24160003-1A", "91210200241600031A"),
        ("122100000000000197", "122100000000000197"),
        ("5221000050001234X4", "5221000050001234X4"),
    ],
)
def test_valid_usccs(value, expected):
    assert validate_uscc(value) == expected


@pytest.mark.parametrize(
    "prefix, org_body",
    [("N2210102", "MA0QCXL4"), ("Y1210100", "MA0Y3R2K"), ("A1110000", "12345678")],
)
def test_letter_registration_authorities_are_accepted(prefix, org_body):
    # stdnum.cn.uscc.validate() rejects these; GB 32100 allows them.
    first17 = prefix + org_body + org_code_check_char(org_body)
    code = first17 + uscc_check_char(first17)
    assert validate_uscc(code) == code


def test_uscc_wrong_check_char():
    error = assert_fails(validate_uscc, "91110000600037341M", "employer_uscc", "校验位错误（第18位与前17位不符）")
    assert "L" not in error.message and "应为" not in error.message


@pytest.mark.parametrize("letter", ["I", "O", "Z", "S", "V"])
def test_uscc_illegal_letters(letter):
    code = "91110000600037341L".replace("L", letter)
    error = assert_fails(validate_uscc, code, "employer_uscc", f"非法字符“{letter}”")
    assert "不使用 I、O、Z、S、V" in error.message


def test_uscc_wrong_length():
    assert_fails(validate_uscc, "91110000600037341", "employer_uscc", "当前为 17 位")


def test_uscc_unknown_registration_authority():
    first17 = "B1110000600037341"
    code = first17 + uscc_check_char(first17)
    assert_fails(validate_uscc, code, "employer_uscc", "登记管理部门代码 B 不存在")


def test_uscc_letter_in_region_code():
    first17 = "911A0000600037341"
    assert_fails(validate_uscc, first17 + uscc_check_char(first17), "employer_uscc", "应为数字")


def test_uscc_embedded_org_code_must_be_valid():
    # Overall check char is right, but the organisation code 60003734-2 is not.
    first17 = "91110000600037342"
    code = first17 + uscc_check_char(first17)
    assert_fails(validate_uscc, code, "employer_uscc", "第9-17位组织机构代码 600037342 校验位错误")


def test_uscc_empty():
    assert_fails(validate_uscc, " ", "employer_uscc", "必填")


# --- phones -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("13800138000", "13800138000"),
        ("199 0421 0000", "19904210000"),
        ("０４２１－３６０８１３６", "0421-3608136"),
        ("0421-3608136", "0421-3608136"),
        ("04213608136", "04213608136"),
        ("024-23456789", "024-23456789"),
        ("010-87654321-123", "010-87654321-123"),
    ],
)
def test_valid_phones(value, expected):
    assert validate_phone(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "12800138000",  # no 12x mobile prefix
        "1380013800",  # 10 digits
        "138001380001",  # 12 digits
        "3608136",  # landline without area code
        "0421-0608136",  # local number cannot start with 0
        "0421-360813",  # 6-digit local number
        "0421-3608136-",  # dangling extension hyphen
        "+86 13800138000",
        "电话13800138000",
    ],
)
def test_invalid_phones(value):
    assert_fails(validate_phone, value, "phone", "格式不正确")


def test_empty_phone():
    assert_fails(validate_phone, "", "phone", "必填")


@pytest.mark.parametrize("value, expected", [
    (" zhangwei@example.com ", "zhangwei@example.com"), ("li.na+kj@czt.ln.gov.cn", "li.na+kj@czt.ln.gov.cn"),
    ("", None), ("   ", None), (None, None)])
def test_valid_or_blank_emails(value, expected):
    assert validate_email(value) == expected


@pytest.mark.parametrize("value", ["zhangwei", "zhang wei@example.com", "a@b", "a@b.", "a@@example.com",
                                   "x" * 250 + "@example.com"])
def test_invalid_emails(value):
    assert_fails(validate_email, value, "email", "格式不正确，应如 zhangwei@example.com")


def test_an_email_with_a_direction_override_is_refused_naming_the_character():
    assert_fails(validate_email, "zhangwei@example.com\u202e", "email", "U+202E")
