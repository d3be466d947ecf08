"""Sending notices out of the site: an SMTP mailer and SMS gateways behind small protocols."""
from .base import DeliveryFailed, Mailer, SmsGateway
from .masking import mask_email, mask_phone, mask_text
from .sms import LoggingSmsGateway
from .smtp import SmtpMailer

__all__ = ["DeliveryFailed", "LoggingSmsGateway", "Mailer", "SmsGateway", "SmtpMailer", "mask_email", "mask_phone",
           "mask_text"]
