"""``massiva send`` killed with SIGKILL at random moments, and run twice at once, against
the simulator in another process on loopback: every recipient is posted exactly once, by
the simulator's own count.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.db import connect
from tests.test_api_session import free_port
from tests.test_cli_simulator import wait_for_port
from tests.test_sender import MAILBOX, make_campaign, pec_addresses
from tests.test_unknowns import campaign_folder

RECIPIENTS = 150
EXIT_REFUSED_CODE = 1  # massiva's exit code when the run stopped because of another
GRACE = "2"  # seconds before an unknown post with no receipt is sent again


@pytest.fixture
def simulator_url() -> Iterator[str]:
    """``massiva simulator`` in its own process, pacing lifted (the sender still paces)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "massiva", "simulator", "--port", str(port), "--send-rate", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


class Massiva:
    """Runs ``massiva`` commands on one database (``massiva.db`` in ``tmp_path``, or the
    PostgreSQL one at ``database``), against the simulator."""

    def __init__(self, tmp_path: Path, url: str, database: Path | str | None = None) -> None:
        self.database = database or tmp_path / "massiva.db"
        self.config = tmp_path / "massiva.toml"
        where = f'url = "{database}"' if isinstance(database, str) else 'path = "massiva.db"'
        self.config.write_text(
            f"[database]\n{where}\n"
            '[mailboxes."demo@pecmassiva.com"]\npassword_env = "DEMO_PASSWORD"\n',
            encoding="utf-8",
        )
        self.args = [
            sys.executable,
            "-m",
            "massiva",
            "--config",
            str(self.config),
            "--api-url",
            url,
            "--sending-url",
            url,
        ]
        self.env = {**os.environ, "OPENAPI_TOKEN": "any-token", "DEMO_PASSWORD": "demo"}

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self.args, *args],
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.args, *args], env=self.env, text=True, capture_output=True, timeout=120
        )

    def counts(self) -> dict[str, int]:
        result = self.run("campaign", "status", "prova", "--json")
        assert result.returncode == 0, result.stderr
        counts: dict[str, int] = json.loads(result.stdout)["counts"]
        return counts


def claimed(database: Path | str) -> int:
    """Recipients that have left ``pending`` (read from another connection)."""
    with connect(database) as db:
        count: int = db.execute(
            "SELECT count(*) FROM recipient WHERE state != 'pending'"
        ).fetchone()[0]
    return count


def posts(url: str) -> dict[str, int]:
    found: dict[str, int] = httpx.get(f"{url}/_simulator/posts").json()["posts"]
    return found


def vendor_ids(url: str) -> dict[str, str]:
    """address -> the message id of the vendor's (only) sending to it."""
    sends = httpx.get(f"{url}/_simulator/sends").json()["sends"]
    return {send["recipients"][0]: send["message_id"] for send in sends}


def in_flight(database: Path | str) -> int:
    """Recipients claimed whose answer was not recorded (read from another connection)."""
    with connect(database) as db:
        count: int = db.execute(
            "SELECT count(*) FROM recipient WHERE state = 'sending'"
        ).fetchone()[0]
    return count


def finish(massiva: Massiva) -> None:
    """Run ``send`` to the end: unknown posts wait out their grace period."""
    for _ in range(20):
        result = massiva.run("send", "prova", "--rate", "50", "--grace", GRACE)
        # 4: a post of unknown outcome waits out its grace period.
        assert result.returncode in (0, 4), f"exit {result.returncode}: {result.stderr}"
        counts = massiva.counts()
        if counts["pending"] == counts["unknown"] == counts["sending"] == 0:
            return
        time.sleep(float(GRACE) + 0.2)
    pytest.fail(f"recipients left unsent: {massiva.counts()}")


def slow_posts(url: str) -> None:
    """The simulator answers each POST /send 0.1 s after it arrives: at 8 a second, a
    post is in flight most of the time, and most kills catch one."""
    fault = {"path": "/send", "method": "POST", "kind": "slow", "delay": 0.1, "times": 10_000}
    assert httpx.post(f"{url}/_simulator/faults", json=fault).status_code == 200


