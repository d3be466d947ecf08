"""The web forms (flask-wtf: every one carries a CSRF token); the services do the real validation."""
from __future__ import annotations

from functools import cache

from babel.support import Translations
from flask import current_app
from flask_babel import get_locale
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from wtforms import (BooleanField, HiddenField, PasswordField, RadioField, SelectField,
                     SelectMultipleField, StringField, TextAreaField)
from wtforms.i18n import messages_path
from wtforms.validators import DataRequired, EqualTo, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from .local_time import local_today
from .models import Region
from .services.credit import DEFAULT_LEGAL_BASIS, MAX_FINDING, MAX_LEGAL_BASIS
from .validators import ValidationError, check_text
from .vocabulary import CREDIT_KINDS, EDUCATION_LEVELS, JOB_TYPES, QUALIFICATION_LEVELS, SCOPE_CATEGORIES


def required(label: str):
    """Return a DataRequired validator whose message names the field."""
    return DataRequired(message=f"{label}：必填")


def at_most(label: str, length: int):
    """Return a Length validator whose message names the field."""
    return Length(max=length, message=f"{label}：不能超过{length}个字符")


def control_characters_refused(form) -> bool:
    """Name each field of form that received a control or direction-override character; tell whether any did."""
    refused = False
    for field in form:
        for value in field.raw_data or ():
            try:
                check_text(field.name, str(field.label.text), value if isinstance(value, str) else "")
            except ValidationError as error:
                field.errors = [*field.errors, error.message]
                refused = True
                break
    return refused


@cache
def wtforms_messages(locale: str) -> Translations:
    """Return wtforms' own messages in locale, read from its catalogue once per process."""
    return Translations.load(messages_path(), [locale], domain="wtforms")


class Form(FlaskForm):
    """A form that refuses control and direction-override characters in every text field, naming the field."""

    class Meta(FlaskForm.Meta):
        def get_translations(self, form):
            """Return wtforms' messages in the site's language: Flask-WTF would read the catalogue on every request."""
            if not current_app.config.get("WTF_I18N_ENABLED", True) or "babel" not in current_app.extensions:
                return super().get_translations(form)
            return wtforms_messages(str(get_locale()))

    def validate(self, extra_validators=None) -> bool:
        """Validate as usual, then check every text a field received."""
        valid = super().validate(extra_validators)
        return not control_characters_refused(self) and valid


class ActionForm(Form):
    """A button that changes something: only its CSRF token."""


class ApplicantLoginForm(Form):
    """Sign-in of an accounting person by own name and ID number."""

    name = StringField("姓名", validators=[required("姓名"), at_most("姓名", 64)])
    id_number = StringField("身份证号", validators=[required("身份证号"), at_most("身份证号", 20)])
    password = PasswordField("密码", validators=[Optional()],
                             description="原系统登记人员首次登录时不填密码，登录后设置。")


class StaffLoginForm(Form):
    """Sign-in of finance-department staff by user name."""

    username = StringField("用户名", validators=[required("用户名"), at_most("用户名", 64)])
    password = PasswordField("密码", validators=[required("密码")])


class PasswordMixin:
    password = PasswordField("设置密码", validators=[required("密码")], description="至少8位，须同时包含字母和数字，不能是常见密码。")
    password_confirm = PasswordField("确认密码", validators=[
        required("确认密码"), EqualTo("password", message="确认密码：两次输入的密码不一致")])


class RegisterForm(PasswordMixin, Form):
    """Registration of a new accounting person."""

    name = StringField("姓名", validators=[required("姓名"), at_most("姓名", 64)])
    id_number = StringField("身份证号", validators=[required("身份证号"), at_most("身份证号", 20)],
                            description="18位居民身份证号码。")


class SetPasswordForm(PasswordMixin, Form):
    """A legacy person's first password."""


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def region_choices(session) -> dict[str, dict[str, str]]:
    """Return the regions a person can belong to (the leaves of the tree), grouped by city."""
    regions = session.scalars(select(Region).order_by(Region.sort_order, Region.id)).all()
    groups: dict[str, dict[str, str]] = {}
    for region in regions:
        if region.children:
            continue
        group = region.parent.name if region.parent and region.parent.parent else "辽宁省"
        groups.setdefault(group, {})[region.code] = region.name
    return groups


EMPTY = {"": "请选择"}


