"""The service's figures, read back as Prometheus reads them: the text exposition parsed by
``prometheus_client``'s own parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from massiva import __version__
from massiva.metrics import Metrics

MAILBOX = "ufficio@pecmassiva.com"
OTHER = "sede2@pecmassiva.com"
START = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: Metrics) -> Samples:
    """Every sample of a scrape, keyed by name and sorted labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def of(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def test_posts_are_counted_per_mailbox_and_outcome_starting_at_zero() -> None:
    metrics = Metrics()
    metrics.post(MAILBOX, "sent")
    metrics.post(MAILBOX, "sent")
    metrics.post(MAILBOX, "given_back", count=3)
    metrics.post(OTHER, "unknown")
    posts = of(scrape(metrics), "massiva_posts_total")
    assert posts == {
        (("mailbox", MAILBOX), ("outcome", "sent")): 2,
        (("mailbox", MAILBOX), ("outcome", "rejected")): 0,
        (("mailbox", MAILBOX), ("outcome", "unknown")): 0,
        (("mailbox", MAILBOX), ("outcome", "given_back")): 3,
        (("mailbox", OTHER), ("outcome", "sent")): 0,
        (("mailbox", OTHER), ("outcome", "rejected")): 0,
        (("mailbox", OTHER), ("outcome", "unknown")): 1,
        (("mailbox", OTHER), ("outcome", "given_back")): 0,
    }


def test_posts_is_a_counter_without_created_series() -> None:
    metrics = Metrics()
    metrics.post(MAILBOX, "sent")
    text = metrics.render().decode()
    assert "# TYPE massiva_posts_total counter" in text
    assert "_created" not in text


def test_an_unknown_outcome_or_a_negative_count_is_refused() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match=r"^unknown outcome 'delivered': expected one of sent, "):
        metrics.post(MAILBOX, "delivered")
    with pytest.raises(ValueError, match=r"^count must be >= 0, not -1$"):
        metrics.post(MAILBOX, "sent", count=-1)
    assert of(scrape(metrics), "massiva_posts_total") == {}


def test_allowance_used_and_left_per_period_never_below_zero() -> None:
    metrics = Metrics()
    metrics.allowance(MAILBOX, day_used=30, day_limit=100, month_used=2100, month_limit=2000)
    samples = scrape(metrics)
    assert of(samples, "massiva_allowance_used") == {
        (("mailbox", MAILBOX), ("period", "day")): 30,
        (("mailbox", MAILBOX), ("period", "month")): 2100,
    }
    assert of(samples, "massiva_allowance_left") == {
        (("mailbox", MAILBOX), ("period", "day")): 70,
        (("mailbox", MAILBOX), ("period", "month")): 0,
    }


def test_recipients_write_every_state_and_a_state_that_empties_drops_to_zero() -> None:
    metrics = Metrics()
    metrics.recipients("avvisi", {"pending": 40, "sending": 2})
    metrics.recipients("solleciti", {"delivered": 7})
    metrics.recipients("avvisi", {"sent": 42})  # a GROUP BY: pending and sending are gone
    recipients = of(scrape(metrics), "massiva_recipients")
    avvisi = {dict(k)["state"]: v for k, v in recipients.items() if dict(k)["campaign"] == "avvisi"}
    assert avvisi == {
        "pending": 0,
        "sending": 0,
        "sent": 42,
        "accepted": 0,
        "delivered": 0,
        "failed": 0,
        "rejected": 0,
        "unknown": 0,
        "expired": 0,
    }
    assert recipients[(("campaign", "solleciti"), ("state", "delivered"))] == 7


def test_a_forgotten_campaign_is_no_longer_shown() -> None:
    metrics = Metrics()
    metrics.recipients("avvisi", {"pending": 1})
    metrics.recipients("solleciti", {"pending": 1})
    metrics.forget_campaign("avvisi")
    metrics.forget_campaign("never-shown")
    campaigns = {dict(k)["campaign"] for k in of(scrape(metrics), "massiva_recipients")}
    assert campaigns == {"solleciti"}


