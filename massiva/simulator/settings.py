"""Every knob of the simulator, with the defaults documented in docs/simulator.md."""

from __future__ import annotations

import fnmatch
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Literal

#: What happens to one recipient of a sending (see receipts.py for the receipts each gives).
OUTCOMES = frozenset({"delivered", "failed", "virus", "timeout", "not_accepted", "none", "reply"})

#: Domains that answer PEC: the recipients they hold get a delivery receipt, and
#: ``GET /domini_pec/{dominio}`` finds them. fnmatch globs on the lower-cased domain.
PEC_DOMAIN_PATTERNS = (
    "pecmassiva.com",
    "legalmail.it",
    "*.legalmail.it",
    "pec.it",
    "*.pec.it",
    "arubapec.it",
    "postacert.*",
    "*pec*",
    "domiciliodigitale.com",
    "*.domiciliodigitale.com",
    "casellapec.com",
)


def is_pec_domain(domain: str) -> bool:
    """True if ``domain`` is one of the well-known PEC domains above."""
    domain = domain.lower()
    return any(fnmatch.fnmatchcase(domain, pattern) for pattern in PEC_DOMAIN_PATTERNS)


@dataclass(frozen=True)
class Rule:
    """The outcome of the recipients whose lower-cased address matches ``pattern``.

    ``pattern`` is an fnmatch glob (``fail*@*``); the first matching rule wins.
    ``delay_seconds`` is when the delivery-type receipt arrives after the send; None means
    30-120 s, fixed per address (a hash), so that runs repeat exactly.
    """

    pattern: str
    outcome: str
    delay_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; one of {sorted(OUTCOMES)}")
        if self.delay_seconds is not None and self.delay_seconds < 0:
            raise ValueError("delay_seconds must be >= 0")

    def matches(self, address: str) -> bool:
        """True if this rule applies to ``address``."""
        return fnmatch.fnmatchcase(address.lower(), self.pattern.lower())


def default_rules() -> list[Rule]:
    """The built-in recipient outcomes: test addresses first, then the PEC domains.

    An address no rule matches is delivered only if its domain is certified in the
    simulator (POST /dominio); otherwise it gets nothing after the acceptance, like a
    gmail.com address in real PEC.
    """
    return [
        Rule("notaccepted*@*", "not_accepted"),
        Rule("fail*@*", "failed"),
        Rule("*@*.invalid", "failed"),
        Rule("virus*@*", "virus"),
        Rule("late*@*", "delivered", 6 * 3600),
        Rule("timeout*@*", "timeout"),
        Rule("reply*@*", "reply"),
        *(Rule(f"*@{pattern}", "delivered") for pattern in PEC_DOMAIN_PATTERNS),
    ]


def _demo_mailboxes() -> dict[str, str]:
    return {"demo@pecmassiva.com": "demo"}


@dataclass
class SimulatorSettings:
    """Configuration of one simulator; every field has a documented default.

    Changing ``inbox_order``, ``send_status_fields``, ``send_rate``, the limits or
    ``quota_limit_kib`` on a live simulator (``simulator.settings.inbox_order = ...`` or
    ``POST /_simulator/settings``) takes effect on the next request.
    """

    #: Accepted bearer tokens; None accepts any non-empty token.
    tokens: Set[str] | None = None
    #: Active PECMASSIVA boxes at start: address (also the username) -> password.
    mailboxes: dict[str, str] = field(default_factory=_demo_mailboxes)
    #: Password of the boxes provisioned through the PEC API once they are ``evasa``.
    provisioned_password: str = "demo"  # noqa: S105 -- a fake vendor's documented demo password
    #: POST /send requests per second per mailbox, in real time; None: no pacing.
    send_rate: float | None = 1.0
    #: Fraction of the interval a request may come early: 0.1 lets 0.9 s pass at 1/s.
    send_rate_tolerance: float = 0.1
    #: Recipients per mailbox per Europe/Rome calendar day; None: unlimited.
    daily_limit: int | None = 3500
    #: Recipients per mailbox per Europe/Rome calendar month; None: unlimited.
    monthly_limit: int | None = 30000
    #: HTTP status of a send refused because an allowance is spent.
    allowance_status: int = 429
    #: Largest message (subject + body + decoded attachments) POST /send takes.
    max_message_bytes: int = 100 * 1024 * 1024
    #: Order of GET /inbox pages; the vendor does not document its own.
    inbox_order: Literal["newest_first", "oldest_first"] = "newest_first"
    #: Messages per GET /inbox page.
    inbox_page_size: int = 25
    #: The box's size in KiB, the ``limit`` of GET /quota/INBOX (whose ``usage`` is what
    #: its inbox weighs): 1 GiB, as a PECMASSIVA box's.
    quota_limit_kib: int = 1024 * 1024
    #: GET /send/{code} items: "spec" {sender, recipient, data, object, message} or
    #: "live" {sender, recipient, date, subject, body} (what a public client reports).
    send_status_fields: Literal["spec", "live"] = "spec"
    #: Recipient outcomes, first match wins.
    rules: list[Rule] = field(default_factory=default_rules)
    #: Simulated seconds from documents uploaded to a box ``evasa`` (or
    #: ``documenti_errati``); also each step of a business-register communication.
    activation_delay: float = 600.0
    #: Simulated seconds from POST /dominio to ``stato: evaso``.
    domain_certification_delay: float = 3600.0
    #: ``Retry-After`` seconds of injected 429 and 503 answers.
    fault_retry_after: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError if a field is out of range."""
        if self.inbox_order not in ("newest_first", "oldest_first"):
            raise ValueError("inbox_order must be 'newest_first' or 'oldest_first'")
        if self.send_status_fields not in ("spec", "live"):
            raise ValueError("send_status_fields must be 'spec' or 'live'")
        if self.send_rate is not None and not self.send_rate > 0:
            raise ValueError("send_rate must be > 0 or None")
        if not 0 <= self.send_rate_tolerance < 1:
            raise ValueError("send_rate_tolerance must be in [0, 1)")
        for name in ("daily_limit", "monthly_limit"):
            limit = getattr(self, name)
            if limit is not None and limit < 1:
                raise ValueError(f"{name} must be >= 1 or None")
        if not 400 <= self.allowance_status <= 599:
            raise ValueError("allowance_status must be an HTTP error status")
        if self.inbox_page_size < 1 or self.max_message_bytes < 1 or self.quota_limit_kib < 1:
            raise ValueError("inbox_page_size, max_message_bytes and quota_limit_kib must be >= 1")
        if self.activation_delay < 0 or self.domain_certification_delay < 0:
            raise ValueError("delays must be >= 0")
        if self.fault_retry_after < 0:
            raise ValueError("fault_retry_after must be >= 0")
