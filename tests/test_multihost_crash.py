"""Several ``massiva run`` on one PostgreSQL, as several hosts would run them: they share a
campaign on a pool of mailboxes, are SIGKILLed at random and replaced by new ones (new
instance ids), against the simulator in its own process on loopback. Every recipient is
posted exactly once, by the simulator's own count, and each mailbox's allowance counter
is what the simulator counted for it.

A lease on PostgreSQL is taken over only when it has expired: no process can tell from
a pid whether a holder on another host (or in another container with this host's name)
is alive.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from massiva.lease import LeaseBusy, held
from massiva.store import Store
from tests.db import connect
from tests.postgres import PostgresServer
from tests.test_send_crash import (
    GRACE,
    POOL,
    Massiva,
    allowance_counted,
    claimed,
    in_flight,
    pool_campaign,
    pool_massiva,
    posts,
    simulator_url,
    slow_posts,
    vendor_ids,
)
from tests.test_sender import pec_addresses

__all__ = ["simulator_url"]  # the fixture: a simulator in its own process

RECIPIENTS = 150
RUNNING = 3  # services at once, as three hosts
KILLS = 10
LEASE_TTL = "3"  # seconds: a killed service's mailboxes are taken over this soon


def configure(massiva: Massiva, url: str) -> None:
    """The PostgreSQL database, each pool mailbox at 3 posts a second, no status server
    (three services on one machine would share its port)."""
    boxes = "".join(f'[mailboxes."{box}"]\nsend_rate = 3\n' for box in POOL)
    massiva.config.write_text(
        f'[database]\nurl = "{url}"\n{boxes}[service]\nstatus = ""\nreconcile_every = 10\n',
        encoding="utf-8",
    )


def start_service(
    massiva: Massiva, logs: Path, number: int, boxes: list[str]
) -> subprocess.Popen[str]:
    """``massiva run`` on a host that holds the passwords of ``boxes`` only (it sends from
    those), its output in a file (a pipe left unread would block it)."""
    env = {
        name: value
        for name, value in massiva.env.items()
        if not name.startswith("MASSIVA_PASSWORD_POOL")
        or any(name == f"MASSIVA_PASSWORD_{box.split('@')[0].upper()}" for box in boxes)
    }
    with (logs / f"run-{number}.log").open("w", encoding="utf-8") as log:
        return subprocess.Popen(
            [
                *massiva.args,
                "run",
                "--look-every",
                "0.2",
                "--lease-ttl",
                LEASE_TTL,
                "--grace",
                GRACE,
            ],
            env=env,
            text=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def holders(url: str) -> set[str]:
    """The instance ids (host:pid:nonce) holding a mailbox's send lease now."""
    with connect(url) as db:
        rows = db.execute("SELECT holder FROM lease WHERE name LIKE 'send:%'").fetchall()
    return {str(holder) for (holder,) in rows}


def settled(url: str) -> bool:
    """Every recipient posted and its answer recorded (none pending, sending, unknown)."""
    with connect(url) as db:
        (left,) = db.execute(
            "SELECT count(*) FROM recipient WHERE state IN ('pending', 'sending', 'unknown')"
        ).fetchone()
    return int(left) == 0


