"""The back office's Content-Security-Policy: the site's own, plus a fresh script nonce per response."""
from __future__ import annotations

import secrets

from flask import g

from ..views.home import PAGE_POLICY

# The site's policy (script and style only from its own files, nothing from elsewhere, no framing): the pages that
# show staff- and applicant-entered text, such as the audit log, cannot run script stored in it. Flask-Admin's
# inline handlers are data- attributes read by static/back_office.js (templates/admin/ overrides the macros that
# wrote them); an inline <script> a template cannot do without carries this response's nonce (csp_nonce()), as
# Flask-Admin's own tags do. A nonce is never reused, so a tag written into stored text cannot know it.
BACK_OFFICE_POLICY = PAGE_POLICY.replace("script-src 'self';", "script-src 'self' 'nonce-{nonce}';")


def csp_nonce() -> str:
    """Return this request's script nonce, made on first use (128 random bits, one per response)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def back_office_policy() -> str:
    """Return the policy of this response, naming this request's nonce."""
    return BACK_OFFICE_POLICY.format(nonce=csp_nonce())