def kill_at_random(
    massiva: Massiva, tmp_path: Path, chance: random.Random, times: int
) -> tuple[int, int]:
    """Start ``send`` and SIGKILL it mid-send, ``times`` times or until it finishes first;
    the kills that landed, and the posts they caught in flight (claimed, answer unread)."""
    kills = orphans = 0
    while kills < times:
        before = claimed(massiva.database)
        process = massiva.start("send", "prova", "--rate", "8", "--grace", GRACE)
        # Kill mid-send: once this run has claimed someone (start-up time varies with the
        # machine's load), at a random moment within the next few posts.
        deadline = time.monotonic() + 60
        while claimed(massiva.database) == before and process.poll() is None:
            assert time.monotonic() < deadline, "the sender never claimed anyone"
            time.sleep(0.02)
        time.sleep(chance.uniform(0.0, 0.4))
        if process.poll() is not None:
            process.communicate()
            break  # it finished before the kill: nothing left to send
        process.send_signal(signal.SIGKILL)
        process.communicate()
        kills += 1
        orphans += in_flight(massiva.database)
    return kills, orphans


def test_sigkill_at_random_moments_never_posts_a_recipient_twice(
    tmp_path: Path, simulator_url: str
) -> None:
    folder = make_campaign(tmp_path / "campagna", pec_addresses(RECIPIENTS))
    massiva = Massiva(tmp_path, simulator_url)
    assert massiva.run("campaign", "load", str(folder)).returncode == 0
    chance = random.Random(20261122)
    slow_posts(simulator_url)

    kills, orphans = kill_at_random(massiva, tmp_path, chance, 20)
    finish(massiva)

    counted = posts(simulator_url)
    print(f"random kills: {kills} kills, {orphans} posts in flight when killed")
    assert kills >= 20, f"only {kills} kills landed before the campaign was all sent"
    assert orphans > 0, "no kill landed between a claim and its answer"
    assert counted == dict.fromkeys(pec_addresses(RECIPIENTS), 1)
    assert massiva.counts()["sent"] == RECIPIENTS


def test_two_senders_started_at_once_never_post_a_recipient_twice(
    tmp_path: Path, simulator_url: str
) -> None:
    folder = make_campaign(tmp_path / "campagna", pec_addresses(10))
    massiva = Massiva(tmp_path, simulator_url)
    assert massiva.run("campaign", "load", str(folder)).returncode == 0

    both = [massiva.start("send", "prova", "--rate", "20") for _ in range(2)]
    outcomes = [(p.wait(timeout=120), p.communicate()[1]) for p in both]
    finish(massiva)

    assert posts(simulator_url) == dict.fromkeys(pec_addresses(10), 1)
    for code, stderr in outcomes:
        assert code == 0 or (code == 1 and "another massiva send" in stderr), stderr


def look_alike_addresses(pairs: int) -> list[str]:
    """The sending mailbox itself, and addresses that end one another."""
    found = [MAILBOX]
    for i in range(pairs):
        found += [f"u{i}@legalmail.it", f"o'u{i}@legalmail.it", f"a&u{i}@legalmail.it"]
    return found


def test_sigkill_on_a_campaign_of_look_alike_addresses_never_posts_twice_nor_adopts_a_wrong_id(
    tmp_path: Path, simulator_url: str
) -> None:
    # One subject for everyone, the mailbox among the recipients, addresses that end
    # one another: a receipt matched by "the address appears in it" gives one its
    # neighbour's message id, and the real one is posted again after the grace period.
    addresses = look_alike_addresses(30)
    folder = campaign_folder(tmp_path / "campagna", addresses)
    massiva = Massiva(tmp_path, simulator_url)
    assert massiva.run("campaign", "load", str(folder)).returncode == 0
    # The answers of 15 posts are lost after the vendor recorded them: unknowns at once.
    fault = {"path": "/send", "method": "POST", "kind": "drop_after_record", "times": 15}
    assert httpx.post(f"{simulator_url}/_simulator/faults", json=fault).status_code == 200
    chance = random.Random(20261203)
    slow_posts(simulator_url)

    kills, caught = kill_at_random(massiva, tmp_path, chance, 12)
    finish(massiva)

    with connect(massiva.database) as db:
        ours = dict(db.execute("SELECT address, message_id FROM recipient").fetchall())
        counted = db.execute("SELECT used FROM allowance WHERE period LIKE 'M%'").fetchone()[0]
    print(f"look-alikes: {kills} kills, {caught} posts in flight when killed")
    assert posts(simulator_url) == dict.fromkeys(addresses, 1)
    assert ours == vendor_ids(simulator_url)
    assert counted == len(addresses)


