"""Turn pydantic's validation errors into Chinese messages naming each field, never echoing what was sent."""
from __future__ import annotations

from typing import Annotated

from flask import request
from pydantic import AfterValidator, StringConstraints, ValidationError

from ..validators import forbidden_character_detail, quotes_an_id_number
from .errors import ApiError, FieldError

# Chinese names of the request fields, for the messages; the path in `field` stays the JSON name.
FIELD_LABELS = {
    "name": "姓名",
    "id_number": "身份证号",
    "persons": "人员列表",
    "comment": "意见",
    "lock_version": "版本号",
    "decision": "审核结论",
    "flagged": "有问题的项目",
    "reason": "查看理由",
    "region": "地区代码",
    "waited": "已等待天数",
    "page": "页码",
}

# pydantic's error type → a Chinese sentence (ctx values fill the braces).
MESSAGES = {
    "missing": "必填",
    "extra_forbidden": "不接受此字段",
    "string_type": "应为文本",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "bool_type": "应为 true 或 false",
    "list_type": "应为数组",
    "dict_type": "应为 JSON 对象",
    "model_type": "应为 JSON 对象",
    "model_attributes_type": "应为 JSON 对象",
    "string_too_short": "至少 {min_length} 个字符",
    "string_too_long": "最多 {max_length} 个字符",
    "too_short": "至少 {min_length} 项",
    "too_long": "最多 {max_length} 项",
    "string_pattern_mismatch": "格式不正确",
    "greater_than_equal": "不能小于 {ge}",
    "less_than_equal": "不能大于 {le}",
    "literal_error": "取值不在允许范围内",
    "enum": "取值不在允许范围内",
}


def printable(value: str) -> str:
    """Refuse text carrying a control or direction-override character, as every form of the site does."""
    detail = forbidden_character_detail(value)
    if detail is not None:
        raise ValueError(detail)
    return value


def without_id_number(value: str) -> str:
    """Refuse free text holding an ID number: it goes to the audit log, which never holds one."""
    if quotes_an_id_number(value):
        raise ValueError("不能包含身份证号（这段文字写入审计日志，审计日志不记录身份证号）")
    return value


def plain_text(*, min_length: int = 0, max_length: int) -> type[str]:
    """Return the type of free text a person types (a reason, a comment): trimmed, its length and characters checked.

    The API's counterpart of the forms' check_text; the length is checked on the trimmed text.
    """
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
                     AfterValidator(printable)]


def _path(location) -> str:
    return ".".join(str(part) for part in location)


def _label(location) -> str:
    names = [part for part in location if isinstance(part, str)]
    last = names[-1] if names else ""
    label = FIELD_LABELS.get(last)
    path = _path(location)
    if not path:
        return "请求内容"
    return f"{label}（{path}）" if label else path


def field_errors(error: ValidationError) -> list[FieldError]:
    """Return one FieldError a pydantic error, in Chinese; the input values are never repeated."""
    result = []
    for item in error.errors(include_input=False, include_url=False):
        context = item.get("ctx") or {}
        if item["type"] == "value_error" and "error" in context:
            sentence = str(context["error"])  # our own validators raise Chinese ValueErrors
        else:
            try:
                sentence = MESSAGES.get(item["type"], "格式不正确").format(**context)
            except (KeyError, IndexError):
                sentence = "格式不正确"
        result.append(FieldError(field=_path(item["loc"]), message=f"{_label(item['loc'])}：{sentence}"))
    return result


def reject_invalid(req, response, validation_error, instance, model_adapter) -> None:
    """Spectree's hook before each view: refuse a body that is not JSON, or not valid, with the fields named."""
    # A body in anything but JSON would be skipped unread by spectree: refuse it rather than act on nothing.
    if request.content_length and not request.is_json:
        raise ApiError(415)
    if request.is_json and request.get_json(silent=True) is None:
        raise ApiError(400, "invalid_json", "请求内容不是合法的 JSON。")
    if validation_error is None:
        return
    errors = field_errors(validation_error) if isinstance(validation_error, ValidationError) else []
    named = "；".join(error.message for error in errors[:5])
    more = f" 等 {len(errors)} 处" if len(errors) > 5 else ""
    raise ApiError(422, "invalid", f"请求内容有误：{named}{more}" if named else "请求内容有误。", errors=errors)
