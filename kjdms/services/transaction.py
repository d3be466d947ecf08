"""One service call, one transaction: commit it all, or roll it all back."""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy.orm.exc import StaleDataError


class ConflictError(Exception):
    """Someone else changed the dossier since it was read; nothing was saved."""

    def __init__(self):
        super().__init__("该档案已被他人处理或修改，您的操作未保存，请刷新后查看最新状态")


@contextmanager
def committing(session):
    """Commit what the block did, or roll it all back; a stale dossier version becomes a ConflictError."""
    try:
        yield
        session.commit()
    except StaleDataError as error:
        session.rollback()
        raise ConflictError() from error
    except BaseException:
        session.rollback()
        raise
