"""Async clients of Openapi's PEC and PEC Massiva APIs, and nothing else.

This package knows nothing of campaigns or SQLite. Typical use::

    async with ApiSession(SANDBOX.sending, token) as session:
        box = PecMassivaClient(session, "me@pecmassiva.com", password)
        result = await box.send("someone@pec.it", "Subject", "<p>Body</p>")
"""

from massiva.api.errors import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    BadAnswer,
    InsufficientCredit,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    ServerError,
    UnsendableRequest,
)
from massiva.api.hosts import PRODUCTION, SANDBOX, Hosts
from massiva.api.models import (
    Attachment,
    Communication,
    Domain,
    InboxItem,
    InboxMessage,
    InboxPage,
    Mailbox,
    Quota,
    Receipts,
    SendResult,
)
from massiva.api.pec import PecClient
from massiva.api.pecmassiva import PecMassivaClient
from massiva.api.session import ApiSession, Repeat, RetryPolicy

__all__ = [
    "PRODUCTION",
    "SANDBOX",
    "ApiConnectionError",
    "ApiError",
    "ApiSession",
    "Attachment",
    "AuthenticationError",
    "BadAnswer",
    "Communication",
    "Domain",
    "Hosts",
    "InboxItem",
    "InboxMessage",
    "InboxPage",
    "InsufficientCredit",
    "InvalidRequest",
    "Mailbox",
    "NotFound",
    "OutcomeUnknown",
    "PecClient",
    "PecMassivaClient",
    "Quota",
    "RateLimited",
    "Receipts",
    "Repeat",
    "RetryPolicy",
    "SendResult",
    "ServerError",
    "UnsendableRequest",
]