def test_services_on_one_postgresql_killed_at_random_post_everyone_once(
    tmp_path: Path, simulator_url: str, postgres: PostgresServer
) -> None:
    postgres.create_database("multihost")
    url = postgres.url("multihost")
    addresses = pec_addresses(RECIPIENTS)
    massiva = pool_massiva(tmp_path, simulator_url, url)
    configure(massiva, url)
    loaded = massiva.run("campaign", "load", str(pool_campaign(tmp_path / "c", addresses)))
    assert loaded.returncode == 0, loaded.stderr
    slow_posts(simulator_url)
    chance = random.Random(20261203)
    logs = tmp_path / "logs"
    logs.mkdir()

    started = 0
    services: list[subprocess.Popen[str]] = []

    def host() -> subprocess.Popen[str]:
        # Each host holds two of the pool's three passwords: the hosts share the
        # campaign, and each mailbox has a second host to take it over.
        nonlocal started
        started += 1
        return start_service(massiva, logs, started, chance.sample(sorted(POOL), 2))

    for _ in range(RUNNING):
        services.append(host())
    kills = orphans = 0
    instances: set[str] = set()
    deadline = time.monotonic() + 240
    try:
        while kills < KILLS and claimed(url) < RECIPIENTS:
            assert time.monotonic() < deadline, f"{kills} kills, {claimed(url)} claimed"
            time.sleep(chance.uniform(0.3, 2.5))
            now_holding = holders(url)
            instances |= now_holding
            # Mostly a service that is sending (a host dying mid-post), now and then an
            # idle one.
            sending = {int(h.split(":")[1]) for h in now_holding}
            chosen = [i for i, s in enumerate(services) if s.pid in sending]
            if not chosen or chance.random() < 0.25:
                chosen = list(range(len(services)))
            victim = services.pop(chance.choice(chosen))
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            kills += 1
            orphans += in_flight(url)
            services.append(host())  # a new host comes up
        while not (settled(url) and sum(posts(simulator_url).values()) == RECIPIENTS):
            assert time.monotonic() < deadline, f"not settled: {massiva.counts()}"
            instances |= holders(url)
            time.sleep(0.2)
    finally:
        for service in services:
            service.send_signal(signal.SIGTERM)
        for service in services:
            service.wait(timeout=60)

    stopped = [service.returncode for service in services]
    sends = httpx.get(f"{simulator_url}/_simulator/sends").json()["sends"]
    state = httpx.get(f"{simulator_url}/_simulator/state").json()
    with connect(url) as db:
        ours = {
            address: (box, message_id)
            for address, box, message_id in db.execute(
                "SELECT address, mailbox, message_id FROM recipient"
            )
        }
        left = db.execute("SELECT holder FROM lease WHERE name LIKE 'send:%'").fetchall()
        claimers = db.execute("SELECT count(DISTINCT claimed_by) FROM recipient").fetchone()[0]
    posted_by = {box: sum(1 for s in sends if s["mailbox"] == box) for box in POOL}
    print(
        f"{started} services, {kills} kills, {orphans} posts in flight when killed,"
        f" {len(instances)} instance ids held mailboxes, {claimers} claimed recipients;"
        f" posts by mailbox {posted_by}"
    )
    assert kills >= KILLS // 2, f"only {kills} kills landed before the campaign was all claimed"
    assert orphans > 0, "no kill landed between a claim and its answer"
    assert claimers >= 3, "the campaign was not shared among the services"
    assert stopped == [0] * RUNNING  # SIGTERM: in-flight requests finished, leases released
    # The services stopped released their leases (those left are the killed ones').
    assert not {int(holder.split(":")[1]) for (holder,) in left} & {s.pid for s in services}
    assert posts(simulator_url) == dict.fromkeys(addresses, 1)  # none twice, none missing
    # Each row names the mailbox the vendor sent it from, and the vendor's message id.
    assert {a: box for a, (box, _) in ours.items()} == {
        s["recipients"][0]: s["mailbox"] for s in sends
    }
    assert {a: message_id for a, (_, message_id) in ours.items()} == vendor_ids(simulator_url)
    # The allowance each mailbox counted is what it posted, by our count and the vendor's.
    assert allowance_counted(url) == {box: n for box, n in posted_by.items() if n}
    by_month = {
        m["address"]: sum(m["recipients_by_month"].values())
        for m in state["mailboxes"]
        if m["address"] in POOL
    }
    assert by_month == posted_by


@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
async def test_a_dead_looking_holder_is_waited_out_on_postgresql_only(
    database: Path | str, tmp_path: Path
) -> None:
    # A holder named after this host with a pid that does not run: on SQLite (one
    # machine) it is dead; on PostgreSQL it may be another container's live process.
    ghost = f"{__import__('socket').gethostname()}:999999999:0badc0ffee00"
    async with await Store.open(database, archive_dir=tmp_path / "archive") as store:
        with connect(store) as db:
            db.execute(
                "INSERT INTO lease (name, holder, expires_at) VALUES (?, ?, ?)",
                ("send:x@pecmassiva.com", ghost, "2999-01-01T00:00:00.000000+00:00"),
            )
        if store.engine == "sqlite":
            async with held(store, "send:x@pecmassiva.com") as lease:
                assert lease.holder != ghost
        else:
            with pytest.raises(LeaseBusy) as busy:
                async with held(store, "send:x@pecmassiva.com"):
                    pass
            assert busy.value.holder == ghost
