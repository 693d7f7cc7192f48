"""PostgreSQL restarted under ``massiva run`` (``pg_ctl restart``): the service says so in
a line, pauses the mailbox, takes it back when the server is up and goes on; nobody is
posted twice or left out, and nothing is posted whose claim was not committed.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx

from massiva.store.postgres import POOL_WAIT_S
from tests.db import connect
from tests.postgres import PostgresServer
from tests.test_send_crash import Massiva, posts, simulator_url, slow_posts, vendor_ids
from tests.test_sender import MAILBOX, make_campaign, pec_addresses

__all__ = ["simulator_url"]  # the fixture: a simulator in its own process

RECIPIENTS = 40


def test_a_database_restart_pauses_the_service_which_then_goes_on(
    tmp_path: Path, simulator_url: str
) -> None:
    server = PostgresServer.start(tmp_path / "postgres")  # its own: this test restarts it
    try:
        server.create_database("restarted")
        url = server.url("restarted")
        massiva = Massiva(tmp_path, simulator_url, url)
        massiva.config.write_text(
            f'[database]\nurl = "{url}"\n'
            f'[mailboxes."{MAILBOX}"]\npassword_env = "DEMO_PASSWORD"\nsend_rate = 5\n'
            '[service]\nstatus = ""\n',
            encoding="utf-8",
        )
        addresses = pec_addresses(RECIPIENTS)
        loaded = massiva.run("campaign", "load", str(make_campaign(tmp_path / "c", addresses)))
        assert loaded.returncode == 0, loaded.stderr
        slow_posts(simulator_url)  # a post is in flight most of the time
        log = tmp_path / "run.log"
        with log.open("w", encoding="utf-8") as out:
            service = subprocess.Popen(
                [*massiva.args, "run", "--look-every", "0.2", "--grace", "2"],
                env=massiva.env,
                text=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        try:
            while sum(posts(simulator_url).values()) < RECIPIENTS // 4:
                assert service.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            # Down longer than a statement waits for a connection (POOL_WAIT_S).
            server.restart(down_for=POOL_WAIT_S + 3)
            restarted_after = sum(posts(simulator_url).values())
            while not done(url, simulator_url):
                assert service.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=60)
        said = log.read_text(encoding="utf-8")
        with connect(url) as db:
            ours = dict(db.execute("SELECT address, message_id FROM recipient").fetchall())
            (counted,) = db.execute(
                "SELECT used FROM allowance WHERE period LIKE 'M%' AND mailbox = ?", (MAILBOX,)
            ).fetchone()
    finally:
        server.stop()

    print(f"restarted after {restarted_after} posts; the service said:\n{said}")
    assert restarted_after < RECIPIENTS, "the campaign was sent before the restart: no test"
    assert service.returncode == 0, said
    where = url.replace(url.split("?")[0].rsplit("/", 1)[0], "postgresql://postgres@")
    assert f"the database at {where} is unavailable" in said
    assert f"sending from {MAILBOX} paused" in said or "looking again in" in said
    assert "Traceback" not in said  # said in a line, not a crash
    assert posts(simulator_url) == dict.fromkeys(addresses, 1)  # none twice, none missing
    assert ours == vendor_ids(simulator_url)  # each post is the one its row recorded
    sent = httpx.get(f"{simulator_url}/_simulator/state").json()["mailboxes"]
    by_vendor = next(
        sum(m["recipients_by_month"].values()) for m in sent if m["address"] == MAILBOX
    )
    assert counted == by_vendor == RECIPIENTS


def done(url: str, simulator_url: str) -> bool:
    """Every recipient posted once and its answer recorded."""
    with connect(url) as db:
        (left,) = db.execute(
            "SELECT count(*) FROM recipient WHERE state IN ('pending', 'sending', 'unknown')"
        ).fetchone()
    return int(left) == 0 and sum(posts(simulator_url).values()) >= RECIPIENTS
