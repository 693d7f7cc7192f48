"""The error of a report or a follow-up campaign."""

from __future__ import annotations


class ReportError(ValueError):
    """The report (or follow-up) cannot be made; the message says what, where and how to
    fix it."""


class NothingToRetry(ReportError):
    """The campaign has no recipient in the states asked for (or all are in follow-ups)."""
