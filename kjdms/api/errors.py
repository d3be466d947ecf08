"""JSON errors for everything under /api/: a stable code, a Chinese message, and for bad input the fields concerned."""
from __future__ import annotations

from flask import jsonify, request
from flask_wtf.csrf import CSRFError
from pydantic import BaseModel, Field
from werkzeug.exceptions import HTTPException

API_PREFIX = "/api/"

# status → (code, message): what every client can rely on; the message is for the person reading a log.
HTTP_ERRORS = {
    400: ("bad_request", "请求无效：请求内容不完整或无法解析。"),
    401: ("unauthenticated", "需要有效的凭据：请在 Authorization 头中附上 API 密钥或工作人员令牌（Bearer）。"),
    403: ("forbidden", "没有权限进行此操作。"),
    404: ("not_found", "未找到：地址不存在，或您无权查看。"),
    405: ("method_not_allowed", "此地址不接受这种请求方式。"),
    409: ("conflict", "操作冲突：该档案已被他人处理或修改，请重新读取后再试。"),
    413: ("too_large", "请求内容超过大小上限。"),
    415: ("unsupported_media_type", "请求内容须为 JSON（Content-Type: application/json）。"),
    422: ("invalid", "请求内容有误。"),
    429: ("rate_limited", "请求过于频繁，请稍后再试。"),
    500: ("server_error", "服务器内部错误，请稍后再试；如持续出现请联系管理员。"),
}


class FieldError(BaseModel):
    """One field the request got wrong."""

    field: str = Field(description="字段路径，如 persons.3.id_number")
    message: str = Field(description="中文说明")


class Error(BaseModel):
    """Every API error's body."""

    code: str = Field(description="稳定的错误代码，如 invalid、unauthenticated、rate_limited")
    message: str = Field(description="中文说明")
    errors: list[FieldError] | None = Field(default=None, description="仅在请求内容有误时：逐个字段的说明")


class ApiError(Exception):
    """An error an API view raises: rendered as the JSON Error body with its status and headers."""

    def __init__(self, status: int, code: str | None = None, message: str | None = None,
                 errors: list[FieldError] | None = None, headers: dict | None = None):
        default_code, default_message = HTTP_ERRORS.get(status, HTTP_ERRORS[500])
        super().__init__(code or default_code)
        self.status, self.code, self.message = status, code or default_code, message or default_message
        self.errors, self.headers = errors, headers or {}


def is_api_request() -> bool:
    """Tell whether the current request is for the API (its errors are JSON, not pages)."""
    return request.path.startswith(API_PREFIX)


def error_response(error: ApiError):
    """Render an ApiError as its JSON body and status."""
    body = Error(code=error.code, message=error.message, errors=error.errors).model_dump(exclude_none=True)
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def from_http_exception(error: HTTPException) -> ApiError:
    """Translate a werkzeug HTTP error (404 routing, 405, 413, CSRF …) into the API's terms."""
    if isinstance(error, CSRFError):
        # 400 as on the pages (Flask-WTF's own status), so a forged write is refused alike everywhere.
        return ApiError(400, "csrf_failed", "以登录会话调用写操作须在 X-CSRFToken 头中附上页面的安全令牌；"
                                            "脚本请改用工作人员令牌（Authorization: Bearer）。")
    status = error.code if error.code in HTTP_ERRORS else 500
    if getattr(error, "shown", False):  # a refusal whose words were written for people (views/home.AddressRefused)
        return ApiError(status, "invalid", error.description)
    headers = {"Allow": error.valid_methods and ", ".join(error.valid_methods)} if status == 405 else {}
    return ApiError(status, headers={name: value for name, value in headers.items() if value})


def json_or(page_handler):
    """Return an error handler answering API requests in JSON and others with page_handler (None: Flask's own)."""
    def handle(error):
        if is_api_request():
            return error_response(from_http_exception(error))
        return page_handler(error) if page_handler is not None else error
    return handle
