"""``purge_archived``: ``massiva reconcile`` frees the mailbox of the sendings whose
receipts the database keeps, verified, and warns when the mailbox is nearly full."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette

from massiva.cli import main
from massiva.config import ConfigError, load_config
from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app
from massiva.simulator.faults import Fault
from massiva.times import from_db, utcnow
from tests.cli import MAILBOX, Invoke, cli, on, real_clock_app
from tests.db import connect
from tests.sim import DEMO_MAILBOX, sim_client
from tests.test_sender import make_campaign

DELIVERED = "mario.rossi@legalmail.it"
FAILED = "fail.bianchi@legalmail.it"
LATE = "late.verdi@legalmail.it"  # its delivery receipt comes 6 hours after the post
SILENT = "luigi.verdi@gmail.com"  # no PEC box: an acceptance, then nothing, ever
ADDRESSES = [DELIVERED, FAILED, LATE, SILENT]


@pytest.fixture
def app() -> Starlette:
    return real_clock_app()


def massiva(app: Starlette, tmp_path: Path, database: Path | str, *, purge: bool | None) -> Invoke:
    """``massiva ...`` on ``database`` (either engine) with ``purge_archived`` set as
    asked (None: not written at all)."""
    setting = "" if purge is None else f"purge_archived = {str(purge).lower()}\n"
    return on(database, cli(app, tmp_path, mailbox=f"send_rate = 100.0\n{setting}"))


@pytest.fixture
def sent(app: Starlette, tmp_path: Path, database: Path | str) -> dict[str, str]:
    """The campaign sent and the simulator's clock moved on 10 minutes (every receipt
    but LATE's delivery in): address -> message id."""
    invoke = massiva(app, tmp_path, database, purge=None)
    assert invoke("campaign", "load", str(make_campaign(tmp_path / "c", ADDRESSES))).exit_code == 0
    assert invoke("send", "prova").exit_code == 0
    app.state.simulator.clock.advance(600)
    return message_ids(database)


def simulator(app: Starlette) -> Simulator:
    sim: Simulator = app.state.simulator
    return sim


def message_ids(database: Path | str) -> dict[str, str]:
    with connect(database) as db:
        return dict(db.execute("SELECT address, message_id FROM recipient").fetchall())


def in_mailbox(app: Starlette) -> set[str]:
    """The message ids whose messages the simulator's mailbox still holds."""
    inbox = simulator(app).mailboxes[MAILBOX].inbox.values()
    return {message.object.rsplit(" ", 1)[-1] for message in inbox}


def purged_at(database: Path | str) -> dict[str, str | None]:
    with connect(database) as db:
        return dict(db.execute("SELECT address, purged_at FROM recipient").fetchall())


def deletes(app: Starlette) -> list[str]:
    return [r.path for r in simulator(app).requests if r.method == "DELETE"]


def report(result: object) -> dict[str, object]:
    (found,) = json.loads(getattr(result, "stdout"))["mailboxes"]  # noqa: B009 - a Result
    assert isinstance(found, dict)
    return found


# -- off by default ------------------------------------------------------------------


def test_purge_is_off_by_default_and_deletes_nothing(
    app: Starlette, tmp_path: Path, sent: dict[str, str], database: Path | str
) -> None:
    result = massiva(app, tmp_path, database, purge=None)("reconcile", "--json")

    assert result.exit_code == 0, result.output
    found = report(result)
    assert found["purge"] == {
        "enabled": False,
        "purged": 0,
        "waiting": 0,
        "held": [],
        "postponed": False,
        "error": None,
    }
    assert in_mailbox(app) == set(sent.values())
    assert deletes(app) == []
    assert set(purged_at(database).values()) == {None}


