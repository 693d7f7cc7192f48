"""Injected faults: errors, rate limits, slowness and dropped connections, on demand."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import httpx

FAULT_KINDS = frozenset({"status", "rate_limit", "slow", "drop_after_record", "drop_before_record"})


@dataclass
class Fault:
    """A fault for the next ``times`` requests matching ``path`` (and ``method``, if given).

    ``path`` is an exact path or an fnmatch glob (``/send*``). Faults are consumed in the
    order they were added: a request takes the first one that matches.

    - ``status``: answer ``status`` with a vendor-shaped error body; nothing is handled.
    - ``rate_limit``: answer 429 with ``Retry-After``; nothing is handled.
      (``message``, if given, replaces the error message of these two.)
    - ``slow``: wait ``delay`` real seconds, then handle the request normally.
    - ``drop_after_record``: handle the request (a POST /send is recorded, its receipts
      scheduled), then drop the connection after the status line, before the body.
    - ``drop_before_record``: drop the connection the same way without handling anything.
    """

    path: str
    method: str | None = None
    kind: str = "status"
    times: int = 1
    status: int | None = None
    delay: float = 0.0
    message: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.times < 1:
            raise ValueError("times must be >= 1")
        if self.kind == "status" and (self.status is None or not 400 <= self.status <= 599):
            raise ValueError("a 'status' fault needs an error status (400-599)")
        if self.delay < 0 or not math.isfinite(self.delay):
            raise ValueError("delay must be a finite number >= 0")
        if self.method is not None:
            self.method = self.method.upper()

    def matches(self, method: str, path: str) -> bool:
        """True if this fault applies to the request."""
        if self.method is not None and self.method != method:
            return False
        return fnmatch.fnmatchcase(path, self.path)


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by the app to drop a connection mid-response.

    Over a real socket uvicorn closes the connection and the client sees httpx's own
    RemoteProtocolError; in process (httpx.ASGITransport re-raises app exceptions) the
    client sees this subclass of it, so the same ``except`` clause works in both.
    """
