"""A recipient's lifecycle: every state it can be in and every way it moves, in one place.

::

                      claim (lease proven, allowance +1)
    pending ───────────────────────────────────────────────> sending
       ^  ^                                                  │  │  │
       │  └──── given back (never left: 429, no connection,  │  │  │ refused (400): nothing
       │        lease lost; allowance -1) ───────────────────┘  │  │ sent (allowance -1)
       │                                                        │  v
       │                                                        │  rejected
       │                 no answer (timeout, 5xx, dropped,      │
       │                 crash) ──────────────────────────┐     │ posted (201, message id)
       │                                                  v     v
       └── requeued: inbox searched, no receipt ──── unknown ──> sent ──acceptance──> accepted
           after the grace period; or an operator's   adopted:     │                   │
           --resend (allowance -1)                    one receipt  ├──────┬────────────┤
                                                      names it     │      │ no final   │
                                                      alone, or an │      v receipt    │
                                                      operator's   │   expired (24 h)  │
                                                      --as-sent    v      │            v
                                                               delivered <┴─> failed (receipt)

``delivered``, ``failed`` and ``rejected`` are final: no message moves them again.
``expired`` is a conclusion drawn from silence, not a receipt: a delivery or failure
receipt that comes later still moves it, because the receipt is the legal evidence.

The allowance effect of each move is applied by the database itself (the triggers of
schema migration 3) in the statement that makes the move; ``tests/test_lifecycle.py``
holds the triggers, the ``CHECK`` list and every guarded ``UPDATE`` to this module.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.StrEnum):
    """Where a recipient is."""

    PENDING = "pending"  # loaded, not yet posted
    SENDING = "sending"  # claimed, counted, its request leaving now
    SENT = "sent"  # the provider took it (message id known)
    ACCEPTED = "accepted"  # the acceptance receipt came
    DELIVERED = "delivered"  # the delivery receipt came: legal proof
    FAILED = "failed"  # not accepted, not delivered, or a virus (the reason is kept)
    REJECTED = "rejected"  # the provider refused the request: nothing sent, nothing charged
    UNKNOWN = "unknown"  # the request may or may not have left
    EXPIRED = "expired"  # no final receipt 24 h after sending


@dataclass(frozen=True)
class Transition:
    """One way a recipient moves: from any of ``sources`` to ``target``, and why."""

    name: str
    sources: frozenset[State]
    target: State
    why: str
    allowance: int  # +1: counted in the day and month; -1: given back; 0: unchanged

    def sql_guard(self) -> str:
        """The ``state IN (...)`` condition an ``UPDATE`` making this move must carry."""
        return f"state IN ({', '.join(repr(str(s)) for s in sorted(self.sources))})"


def _t(name: str, sources: set[State], target: State, why: str, allowance: int = 0) -> Transition:
    return Transition(name, frozenset(sources), target, why, allowance)


CLAIM = _t(
    "claim",
    {State.PENDING},
    State.SENDING,
    "its turn came: the lease is proven, the allowance counted",
    +1,
)
GIVEN_BACK = _t(
    "given back",
    {State.SENDING},
    State.PENDING,
    "it never left: slow down, no connection, lease lost",
    -1,
)
REFUSED = _t(
    "refused",
    {State.SENDING},
    State.REJECTED,
    "the provider refused it (400): nothing was sent",
    -1,
)
NO_ANSWER = _t(
    "no answer",
    {State.SENDING},
    State.UNKNOWN,
    "timeout, 5xx, dropped connection or a crash mid-post",
)
POSTED = _t(
    "posted",
    {State.SENDING, State.UNKNOWN},
    State.SENT,
    "201 with a message id (also late, after no answer)",
)
ADOPTED = _t("adopted", {State.UNKNOWN}, State.SENT, "one proof receipt names it, and it alone")
REQUEUED = _t(
    "requeued",
    {State.UNKNOWN},
    State.PENDING,
    "its inbox was searched: no receipt after the grace",
    -1,
)
SETTLED_SENT = _t(
    "settled as sent", {State.UNKNOWN}, State.SENT, "an operator named its message id"
)
SETTLED_RESEND = _t(
    "settled to resend", {State.UNKNOWN}, State.PENDING, "an operator decided to post it again", -1
)
ACCEPTANCE = _t("acceptance", {State.SENT}, State.ACCEPTED, "the acceptance receipt came")
DELIVERY = _t(
    "delivery",
    {State.SENT, State.ACCEPTED, State.EXPIRED},
    State.DELIVERED,
    "the delivery receipt came",
)
FAILURE = _t(
    "failure",
    {State.SENT, State.ACCEPTED, State.EXPIRED},
    State.FAILED,
    "a final failure receipt came",
)
EXPIRY = _t(
    "expiry", {State.SENT, State.ACCEPTED}, State.EXPIRED, "no final receipt 24 h after its post"
)

TRANSITIONS: tuple[Transition, ...] = (
    CLAIM,
    GIVEN_BACK,
    REFUSED,
    NO_ANSWER,
    POSTED,
    ADOPTED,
    REQUEUED,
    SETTLED_SENT,
    SETTLED_RESEND,
    ACCEPTANCE,
    DELIVERY,
    FAILURE,
    EXPIRY,
)

#: Not yet at its outcome: the story goes on by itself (a demo waits for these).
OPEN = frozenset({State.PENDING, State.SENDING, State.UNKNOWN, State.SENT, State.ACCEPTED})
#: The provider took it: it has a message id, and receipts may come.
POSTED_STATES = frozenset(
    {State.SENT, State.ACCEPTED, State.DELIVERED, State.FAILED, State.EXPIRED}
)
#: No message moves these again.
FINAL = frozenset({State.DELIVERED, State.FAILED, State.REJECTED})
#: A receipt can still move these (``expired`` too: the receipt is the evidence).
AWAITING_RECEIPT = frozenset({State.SENT, State.ACCEPTED, State.EXPIRED})
#: Not delivered, for good or for now.
UNSUCCESSFUL = frozenset({State.FAILED, State.REJECTED, State.EXPIRED})
#: What a follow-up campaign may send again.
RETRYABLE = frozenset({State.FAILED, State.EXPIRED})
#: What an operator should look at.
NEEDS_ATTENTION = frozenset({State.FAILED, State.REJECTED, State.EXPIRED, State.UNKNOWN})


def allowed(source: State, target: State) -> bool:
    """True if a recipient may move from ``source`` to ``target`` in one step."""
    return any(source in t.sources and t.target is target for t in TRANSITIONS)


def check_move(source: str, target: str) -> None:
    """Raise ``ValueError`` unless ``source`` -> ``target`` is a move of this module (a
    reconciler's decision is held to it before it is written)."""
    if source != target and not allowed(State(source), State(target)):
        raise ValueError(f"a recipient cannot move from {source} to {target}")


def ordered(states: frozenset[State]) -> tuple[State, ...]:
    """``states`` in the order :class:`State` lists them (for tables and reports)."""
    return tuple(s for s in State if s in states)