def test_an_unknown_recipient_state_is_refused_and_nothing_is_written() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match=r"^unknown recipient state 'lost': expected one of "):
        metrics.recipients("avvisi", {"pending": 3, "lost": 1})
    with pytest.raises(ValueError, match=r"^the count of pending must be >= 0, not -3$"):
        metrics.recipients("avvisi", {"pending": -3})
    assert of(scrape(metrics), "massiva_recipients") == {}


def test_reconcile_lag_is_measured_at_scrape_time() -> None:
    now = [START]
    metrics = Metrics(clock=lambda: now[0])
    metrics.reconciled(MAILBOX, START - timedelta(seconds=30))
    first = scrape(metrics)
    assert of(first, "massiva_reconcile_lag_seconds") == {(("mailbox", MAILBOX),): 30}
    assert of(first, "massiva_reconcile_last_success_timestamp_seconds") == {
        (("mailbox", MAILBOX),): (START - timedelta(seconds=30)).timestamp()
    }
    now[0] = START + timedelta(minutes=20)  # no reconcile since: the lag grows on its own
    assert of(scrape(metrics), "massiva_reconcile_lag_seconds") == {(("mailbox", MAILBOX),): 1230}


def test_an_older_reconcile_finishing_late_does_not_make_the_mailbox_look_staler() -> None:
    metrics = Metrics(clock=lambda: START)
    metrics.reconciled(MAILBOX, START - timedelta(seconds=10))
    metrics.reconciled(MAILBOX, START - timedelta(seconds=900))
    assert of(scrape(metrics), "massiva_reconcile_lag_seconds") == {(("mailbox", MAILBOX),): 10}


def test_a_naive_reconcile_moment_is_refused() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match=r"^refusing a naive datetime: its zone is unknown$"):
        metrics.reconciled(MAILBOX, datetime(2026, 3, 10, 8, 0))


def test_unknowns_waiting_per_mailbox() -> None:
    metrics = Metrics()
    metrics.unknowns(MAILBOX, 4)
    metrics.unknowns(MAILBOX, 1)
    metrics.unknowns(OTHER, 0)
    assert of(scrape(metrics), "massiva_unknowns_waiting") == {
        (("mailbox", MAILBOX),): 1,
        (("mailbox", OTHER),): 0,
    }


def test_mailbox_state_is_one_for_the_current_state_only() -> None:
    metrics = Metrics()
    metrics.mailbox_state(MAILBOX, "sending")
    metrics.mailbox_state(MAILBOX, "waiting_allowance")
    states = of(scrape(metrics), "massiva_mailbox_state")
    assert {dict(k)["state"]: v for k, v in states.items()} == {
        "sending": 0,
        "idle": 0,
        "waiting_window": 0,
        "waiting_allowance": 1,
        "stopped": 0,
    }
    with pytest.raises(ValueError, match=r"^unknown mailbox state 'paused': expected one of "):
        metrics.mailbox_state(MAILBOX, "paused")


def test_a_forgotten_mailbox_loses_every_series() -> None:
    metrics = Metrics(clock=lambda: START)
    for mailbox in (MAILBOX, OTHER):
        metrics.post(mailbox, "sent")
        metrics.allowance(mailbox, day_used=1, day_limit=2, month_used=1, month_limit=2)
        metrics.reconciled(mailbox, START)
        metrics.unknowns(mailbox, 1)
        metrics.mailbox_state(mailbox, "idle")
    metrics.forget_mailbox(MAILBOX)
    shown = {
        dict(labels).get("mailbox")
        for (name, labels) in scrape(metrics)
        if name != "massiva_build_info"
    }
    assert shown == {OTHER}


def test_each_metrics_has_its_own_registry_and_the_default_one_is_untouched() -> None:
    first, second = Metrics(), Metrics()
    first.post(MAILBOX, "sent")
    assert of(scrape(second), "massiva_posts_total") == {}
    assert REGISTRY.get_sample_value("massiva_posts_total", {"mailbox": MAILBOX}) is None
    assert of(scrape(first), "massiva_build_info") == {(("version", __version__),): 1}
