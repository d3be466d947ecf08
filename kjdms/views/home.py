"""The public pages: what the site is, the consultation contacts, and the error pages."""
from flask import Blueprint, abort, current_app, render_template, request, send_from_directory, url_for
from sqlalchemy import select
from werkzeug.exceptions import BadRequest

from ..backends import get_config
from ..extensions import db
from ..models import Region
from ..validators import ValidationError, check_text, clean_filename
from ..services.attachments import size_label
from ..services.regions import contact_offices

bp = Blueprint("home", __name__)

ERRORS = {
    400: ("请求无效", "页面已过期或请求不完整（例如缺少安全令牌），请返回后刷新页面再试。"),
    403: ("没有权限", "您的账号没有访问此页面的权限。"),
    404: ("未找到", "您要找的页面不存在，或您无权查看。"),
    405: ("请求方式不允许", "此地址不接受这种请求方式。"),
    409: ("操作冲突", "该档案已被他人处理或修改，请刷新后查看最新状态。"),
    413: ("文件过大", "上传的文件超过大小上限，请压缩后重新上传。"),
    415: ("无法预览", "该文件无法在页面中预览，请下载后查看。"),
}


PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def contacts():
    """Return the regions that publish a consultation phone, in the notice's order."""
    return db.session.scalars(select(Region).where(Region.phone.is_not(None)).order_by(Region.sort_order)).all()


@bp.get("/")
def index():
    """Show what the platform is for, how to take part and whom to ask."""
    return render_template("home/index.html", contacts=contacts())


@bp.get("/contacts")
def contact_list():
    """Show every finance office's consultation contact, city by city (Chaoyang's from 朝财会〔2019〕127号 附件1)."""
    groups: list[tuple[Region, list[Region]]] = []
    for region in contact_offices(db.session):
        chain = region.ancestors_and_self()
        # One table per city (or per unit directly under the province); the province heads its own.
        top = chain[-2] if len(chain) > 1 else chain[-1]
        if not groups or groups[-1][0] is not top:
            groups.append((top, []))
        groups[-1][1].append(region)
    return render_template("home/contacts.html", groups=groups)


@bp.get("/favicon.ico")
def favicon():
    """Serve the site's icon where browsers ask for it first."""
    response = send_from_directory(current_app.static_folder, "favicon.ico", mimetype="image/vnd.microsoft.icon",
                                   max_age=86400)
    response.headers["Cache-Control"] = "public, max-age=86400"  # not personal: the no-store default is not needed
    return response


# The search page refuses control characters in its box itself, beside the box, naming it.
FREE_TEXT = {("search.index", "q")}


@bp.before_app_request
def refuse_control_characters_in_the_address():
    """Refuse an address whose parameters carry control characters: PostgreSQL cannot even compare a NUL."""
    for name, value in request.args.items(multi=True):
        if (request.endpoint, name) in FREE_TEXT:
            continue
        try:
            check_text(name, f"地址参数“{clean_filename(name) or '?'}”", name + value)
        except ValidationError as error:
            raise AddressRefused(error.message) from None
    return None


class AddressRefused(BadRequest):
    """A 400 whose description says which parameter of the address was refused: shown as it is, page or JSON."""

    shown = True


@bp.before_app_request
def refuse_an_oversized_body():
    """Refuse a body declared over the cap before any view runs, whether or not the view would read it."""
    # The server hands on a body it refused without the body (serving.OversizedBodyTask): no view may act on that.
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None and (request.content_length or 0) > limit:
        abort(413)


def error_page(error):
    """Render an HTTP error in Chinese, revealing nothing about what was asked for."""
    title, message = ERRORS.get(error.code, ("出错了", "请稍后再试。"))
    if getattr(error, "shown", False):
        message = error.description
    back = None
    if error.code == 413:
        message = (f"上传的文件超过大小上限：单个文件不超过 {size_label(get_config().MAX_UPLOAD_BYTES)}。"
                   "请压缩图片、降低扫描分辨率（200 dpi 已足够清晰）或分页扫描后重新上传。")
        if request.path.startswith("/me/documents"):
            back = (url_for("applicant.documents"), "返回证明材料页面，重新选择文件")
    return render_template("home/error.html", code=error.code, title=title, message=message, back=back), error.code


# Files set their own (sandboxed) policy; pages run only the site's own script files, in no frame.
SAFE_HEADERS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "same-origin"),
                ("Cache-Control", "no-store"), ("Content-Security-Policy", PAGE_POLICY))


@bp.after_app_request
def safe_headers(response):
    """Forbid sniffing, framing and caching of personal pages, on every response (a header already set stays)."""
    # One look at the headers there are: five setdefaults each searched them by name, 17 against 9 µs a response.
    present = {name.lower() for name in response.headers.keys()}
    response.headers.extend([(name, value) for name, value in SAFE_HEADERS if name.lower() not in present])
    return response