def test_the_setting_is_off_unless_written_true_and_must_be_true_or_false(tmp_path: Path) -> None:
    config = tmp_path / "massiva.toml"
    config.write_text('[mailboxes."a@pecmassiva.com"]\npassword_env = "X"\n', encoding="utf-8")
    assert load_config(config).mailbox("a@pecmassiva.com").purge_archived is False
    assert load_config(config).mailbox("other@pecmassiva.com").purge_archived is False

    config.write_text('[mailboxes."a@pecmassiva.com"]\npurge_archived = "yes"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(config)

    assert f"{config}:\n" in str(raised.value)
    assert "mailboxes.\"a@pecmassiva.com\".purge_archived must be a bool, not 'yes'" in str(
        raised.value
    )


# -- on: what is purged, and what is not -----------------------------------------------


def test_only_sendings_at_their_outcome_with_every_receipt_kept_are_deleted(
    app: Starlette, tmp_path: Path, sent: dict[str, str], database: Path | str
) -> None:
    before = utcnow()
    result = massiva(app, tmp_path, database, purge=True)("reconcile")

    assert result.exit_code == 0, result.output
    assert "; 2 sendings purged from the mailbox;" in result.stdout
    # Delivered and failed are freed; the one waiting for its delivery receipt and the
    # one that will never get any are not.
    assert in_mailbox(app) == {sent[LATE], sent[SILENT]}
    assert sorted(deletes(app)) == sorted(f"/send/{sent[a]}" for a in (DELIVERED, FAILED))
    stamps = purged_at(database)
    assert stamps[LATE] is None and stamps[SILENT] is None
    for address in (DELIVERED, FAILED):
        stamp = stamps[address]
        assert stamp is not None and before <= from_db(stamp) <= utcnow()
    # The database is now the receipts' only copy: every final one is there, whole.
    with connect(database) as db:
        kept = db.execute(
            "SELECT r.address, x.body, x.body_sha256 FROM receipt x JOIN recipient r"
            " ON r.id = x.recipient_id WHERE x.final = 1"
        ).fetchall()
    assert sorted(address for address, _, _ in kept) == [FAILED, DELIVERED]
    for _, body, digest in kept:
        assert "X-Ricevuta:" in body
        assert hashlib.sha256(body.encode("utf-8")).hexdigest() == digest


def test_a_sending_waiting_for_its_delivery_receipt_is_purged_only_once_it_has_come(
    app: Starlette, tmp_path: Path, sent: dict[str, str], database: Path | str
) -> None:
    invoke = massiva(app, tmp_path, database, purge=True)
    assert invoke("reconcile").exit_code == 0
    assert sent[LATE] in in_mailbox(app)

    simulator(app).clock.advance(6 * 3600)  # LATE's delivery receipt comes
    result = invoke("reconcile", "--json")

    assert result.exit_code == 0, result.output
    assert report(result)["purge"]["purged"] == 1  # type: ignore[index]
    assert in_mailbox(app) == {sent[SILENT]}
    assert purged_at(database)[LATE] is not None

    simulator(app).clock.advance(24 * 3600)  # SILENT expires: no receipt, but not final
    expired = invoke("reconcile", "--json")

    assert report(expired)["moved"] == {"expired": 1}
    assert report(expired)["purge"]["purged"] == 0  # type: ignore[index]
    assert in_mailbox(app) == {sent[SILENT]}
    assert purged_at(database)[SILENT] is None


def test_a_run_purges_a_bounded_number_of_sendings_and_the_next_goes_on(
    app: Starlette,
    tmp_path: Path,
    sent: dict[str, str],
    database: Path | str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PER_RUN spares the vendor a first run on a long history (and the cron runs that
    # start meanwhile); one at a time here, checked in batches of one.
    monkeypatch.setattr("massiva.purge.PER_RUN", 1)
    monkeypatch.setattr("massiva.purge.BATCH", 1)
    invoke = massiva(app, tmp_path, database, purge=True)

    first = invoke("reconcile", "--json")

    assert report(first)["purge"]["purged"] == 1  # type: ignore[index]
    assert in_mailbox(app) == {sent[FAILED], sent[LATE], sent[SILENT]}

    second = invoke("reconcile", "--json")

    assert report(second)["purge"]["purged"] == 1  # type: ignore[index]
    assert in_mailbox(app) == {sent[LATE], sent[SILENT]}


def test_a_kept_body_that_no_longer_matches_its_hash_is_not_purged_and_says_why(
    app: Starlette, tmp_path: Path, sent: dict[str, str], database: Path | str
) -> None:
    assert massiva(app, tmp_path, database, purge=False)("reconcile").exit_code == 0
    with connect(database) as db:
        (inbox_id,) = db.execute(
            "SELECT x.inbox_id FROM receipt x JOIN recipient r ON r.id = x.recipient_id"
            " WHERE r.address = ? AND x.kind = 'delivered'",
            (DELIVERED,),
        ).fetchone()
        db.execute(
            "UPDATE receipt SET body = replace(body, 'consegnato', 'consegnat0')"
            " WHERE inbox_id = ?",
            (inbox_id,),
        )

    result = massiva(app, tmp_path, database, purge=True)("reconcile")

    assert result.exit_code == 0, result.output
    why = (
        f"the kept body of inbox {inbox_id} (delivered) no longer matches its SHA-256: the"
        " database was changed or damaged; restore it from a backup"
    )
    assert f"  not purged: {DELIVERED} (message {sent[DELIVERED]}): {why}\n" in result.stdout
    assert "; 1 sending purged from the mailbox;" in result.stdout
    assert in_mailbox(app) == {sent[DELIVERED], sent[LATE], sent[SILENT]}
    assert purged_at(database)[DELIVERED] is None

    again = massiva(app, tmp_path, database, purge=True)("reconcile", "--json")

    assert report(again)["purge"]["held"] == [  # type: ignore[index]
        {"address": DELIVERED, "message_id": sent[DELIVERED], "why": why}
    ]
    assert sent[DELIVERED] in in_mailbox(app)


def test_a_receipt_whose_body_could_not_be_fetched_waits_for_the_run_that_keeps_it(
    app: Starlette, tmp_path: Path, sent: dict[str, str], database: Path | str
) -> None:
    sim = simulator(app)
    # GET /inbox/{id} fails ("Message not found": a vendor may be wrong, and then
    # deleting would lose the receipt for good); the inbox's pages are read.
    sim.add_fault(Fault(path="/inbox/*", method="GET", kind="status", status=404, times=100))
    invoke = massiva(app, tmp_path, database, purge=True)

    first = invoke("reconcile", "--json")

    assert first.exit_code == 0, first.output
    assert report(first)["purge"]["purged"] == 0  # type: ignore[index]
    assert report(first)["purge"]["waiting"] == 2  # type: ignore[index]
    assert in_mailbox(app) == set(sent.values())

    sim.clear_faults()
    second = invoke("reconcile", "--json")

    assert report(second)["purge"]["purged"] == 2  # type: ignore[index]
    assert in_mailbox(app) == {sent[LATE], sent[SILENT]}


def test_a_delete_whose_answer_is_lost_is_done_by_the_next_run_on_its_404(
    app: Starlette, tmp_path: Path, sent: dict[str, str], database: Path | str
) -> None:
    # The vendor deletes DELIVERED's messages and the connection drops before its answer:
    # as after a run killed between its DELETE and recording it.
    lost = Fault(path=f"/send/{sent[DELIVERED]}", method="DELETE", kind="drop_after_record")
    simulator(app).add_fault(lost)
    invoke = massiva(app, tmp_path, database, purge=True)

    failed = invoke("reconcile")

    assert failed.exit_code == 4, failed.output
    assert f"purge stopped: DELETE /send/{sent[DELIVERED]}:" in failed.stdout
    assert sent[DELIVERED] not in in_mailbox(app)  # it was deleted...
    assert purged_at(database)[DELIVERED] is None  # ...and nobody knows yet

    result = invoke("reconcile", "--json")

    assert result.exit_code == 0, result.output
    assert report(result)["purge"]["purged"] >= 1  # type: ignore[index,operator]
    delete = [r.status for r in simulator(app).requests if r.path == f"/send/{sent[DELIVERED]}"]
    assert delete == [0, 404]  # dropped, then "Email not found": done
    stamps = purged_at(database)
    assert stamps[DELIVERED] is not None and stamps[FAILED] is not None


# -- the quota -------------------------------------------------------------------------


def fill_to(app: Starlette, share: float) -> tuple[int, int]:
    """Make the simulator's box so small that its inbox (every receipt due in) is about
    ``share`` of it, or a little less: (usage, limit) in KiB, as GET /quota tells them."""
    sim = simulator(app)
    sim.catch_up()
    used = math.ceil(sim.mailboxes[MAILBOX].usage_bytes / 1024)
    sim.settings.quota_limit_kib = math.ceil(used / share)
    return used, sim.settings.quota_limit_kib


def test_a_mailbox_over_80_percent_full_is_warned_about_with_exit_8_naming_the_setting(
    app: Starlette,
    tmp_path: Path,
    sent: dict[str, str],
    database: Path | str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    used, limit = fill_to(app, 0.85)

    result = massiva(app, tmp_path, database, purge=None)("reconcile")

    assert result.exit_code == 8, result.output
    warning = (
        f"{MAILBOX} is {used / limit:.0%} full ({used:,} of {limit:,} KiB), and a full"
        " mailbox refuses mail:"
        f' set purge_archived = true under [mailboxes."{MAILBOX}"] in massiva.toml to free'
        " it of the receipts kept in the database (then back the database up: it holds"
        " their only copy)"
    )
    assert result.stdout.endswith(f"\n  warning: {warning}.\n")
    assert [r.getMessage() for r in caplog.records if r.name == "massiva.purge"] == [warning]

    as_json = massiva(app, tmp_path, database, purge=None)("reconcile", "--json")

    assert as_json.exit_code == 8
    quota = report(as_json)["quota"]
    assert isinstance(quota, dict)
    assert quota["nearly_full"] is True and quota["warning"] == warning
    assert quota["fraction"] == round(used / limit, 4) > 0.8


def test_a_mailbox_at_80_percent_is_not_warned_about(
    app: Starlette, tmp_path: Path, sent: dict[str, str], database: Path | str
) -> None:
    used, limit = fill_to(app, 0.79)
    assert used / limit <= 0.8

    result = massiva(app, tmp_path, database, purge=None)("reconcile", "--json")

    assert result.exit_code == 0, result.output
    quota = report(result)["quota"]
    assert isinstance(quota, dict)
    assert quota["nearly_full"] is False and quota["warning"] is None


def test_the_quota_is_read_after_purging_so_a_box_purged_below_80_percent_is_fine(
    app: Starlette, tmp_path: Path, sent: dict[str, str], database: Path | str
) -> None:
    fill_to(app, 0.85)  # the delivery receipt carries the message: purging frees it

    result = massiva(app, tmp_path, database, purge=True)("reconcile", "--json")

    assert result.exit_code == 0, result.output
    assert report(result)["purge"]["purged"] == 2  # type: ignore[index]
    quota = report(result)["quota"]
    assert isinstance(quota, dict)
    assert quota["nearly_full"] is False and quota["fraction"] < 0.8
    assert report(result)["requests"]["quota"] == 1  # type: ignore[index]


def test_a_box_still_nearly_full_with_purge_on_says_what_fills_it(
    app: Starlette, tmp_path: Path, sent: dict[str, str], database: Path | str
) -> None:
    invoke = massiva(app, tmp_path, database, purge=True)
    assert invoke("reconcile").exit_code == 0
    fill_to(app, 1.0)  # what is left: LATE's and SILENT's acceptances

    result = invoke("reconcile")

    assert result.exit_code == 8
    assert "; purge_archived is on: what fills it is not archived yet (recipients awaiting" in (
        result.stdout
    )


def test_a_quota_that_cannot_be_read_is_said_and_the_run_is_done_all_the_same(
    app: Starlette, tmp_path: Path, sent: dict[str, str], database: Path | str
) -> None:
    simulator(app).add_fault(
        Fault(path="/quota/*", kind="status", status=400, message="mailbox unavailable", times=2)
    )
    invoke = massiva(app, tmp_path, database, purge=True)

    result = invoke("reconcile")
    as_json = invoke("reconcile", "--json")

    assert result.exit_code == 0, result.output
    assert "; quota not read: GET /quota/INBOX: HTTP 400: mailbox unavailable;" in result.stdout
    assert "; 2 sendings purged from the mailbox;" in result.stdout
    assert as_json.exit_code == 0
    assert report(as_json)["quota"] is None
    assert report(as_json)["quota_error"] == "GET /quota/INBOX: HTTP 400: mailbox unavailable"


def test_the_help_documents_the_setting_and_exit_8() -> None:
    result = CliRunner().invoke(main, ["reconcile", "--help"])

    text = " ".join(result.output.split())
    assert "purge_archived = true" in text
    assert "back it up" in text
    assert "8 when done but a mailbox is over 80% full" in text


# -- the simulator's quota -------------------------------------------------------------


async def test_the_simulators_quota_grows_with_receipts_and_shrinks_after_delete_send() -> None:
    clock = SimClock(start=utcnow(), speed=0)
    app = create_app(SimulatorSettings(send_rate=None), clock=clock)
    async with sim_client(app) as client:
        changed = await client.post("/_simulator/settings", json={"quota_limit_kib": 4096})
        assert changed.json()["quota_limit_kib"] == 4096

        async def usage() -> int:
            answer = (await client.get("/quota/INBOX", headers=DEMO_MAILBOX)).json()["data"]
            assert answer["limit"] == 4096
            return int(answer["usage"])

        empty = await usage()
        posted = await client.post(
            "/send",
            json={
                "username": "demo@pecmassiva.com",
                "password": "demo",
                "recipient": DELIVERED,
                "subject": "Avviso",
                "body": "x" * 100_000,
            },
        )
        code = posted.json()["message_id"]
        accepted = await usage()
        clock.advance(600)  # the delivery receipt, carrying the message
        delivered = await usage()
        deleted = await client.delete(f"/send/{code}", headers=DEMO_MAILBOX)
        freed = await usage()

    assert deleted.status_code == 200
    assert empty == 0 < accepted < delivered
    assert delivered - accepted >= 100  # KiB: the message it carries
    assert freed == 0
