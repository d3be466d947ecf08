"""The JSON API at /api/v1/ for the systems downstream of the collection and for staff tools (OpenAPI 3.1).

Library: spectree (with pydantic 2). It decorates plain Flask views, so the site stays a plain Flask app with its
own HTML error pages (apiflask would replace the application class, flask-smorest installs an app-wide
HTTPException handler); pydantic 2 writes JSON Schema 2020-12, which is OpenAPI 3.1's own schema dialect, so
the published document needs no translation; spectree is maintained (3.0, 2026) and lets the documentation
page be our own template, whose Swagger UI files come from the `swagger-ui-py` wheel and are served by kjdms
(no internet at run time).

Adding an endpoint (see docs/api.md): write a module here with pydantic models for the body and the answer,
decorate the view with `@bp.post(...)`, then `@client_required` or `@staff_required`, then
`@spec.validate(json=Body, resp=responses(Answer, 404), tags=[...])`, import the module at the bottom of this file,
and add it to the contract tests' list of operations.
"""
from __future__ import annotations

from flask import Blueprint
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecuritySchemeData

from .errors import Error
from .validation import reject_invalid

bp = Blueprint("api", __name__, url_prefix="/api/v1")

BEARER = "bearer"
SESSION = "session"

spec = SpecTree(
    "flask",
    title="kjdms API（辽宁省会计人员信息采集）",
    description=("下游系统（考试报名、继续教育、高级资格评审）按 API 密钥查询人员的采集状态；"
                 "工作人员以令牌或登录会话调用与页面权限相同的接口。错误一律为 JSON：{code, message}。"),
    version="1",
    path="api/v1/docs",  # spectree leaves the routes under this path out of the document: the page itself
    mode="strict",  # only views decorated with spec.validate are in the document
    validation_error_status=422,
    validation_error_model=Error,
    before=reject_invalid,
    # Plain model names in the document (spectree's default adds a hash of the module).
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda parent, child: child,
    security_schemes=[
        SecurityScheme(name=BEARER, data=SecuritySchemeData(
            type="http", scheme="bearer", description="API 密钥（kjc_…，下游系统）或工作人员令牌（kjs_…）")),
        SecurityScheme(name=SESSION, data=SecuritySchemeData(
            type="apiKey", name="session", field_in="cookie", description="工作人员的登录会话；写操作另须 X-CSRFToken 头")),
    ],
)

# Every operation may answer these; the document lists them so that clients (and the contract tests) expect them.
COMMON_ERRORS = (401, 403, 413, 415, 429, 500)


def responses(answer, *errors: int, status: int = 200) -> Response:
    """Return the documented responses of an operation: answer on status, Error on each error status."""
    codes = sorted(set(COMMON_ERRORS) | set(errors))
    return Response(**{f"HTTP_{status}": answer}, **{f"HTTP_{code}": Error for code in codes})


def init_api(app) -> None:
    """Register the API blueprint: its caller identification, its own CSRF rule and JSON errors."""
    from ..extensions import csrf
    from .errors import ApiError, error_response

    # The API does its own CSRF check (auth.identify): only a cookie-authenticated write needs a token.
    csrf.exempt(bp)
    app.register_error_handler(ApiError, error_response)
    app.register_blueprint(bp)


from .auth import identify  # noqa: E402

bp.before_request(identify)

from . import docs, dossiers, review, session, status  # noqa: E402,F401  (the endpoints register themselves on bp)
