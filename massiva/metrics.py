"""What ``massiva run`` shows Prometheus: a thin typed layer over ``prometheus_client``.

:class:`Metrics` keeps the last value of every figure in plain dictionaries and is itself
the one collector of its own :class:`~prometheus_client.CollectorRegistry` (never the
process-wide default registry: two services, or two tests, in one process stay apart).
Collecting at scrape time lets the reconcile lag be computed when Prometheus asks, lets
a campaign or mailbox be forgotten whole, and writes no ``_created`` series.

Every series, one line each (docs/deploy.md lists them for operators):

- ``massiva_posts_total{mailbox,outcome}``: posts by outcome (sent, rejected, unknown,
  given_back); every outcome of a mailbox starts at 0 when the mailbox is first counted;
- ``massiva_allowance_used{mailbox,period}`` and ``massiva_allowance_left{...}``: the
  plan's allowance in the Europe/Rome ``day`` and ``month``;
- ``massiva_recipients{campaign,state}``: recipients per state, every state written;
- ``massiva_reconcile_last_success_timestamp_seconds{mailbox}``: when the last
  successful reconcile read the inbox (Unix time);
- ``massiva_reconcile_lag_seconds{mailbox}``: seconds since then, at scrape time;
- ``massiva_unknowns_waiting{mailbox}``: posts of unknown outcome awaiting an inbox search;
- ``massiva_mailbox_state{mailbox,state}``: 1 for the mailbox's current state, 0 for the
  others;
- ``massiva_build_info{version}``: always 1.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from massiva import __version__
from massiva.lifecycle import State
from massiva.times import utcnow

#: What a post can come to, as ``massiva_posts_total`` counts it.
OUTCOMES: tuple[str, ...] = ("sent", "rejected", "unknown", "given_back")
#: What a mailbox of the service can be doing, as ``massiva_mailbox_state`` shows it.
MAILBOX_STATES: tuple[str, ...] = (
    "sending",
    "idle",
    "waiting_window",
    "waiting_allowance",
    "stopped",
)
_RECIPIENT_STATES: tuple[str, ...] = tuple(str(state) for state in State)


def _check(kind: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}: expected one of {', '.join(allowed)}")


def _count(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, not {value}")


class Metrics(Collector):
    """The service's figures, kept for the next scrape; safe to use from several threads.

    ``clock`` gives the moment a scrape happens (the reconcile lag is measured to it).
    """

    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._posts: dict[str, dict[str, int]] = {}
        self._allowance: dict[str, tuple[int, int, int, int]] = {}
        self._recipients: dict[str, dict[str, int]] = {}
        self._reconciled: dict[str, datetime] = {}
        self._unknowns: dict[str, int] = {}
        self._states: dict[str, str] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def post(self, mailbox: str, outcome: str, *, count: int = 1) -> None:
        """Count ``count`` posts from ``mailbox`` that came to ``outcome`` (see OUTCOMES)."""
        _check("outcome", outcome, OUTCOMES)
        _count("count", count)
        with self._lock:
            counts = self._posts.setdefault(mailbox, dict.fromkeys(OUTCOMES, 0))
            counts[outcome] += count

    def allowance(
        self, mailbox: str, *, day_used: int, day_limit: int, month_used: int, month_limit: int
    ) -> None:
        """Record how much of its plan's day and month allowances ``mailbox`` has used."""
        for name, value in (
            ("day_used", day_used),
            ("day_limit", day_limit),
            ("month_used", month_used),
            ("month_limit", month_limit),
        ):
            _count(name, value)
        with self._lock:
            self._allowance[mailbox] = (day_used, day_limit, month_used, month_limit)

    def recipients(self, campaign: str, counts: Mapping[str, int]) -> None:
        """Record a campaign's recipients per state.

        Every state is written: one missing from ``counts`` (a ``GROUP BY`` has no row for
        an empty state) is 0, so a state that empties drops to 0 instead of keeping its
        last count.
        """
        for state, value in counts.items():
            _check("recipient state", state, _RECIPIENT_STATES)
            _count(f"the count of {state}", value)
        with self._lock:
            self._recipients[campaign] = {s: counts.get(s, 0) for s in _RECIPIENT_STATES}

    def forget_campaign(self, campaign: str) -> None:
        """Stop showing ``campaign`` (finished, or no longer active); unknown is fine."""
        with self._lock:
            self._recipients.pop(campaign, None)

    def reconciled(self, mailbox: str, at: datetime) -> None:
        """Record a successful reconcile of ``mailbox`` that read its inbox at ``at``.

        An earlier moment than the one recorded is ignored: a slow reconcile that finishes
        after a newer one does not make the mailbox look staler than it is.
        """
        if at.tzinfo is None:
            raise ValueError("refusing a naive datetime: its zone is unknown")
        with self._lock:
            known = self._reconciled.get(mailbox)
            if known is None or at > known:
                self._reconciled[mailbox] = at

    def unknowns(self, mailbox: str, waiting: int) -> None:
        """Record how many posts of ``mailbox`` wait, of unknown outcome, for an inbox search."""
        _count("waiting", waiting)
        with self._lock:
            self._unknowns[mailbox] = waiting

    def mailbox_state(self, mailbox: str, state: str) -> None:
        """Record what ``mailbox`` is doing now (see MAILBOX_STATES)."""
        _check("mailbox state", state, MAILBOX_STATES)
        with self._lock:
            self._states[mailbox] = state

    def forget_mailbox(self, mailbox: str) -> None:
        """Stop showing every series of ``mailbox`` (taken out of the pools)."""
        with self._lock:
            for table in (
                self._posts,
                self._allowance,
                self._reconciled,
                self._unknowns,
                self._states,
            ):
                table.pop(mailbox, None)

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of every series."""
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """Every series as it is now (called by the registry at each scrape)."""
        now = self._clock()
        with self._lock:
            families = list(self._families(now))
        yield from families

    def _families(self, now: datetime) -> Iterator[Metric]:
        posts = CounterMetricFamily(
            "massiva_posts", "Posts to the vendor, by outcome.", labels=["mailbox", "outcome"]
        )
        for mailbox, counts in sorted(self._posts.items()):
            for outcome, value in counts.items():
                posts.add_metric([mailbox, outcome], value)
        yield posts

        used = GaugeMetricFamily(
            "massiva_allowance_used",
            "Posts counted in the plan's Europe/Rome day and month.",
            labels=["mailbox", "period"],
        )
        left = GaugeMetricFamily(
            "massiva_allowance_left",
            "Posts the plan still allows in the Europe/Rome day and month.",
            labels=["mailbox", "period"],
        )
        for mailbox, (day_used, day_limit, month_used, month_limit) in sorted(
            self._allowance.items()
        ):
            for period, spent, limit in (
                ("day", day_used, day_limit),
                ("month", month_used, month_limit),
            ):
                used.add_metric([mailbox, period], spent)
                left.add_metric([mailbox, period], max(limit - spent, 0))
        yield used
        yield left

        recipients = GaugeMetricFamily(
            "massiva_recipients",
            "Recipients of a campaign, by state.",
            labels=["campaign", "state"],
        )
        for campaign, by_state in sorted(self._recipients.items()):
            for state, value in by_state.items():
                recipients.add_metric([campaign, state], value)
        yield recipients

        last = GaugeMetricFamily(
            "massiva_reconcile_last_success_timestamp_seconds",
            "When the last successful reconcile read the mailbox's inbox (Unix time).",
            labels=["mailbox"],
        )
        lag = GaugeMetricFamily(
            "massiva_reconcile_lag_seconds",
            "Seconds since the last successful reconcile read the mailbox's inbox.",
            labels=["mailbox"],
        )
        for mailbox, at in sorted(self._reconciled.items()):
            last.add_metric([mailbox], at.timestamp())
            lag.add_metric([mailbox], max((now - at).total_seconds(), 0.0))
        yield last
        yield lag

        unknowns = GaugeMetricFamily(
            "massiva_unknowns_waiting",
            "Posts of unknown outcome waiting for an inbox search.",
            labels=["mailbox"],
        )
        for mailbox, waiting in sorted(self._unknowns.items()):
            unknowns.add_metric([mailbox], waiting)
        yield unknowns

        doing = GaugeMetricFamily(
            "massiva_mailbox_state",
            "1 for what the mailbox is doing now, 0 for the other states.",
            labels=["mailbox", "state"],
        )
        for mailbox, current in sorted(self._states.items()):
            for state in MAILBOX_STATES:
                doing.add_metric([mailbox, state], 1 if state == current else 0)
        yield doing

        info = GaugeMetricFamily(
            "massiva_build_info", "The massiva version serving these figures.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
