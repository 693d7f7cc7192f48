"""``massiva reconcile`` with ``purge_archived`` killed with SIGKILL, against the simulator in
another process on loopback: every sending's receipts are in the mailbox or kept whole in
the database, never lost in both places, and the next run finishes the purge.

The simulator answers each ``DELETE /send/{code}`` late (a ``slow`` fault: it acts on the
request even when the client is gone meanwhile, as a vendor does), so a kill lands while
DELETEs are in flight.
"""

from __future__ import annotations

import hashlib
import random
import signal
import time
from pathlib import Path

import httpx

from tests.db import connect
from tests.sim import DEMO_MAILBOX
from tests.test_send_crash import Massiva, simulator_url
from tests.test_sender import make_campaign, pec_addresses

__all__ = ["simulator_url"]  # the fixture, shared with the crash tests

SENDINGS = 40
DELETE_DELAY = 0.5  # seconds the simulator takes over each DELETE /send/{code}


def prepared(tmp_path: Path, url: str) -> Massiva:
    """A campaign of SENDINGS PEC addresses sent, every receipt due in the mailbox, and
    ``purge_archived = true``: the next reconcile keeps their bodies, then purges."""
    massiva = Massiva(tmp_path, url)
    with massiva.config.open("a", encoding="utf-8") as config:
        config.write("purge_archived = true\n")
    folder = make_campaign(tmp_path / "c", pec_addresses(SENDINGS))
    assert massiva.run("campaign", "load", str(folder)).returncode == 0
    sent = massiva.run("send", "prova", "--rate", "50")
    assert sent.returncode == 0, sent.stderr
    advanced = httpx.post(f"{url}/_simulator/clock", json={"advance": 600})  # receipts in
    assert advanced.status_code == 200
    return massiva


def slow(url: str, path: str, method: str, delay: float) -> None:
    fault = {"path": path, "method": method, "kind": "slow", "delay": delay, "times": 100_000}
    assert httpx.post(f"{url}/_simulator/faults", json=fault).status_code == 200


def in_mailbox(url: str) -> set[str]:
    """The message ids of the sendings the simulator's mailbox still holds messages of."""
    found: set[str] = set()
    page, pages = 1, 1
    while page <= pages:
        answer = httpx.get(f"{url}/inbox", params={"page": page}, headers=DEMO_MAILBOX).json()
        found |= {item["object"].rsplit(" ", 1)[-1] for item in answer["data"]}
        pages, page = answer["n_of_pages"], page + 1
    return found


def sendings(tmp_path: Path) -> dict[str, str | None]:
    """message id -> purged_at, read from another connection."""
    with connect(tmp_path / "massiva.db") as db:
        return dict(db.execute("SELECT message_id, purged_at FROM recipient").fetchall())


def archived(tmp_path: Path) -> set[str]:
    """The message ids whose trusted messages are all kept with a body that matches its
    SHA-256, a final receipt among them: what the database alone can prove."""
    with connect(tmp_path / "massiva.db") as db:
        rows = db.execute(
            "SELECT message_id, final, body, body_sha256 FROM receipt"
            " WHERE recipient_id IS NOT NULL AND suspicious IS NULL"
        ).fetchall()
    whole: dict[str, bool] = {}
    final: set[str] = set()
    for code, is_final, body, digest in rows:
        ok = body is not None and hashlib.sha256(body.encode("utf-8")).hexdigest() == digest
        whole[code] = whole.get(code, True) and ok
        if is_final:
            final.add(code)
    return {code for code, ok in whole.items() if ok and code in final}


def deletes_in_flight(url: str) -> int:
    log = httpx.get(f"{url}/_simulator/requests").json()["requests"]
    return sum(1 for r in log if r["method"] == "DELETE" and r["status"] == 0)


