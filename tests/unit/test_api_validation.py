"""The API's validation messages: Chinese, naming each field by its path, never repeating what was sent."""
import pytest
from pydantic import BaseModel, Field, ValidationError

from kjdms.api.validation import field_errors
from kjdms.validators import quotes_an_id_number


class Person(BaseModel):
    name: str = Field(min_length=1, max_length=5)
    id_number: str


class Batch(BaseModel):
    persons: list[Person] = Field(max_length=2)


def errors_of(data):
    try:
        Batch.model_validate(data)
    except ValidationError as error:
        return [(item.field, item.message) for item in field_errors(error)]
    raise AssertionError("valid")


def test_each_wrong_field_is_named_by_path_and_chinese_label():
    assert errors_of({"persons": [{"name": "张伟", "id_number": "x"}, {"name": ""}]}) == [
        ("persons.1.name", "姓名（persons.1.name）：至少 1 个字符"),
        ("persons.1.id_number", "身份证号（persons.1.id_number）：必填"),
    ]


def test_limits_and_types_are_explained():
    assert errors_of({"persons": [{"name": "张", "id_number": "1"}] * 3}) == [
        ("persons", "人员列表（persons）：最多 2 项")]
    assert errors_of({"persons": "张伟"}) == [("persons", "人员列表（persons）：应为数组")]
    assert errors_of([]) == [("", "请求内容：应为 JSON 对象")]


def test_the_values_sent_are_never_repeated():
    secret = "21130219900101001X"
    messages = errors_of({"persons": [{"name": secret, "id_number": 5}]})
    assert messages and not any(secret in field + message for field, message in messages)


@pytest.mark.parametrize("text, quoted", [
    ("核对身份证复印件", False),
    ("核对 21130219900101001X", True),
    ("核对21130219900101001x号", True),
    ("２１１３０２１９９００１０１００１Ｘ", True),  # full-width digits are digits
    ("旧证 211302900101001", True),  # the old 15 digits
    ("电话 13904211234", False),
    ("流水号 2113021990010100123", False),  # 19 digits: not an ID number
])
def test_an_id_number_in_free_text_is_found(text, quoted):
    assert quotes_an_id_number(text) is quoted