def slow_campaign(folder: Path, addresses: list[str]) -> Path:
    """A campaign whose body takes about a tenth of a second to render: the time
    between a claim and its request is long enough to freeze a sender inside it."""
    make_campaign(folder, addresses)
    spec = folder / "campaign.toml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace(
            'body = "<p>Gentile {{ nome }}</p>"',
            'body = "{% for i in range(1000) %}{% for j in range(1500) %}{% endfor %}'
            '{% endfor %}<p>Gentile {{ nome }}</p>"',
        ),
        encoding="utf-8",
    )
    return folder


def test_a_sender_frozen_past_its_lease_does_not_post_on_waking(
    tmp_path: Path, simulator_url: str, database: Path | str
) -> None:
    addresses = pec_addresses(8)
    massiva = Massiva(tmp_path, simulator_url, database)
    loaded = massiva.run("campaign", "load", str(slow_campaign(tmp_path / "c", addresses)))
    assert loaded.returncode == 0, loaded.stderr
    frozen = massiva.start("send", "prova", "--rate", "2", "--lease-ttl", "2", "--grace", "1")
    deadline = time.monotonic() + 60
    while in_flight(massiva.database) == 0:  # it claimed the next one and renders its body
        assert frozen.poll() is None and time.monotonic() < deadline, frozen.stderr
        time.sleep(0.005)
    frozen.send_signal(signal.SIGSTOP)
    with connect(massiva.database) as db:
        (address,) = db.execute("SELECT address FROM recipient WHERE state = 'sending'").fetchone()
    time.sleep(0.3)
    assert address not in posts(simulator_url), "frozen after its request left: no test"

    time.sleep(2.5)  # its lease lapses; its claim is older than the grace period
    other = massiva.start("send", "prova", "--rate", "2", "--grace", "1")
    while address not in posts(simulator_url):  # the other found nothing, and posted it
        assert other.poll() is None and time.monotonic() < deadline + 60, other.stderr
        time.sleep(0.05)
    frozen.send_signal(signal.SIGCONT)
    _, woken = frozen.communicate(timeout=60)
    other.communicate(timeout=120)
    finish(massiva)

    assert frozen.returncode == EXIT_REFUSED_CODE
    assert "lease lapsed or another process took it" in woken, woken
    assert MAILBOX in woken, woken  # which mailbox of the pool stopped
    assert posts(simulator_url) == dict.fromkeys(addresses, 1)


POOL = {f"pool{i}@pecmassiva.com": f"segreta-{i}" for i in (1, 2, 3)}
POOL_RECIPIENTS = 120
# PostgreSQL: a killed sender's mailboxes are free again this soon (seconds).
LEASE = ("--lease-ttl", "3")


def pool_campaign(folder: Path, addresses: list[str]) -> Path:
    """A campaign sending from the three mailboxes of ``POOL``."""
    make_campaign(folder, addresses)
    spec = folder / "campaign.toml"
    boxes = ", ".join(f'"{box}"' for box in POOL)
    spec.write_text(
        spec.read_text(encoding="utf-8").replace(
            f'mailbox = "{MAILBOX}"', f"mailboxes = [{boxes}]"
        ),
        encoding="utf-8",
    )
    return folder


def pool_massiva(tmp_path: Path, url: str, database: Path | str | None = None) -> Massiva:
    """``massiva`` on a pool campaign: the simulator hosts the three mailboxes, and each
    password is in its default variable (MASSIVA_PASSWORD_POOL1, ...)."""
    for address, password in POOL.items():
        added = httpx.post(
            f"{url}/_simulator/mailboxes", json={"address": address, "password": password}
        )
        assert added.status_code == 200, added.text
    massiva = Massiva(tmp_path, url, database)
    massiva.env |= {
        f"MASSIVA_PASSWORD_{address.split('@')[0].upper()}": password
        for address, password in POOL.items()
    }
    return massiva


def senders_of(database: Path | str) -> set[int]:
    """The process ids that hold a mailbox's send lease (or held it when they died)."""
    with connect(database) as db:
        holders = db.execute("SELECT holder FROM lease WHERE name LIKE 'send:%'").fetchall()
    return {int(holder.split(":")[1]) for (holder,) in holders}