class BasicInformationForm(Form):
    """Every field of the dossier's basic information (辽财会〔2019〕116号 一、二)."""

    name = StringField("姓名", validators=[required("姓名"), at_most("姓名", 64)])
    phone = StringField("联系电话", validators=[Optional(), at_most("联系电话", 32)], description="手机号或带区号的固定电话。")
    education = SelectField("学历", choices={**EMPTY, **EDUCATION_LEVELS}, validators=[Optional()],
                            validate_choice=False)
    scope_category = RadioField("人员类别", choices=SCOPE_CATEGORIES, validators=[Optional()],
                                validate_choice=False)
    job_types = MultiCheckboxField("会计工作岗位", choices=JOB_TYPES, validators=[Optional()],
                                   validate_choice=False,
                                   description="从事会计工作的人员选择所从事的工作（可多选）。")
    employer_name = StringField("工作单位名称", validators=[Optional(), at_most("工作单位名称", 128)])
    employer_uscc = StringField("统一社会信用代码", validators=[Optional(), at_most("统一社会信用代码", 20)],
                                description="18位，见单位营业执照或登记证书；有此代码可不填组织机构代码。")
    employer_org_code = StringField("组织机构代码", validators=[Optional(), at_most("组织机构代码", 10)],
                                    description="9位，如 12345678-9；尚未换发统一社会信用代码的单位填写。")
    employer_region = SelectField("工作单位所在地区", validators=[Optional()], validate_choice=False,
                                  description="按单位行政隶属关系选择；市直机关、企事业单位选“市本级”。")
    household_region = SelectField("户籍所在地区", validators=[Optional()], validate_choice=False)
    is_student = BooleanField("在校学生")
    school_region = SelectField("学籍所在地区", validators=[Optional()], validate_choice=False,
                                description="在校学生填写。")
    qualification_level = SelectField("会计专业技术资格", choices=QUALIFICATION_LEVELS,
                                      validators=[Optional()], validate_choice=False)
    qualification_certificate_number = StringField("资格证书编号", validators=[Optional(), at_most("资格证书编号", 32)])
    legacy_certificate_number = StringField("原会计从业资格证书编号", validators=[Optional(), at_most("原会计从业资格证书编号", 32)],
                                            description="在原辽宁省财政会计事务系统登记过的人员填写。")
    # Text, not DateField: the service parses and names the field in Chinese when a date is wrong.
    job_started_on = StringField("从事会计工作日期", validators=[Optional(), at_most("从事会计工作日期", 10)],
                                 render_kw={"type": "date"},
                                 description="开始从事会计工作（入职会计岗位）的日期；应在此后一个月内登记。")
    information_changed_on = StringField("信息变更日期", validators=[Optional(), at_most("信息变更日期", 10)],
                                         render_kw={"type": "date"},
                                         description="信息（如工作单位、岗位）发生变化的日期；应在此后一个月内更新。")

    def bind_regions(self, session) -> None:
        """Fill the three region lists from the database."""
        choices = {**EMPTY, **region_choices(session)}
        for field in (self.employer_region, self.household_region, self.school_region):
            field.choices = choices


class UploadForm(Form):
    """One file for one attachment slot."""

    file = FileField("选择文件", description="PDF、JPEG 或 PNG；按文件内容识别格式。")
    comment = StringField("说明", validators=[Optional(), at_most("说明", 200)])


class TransitionForm(Form):
    """A workflow button with an optional or required comment, and the version it was based on."""

    comment = TextAreaField("意见", validators=[Optional(), at_most("意见", 2000)])
    fields = MultiCheckboxField("有问题的项目", validators=[Optional()], validate_choice=False)
    lock_version = HiddenField()


class CreditRecordForm(Form):
    """A finding, or its correction; the service checks every field and names the bad ones."""

    # No choice validation here: wtforms would answer in English; services.credit answers in Chinese.
    kind = SelectField("类别", choices=CREDIT_KINDS, validate_choice=False)
    finding = TextAreaField("查实情况", render_kw={"rows": 4, "maxlength": MAX_FINDING},
                            description=f"经查实的虚报、谎报内容，{MAX_FINDING}字以内。")
    legal_basis = StringField("依据", default=DEFAULT_LEGAL_BASIS, render_kw={"maxlength": MAX_LEGAL_BASIS})
    evidence = MultiCheckboxField("证据（证明材料的具体版本，按内容散列值固定）", validate_choice=False)
    found_on = StringField("查实日期", default=lambda: local_today().isoformat(), render_kw={"type": "date"})


class RevokeForm(Form):
    """A revocation: why, and on what basis."""

    reason = TextAreaField("撤销理由", render_kw={"rows": 3, "maxlength": MAX_FINDING})
    legal_basis = StringField("依据", default=DEFAULT_LEGAL_BASIS, render_kw={"maxlength": MAX_LEGAL_BASIS})


class NoticeEmailForm(Form):
    """The address a user's notices are also e-mailed to (blank: none)."""

    email = StringField("电子邮箱", validators=[Optional(), at_most("电子邮箱", 254)])
