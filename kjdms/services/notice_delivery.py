"""Deliver notices by e-mail and SMS from the worker: retried with backoff, each sent at most once.

dispatch_new gives each new notice one delivery row per channel in use. deliver_due claims a due delivery
with a conditional UPDATE (two workers never both send it), commits the claim, sends, and records the
outcome. A crash after sending and before recording leaves a stale claim that is retried after
CLAIM_TIMEOUT with the same message id, so that a receiver drops the duplicate.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from ..messaging import DeliveryFailed, Mailer, SmsGateway, mask_email, mask_phone
from ..models import (DELIVERY_FAILED, DELIVERY_PENDING, DELIVERY_SENDING, DELIVERY_SENT, DELIVERY_SKIPPED,
                      Notification, NotificationDelivery, utcnow)

log = logging.getLogger(__name__)

EMAIL, SMS = "email", "sms"
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=2)
CLAIM_TIMEOUT = timedelta(minutes=10)
SMS_SIGNATURE = "【辽宁省会计人员信息采集】"


@dataclass(frozen=True)
class Channels:
    """The ways out this instance has: a mailer when SMTP is configured, an SMS gateway unless turned off."""

    mailer: Mailer | None = None
    sms: SmsGateway | None = None
    site_url: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """Return the channels in use."""
        return tuple(name for name, way in ((EMAIL, self.mailer), (SMS, self.sms)) if way is not None)


def backoff(attempts: int) -> timedelta:
    """Return how long to wait after the attempts-th failure: 30 s, doubling, at most two hours."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LAST_RETRY)


def dispatch_new(session, channels: Channels, *, limit: int = 200) -> int:
    """Give up to limit undelivered notices their delivery rows; return how many notices were dispatched."""
    notices = session.scalars(select(Notification).where(Notification.dispatched_at.is_(None))
                              .order_by(Notification.id).limit(limit)).all()
    now = utcnow()
    for notice in notices:
        for channel in channels.names:
            session.add(NotificationDelivery(notification=notice, channel=channel, status=DELIVERY_PENDING,
                                             attempts=0, next_attempt_at=now))
        notice.dispatched_at = now
    session.commit()
    return len(notices)


def _address(user, channel: str) -> str | None:
    """Return where channel reaches user now: their e-mail, or the phone of their dossier (staff: their own)."""
    if channel == EMAIL:
        return user.email
    if user.is_applicant:
        dossier = user.person.dossier if user.person is not None else None
        return dossier.phone if dossier is not None else None
    return user.phone


def _stale(notice: Notification) -> str | None:
    """Return why notice no longer needs sending (a reminder to someone who has confirmed since), or None."""
    if notice.kind == "reminder" and notice.user.is_applicant:
        dossier = notice.user.person.dossier
        if dossier is None or not dossier.to_confirm:
            return "已确认，不再提醒"
    return None


def _claim(session, delivery_id: int, now: datetime) -> bool:
    """Take delivery_id for this worker (pending and due, or claimed too long ago); commit; tell whether we got it."""
    claimed = session.execute(
        update(NotificationDelivery).where(
            NotificationDelivery.id == delivery_id,
            or_(NotificationDelivery.status == DELIVERY_PENDING,
                (NotificationDelivery.status == DELIVERY_SENDING)
                & (NotificationDelivery.claimed_at <= now - CLAIM_TIMEOUT)))
        .values(status=DELIVERY_SENDING, claimed_at=now, attempts=NotificationDelivery.attempts + 1)).rowcount
    session.commit()
    return claimed == 1


def _send(channels: Channels, delivery: NotificationDelivery, address: str) -> None:
    """Send delivery's notice to address on its channel."""
    notice = delivery.notification
    message_id = f"kjdms-notice-{notice.id}-{delivery.channel}"
    if delivery.channel == EMAIL:
        link = f"\n\n{channels.site_url.rstrip('/')}{notice.link}" if notice.link and channels.site_url else ""
        channels.mailer.send(address, notice.title, f"{notice.body}{link}\n\n（本邮件由系统自动发送，请勿回复。）",
                             message_id=message_id)
    else:
        channels.sms.send(address, f"{SMS_SIGNATURE}{notice.title}，详情请登录平台查看。", message_id=message_id)


def _finish(delivery: NotificationDelivery, status: str, error: str | None, now: datetime) -> None:
    """Record an attempt's outcome on delivery."""
    delivery.status, delivery.last_error, delivery.claimed_at = status, error, None
    if status == DELIVERY_SENT:
        delivery.sent_at = now
    elif status == DELIVERY_PENDING:
        delivery.next_attempt_at = now + backoff(delivery.attempts)


def deliver_one(session, channels: Channels, delivery_id: int, *, now: datetime | None = None) -> str | None:
    """Claim and send one delivery; return its new status, or None when another worker has it."""
    now = now or utcnow()
    if not _claim(session, delivery_id, now):
        return None
    delivery = session.get(NotificationDelivery, delivery_id)
    if delivery is None:
        return None  # its user was purged since the claim: nothing left to send
    way = channels.mailer if delivery.channel == EMAIL else channels.sms
    address = _address(delivery.notification.user, delivery.channel)
    skipped = ("未配置该发送方式" if way is None else "未填写电子邮箱" if not address and delivery.channel == EMAIL
               else "没有手机号码" if not address else _stale(delivery.notification))
    if skipped:
        _finish(delivery, DELIVERY_SKIPPED, skipped, now)
    else:
        try:
            _send(channels, delivery, address)
            _finish(delivery, DELIVERY_SENT, None, now)
        except DeliveryFailed as error:
            final = error.permanent or delivery.attempts >= MAX_ATTEMPTS
            _finish(delivery, DELIVERY_FAILED if final else DELIVERY_PENDING, str(error), now)
            masked = mask_email(address) if delivery.channel == EMAIL else mask_phone(address)
            log.warning("notice %s by %s to %s failed (attempt %d): %s", delivery.notification_id,
                        delivery.channel, masked, delivery.attempts, error)
    session.commit()
    return delivery.status


def deliver_due(session, channels: Channels, *, now: datetime | None = None, limit: int = 20) -> int:
    """Send up to limit due deliveries (new, retries after their backoff, stale claims); return how many were handled."""
    now = now or utcnow()
    due = session.scalars(select(NotificationDelivery.id).where(or_(
        (NotificationDelivery.status == DELIVERY_PENDING) & (NotificationDelivery.next_attempt_at <= now),
        (NotificationDelivery.status == DELIVERY_SENDING) & (NotificationDelivery.claimed_at <= now - CLAIM_TIMEOUT)))
        .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id).limit(limit)).all()
    return sum(1 for delivery_id in due if deliver_one(session, channels, delivery_id, now=now) is not None)