def kill_pairs_at_random(
    massiva: Massiva, tmp_path: Path, chance: random.Random
) -> tuple[int, int, int, int]:
    """Start two ``send`` at once, and SIGKILL each at its own random moment mid-send;
    again, until no recipient is left pending. The rounds, those in which the two split
    the pool (each held some of its mailboxes: rare, the first to start takes them all),
    the kills that landed and the posts they caught in flight (claimed, answer unread)."""
    rounds = shared = kills = orphans = 0
    while claimed(massiva.database) < POOL_RECIPIENTS:
        assert rounds < 60, f"not done after {rounds} rounds: {massiva.counts()}"
        rounds += 1
        before = claimed(massiva.database)
        lease = LEASE if isinstance(massiva.database, str) else ()
        pair = [
            massiva.start("send", "prova", "--rate", "15", "--grace", GRACE, *lease) for _ in "ab"
        ]
        deadline = time.monotonic() + 60
        while claimed(massiva.database) == before and any(p.poll() is None for p in pair):
            assert time.monotonic() < deadline, "the senders never claimed anyone"
            time.sleep(0.02)
        started = time.monotonic()
        holders: set[int] = set()
        for process, at in sorted(
            ((p, chance.uniform(0.0, 0.5)) for p in pair), key=lambda item: item[1]
        ):
            time.sleep(max(0.0, started + at - time.monotonic()))
            holders |= senders_of(massiva.database)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            _, stderr = process.communicate()
            # Killed (-9), done (0), unknowns waiting (4), or every mailbox held by the
            # other (1, "another massiva send").
            assert process.returncode in (-9, 0, 4) or (
                process.returncode == EXIT_REFUSED_CODE and "another massiva send" in stderr
            ), f"exit {process.returncode}: {stderr}"
        orphans += in_flight(massiva.database)
        shared += {p.pid for p in pair} <= holders
        if isinstance(massiva.database, str):
            # PostgreSQL takes no lease over before it lapses (a pid says nothing of
            # another host): the killed senders' lapse before the next round.
            time.sleep(float(LEASE[1]) + 0.5)
    return rounds, shared, kills, orphans


def allowance_counted(database: Path | str) -> dict[str, int]:
    """Each mailbox's allowance counter of the month(s), as the database holds it."""
    with connect(database) as db:
        rows = db.execute(
            "SELECT mailbox, sum(used) FROM allowance WHERE period LIKE 'M%' GROUP BY mailbox"
        ).fetchall()
    return {str(box): int(used) for box, used in rows if used}


def test_a_pool_of_three_killed_at_random_and_run_twice_at_once_posts_everyone_once(
    tmp_path: Path, simulator_url: str, database: Path | str
) -> None:
    addresses = pec_addresses(POOL_RECIPIENTS)
    massiva = pool_massiva(tmp_path, simulator_url, database)
    loaded = massiva.run("campaign", "load", str(pool_campaign(tmp_path / "c", addresses)))
    assert loaded.returncode == 0, loaded.stderr
    chance = random.Random(20261212)
    slow_posts(simulator_url)

    rounds, shared, kills, orphans = kill_pairs_at_random(massiva, tmp_path, chance)
    finish(massiva)

    sends = httpx.get(f"{simulator_url}/_simulator/sends").json()["sends"]
    state = httpx.get(f"{simulator_url}/_simulator/state").json()
    with connect(massiva.database) as db:
        ours = {
            address: (status, box, message_id)
            for address, status, box, message_id in db.execute(
                "SELECT address, state, mailbox, message_id FROM recipient"
            )
        }
    from_box = {send["recipients"][0]: send["mailbox"] for send in sends}
    posted_by = {box: sum(1 for s in sends if s["mailbox"] == box) for box in POOL}
    print(
        f"pool of 3: {rounds} rounds of two senders ({shared} split the pool), {kills}"
        f" kills, {orphans} posts in flight when killed; posts by mailbox {posted_by}"
    )
    assert kills >= 8, f"only {kills} kills landed before the campaign was all sent"
    assert orphans > 0, "no kill landed between a claim and its answer"
    assert posts(simulator_url) == dict.fromkeys(addresses, 1)  # none twice, none missing
    assert {address: row[0] for address, row in ours.items()} == dict.fromkeys(addresses, "sent")
    # Each row names the mailbox the vendor sent it from, and the vendor's message id.
    assert {address: row[1] for address, row in ours.items()} == from_box
    assert set(from_box.values()) == set(POOL)
    assert {address: row[2] for address, row in ours.items()} == vendor_ids(simulator_url)
    # The allowance each mailbox counted is what it posted, by our count and the vendor's.
    assert allowance_counted(massiva.database) == posted_by
    by_month = {
        m["address"]: sum(m["recipients_by_month"].values())
        for m in state["mailboxes"]
        if m["address"] in POOL
    }
    assert by_month == posted_by