def never_lost(tmp_path: Path, url: str) -> tuple[set[str], set[str]]:
    """Check that every sending is in the mailbox or kept whole in the database, and that
    none is recorded purged while still in the mailbox: (gone, recorded)."""
    time.sleep(DELETE_DELAY + 0.3)  # the DELETEs the killed run left in flight are done
    stamps = sendings(tmp_path)
    gone = set(stamps) - in_mailbox(url)
    recorded = {code for code, stamp in stamps.items() if stamp is not None}
    assert gone <= archived(tmp_path), "a sending's receipts were lost in both places"
    assert recorded <= gone, "a sending recorded as purged is still in the mailbox"
    return gone, recorded


def finish(massiva: Massiva, tmp_path: Path, url: str) -> None:
    """The next run, unhindered, purges everything and records it."""
    assert httpx.delete(f"{url}/_simulator/faults").status_code == 200
    result = massiva.run("reconcile")
    assert result.returncode == 0, result.stdout + result.stderr
    assert None not in sendings(tmp_path).values()
    assert in_mailbox(url) == set()
    assert archived(tmp_path) == set(sendings(tmp_path))


def test_sigkill_while_deletes_are_in_flight_loses_nothing_and_the_next_run_finishes(
    tmp_path: Path, simulator_url: str
) -> None:
    massiva = prepared(tmp_path, simulator_url)
    slow(simulator_url, "/send/*", "DELETE", DELETE_DELAY)

    process = massiva.start("reconcile")
    deadline = time.monotonic() + 60
    # Kill once a first DELETE has been answered and recorded, while later ones are in
    # flight (DELETE_DELAY leaves time to spare) and others have not left yet.
    while not (any(sendings(tmp_path).values()) and deletes_in_flight(simulator_url) > 0):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the purge never got under way"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()

    gone, recorded = never_lost(tmp_path, simulator_url)
    print(
        f"killed: {len(recorded)} purged and recorded, {len(gone - recorded)} deleted"
        f" unrecorded, {SENDINGS - len(gone)} still in the mailbox"
    )
    assert gone - recorded, "no DELETE was in flight when killed: no test"
    assert len(gone) < SENDINGS, "every DELETE had left when killed: no test"
    delete_log = httpx.get(f"{simulator_url}/_simulator/requests").json()["requests"]

    finish(massiva, tmp_path, simulator_url)

    # The ones deleted but not recorded were asked again and answered 404: done.
    log = httpx.get(f"{simulator_url}/_simulator/requests").json()["requests"]
    again = {
        r["path"].rsplit("/", 1)[-1]: r["status"]
        for r in log[len(delete_log) :]
        if r["method"] == "DELETE"
    }
    assert {code: again.get(code) for code in gone - recorded} == dict.fromkeys(
        gone - recorded, 404
    )
    assert set(again) == set(sendings(tmp_path)) - recorded


def test_sigkill_at_random_moments_of_a_run_never_loses_a_receipt_in_both_places(
    tmp_path: Path, simulator_url: str
) -> None:
    massiva = prepared(tmp_path, simulator_url)
    slow(simulator_url, "/inbox/*", "GET", 0.05)  # the bodies are fetched, kept...
    slow(simulator_url, "/send/*", "DELETE", DELETE_DELAY)  # ...then the sendings deleted
    chance = random.Random(20261203)

    kills: list[int] = []  # sendings gone from the mailbox after each kill
    # Six kills, more (up to 20) while none has landed mid-purge: on a loaded machine the
    # start-up is slow and early kills land before the purge begins.
    while len(kills) < 6 or (len(kills) < 20 and not any(0 < n < SENDINGS for n in kills)):
        process = massiva.start("reconcile")
        time.sleep(chance.uniform(0.5, 3.0))
        if process.poll() is not None:
            process.communicate()
            break  # it finished first: nothing left to purge
        process.send_signal(signal.SIGKILL)
        process.communicate()
        gone, _ = never_lost(tmp_path, simulator_url)
        kills.append(len(gone))

    print(f"random kills: sendings gone from the mailbox after each: {kills}")
    finish(massiva, tmp_path, simulator_url)
    assert len(kills) >= 2, f"only {len(kills)} kills landed before the purge was done"
    assert any(0 < n < SENDINGS for n in kills), "no kill landed while purging: no test"
