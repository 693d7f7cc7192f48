"""Every final receipt's body is kept as received, with its SHA-256, by default; one that
cannot be fetched now is fetched by a later reconcile, never lost."""

from __future__ import annotations

import hashlib

from massiva.reconcile import BODY_TRIES
from massiva.simulator import Fault, SimClock, Simulator
from massiva.store import Store
from tests.conftest import Run, Send
from tests.contract import ContractTransport
from tests.db import connect

MAILBOX = "demo@pecmassiva.com"
ADDRESSES = ["mario.rossi@legalmail.it", "fail.bianchi@legalmail.it"]


def kept(store: Store) -> list[tuple[str, str | None, str | None, int]]:
    """(kind, body, body_sha256, body_tries) of every receipt, by inbox id."""
    with connect(store) as conn:
        return conn.execute(
            "SELECT kind, body, body_sha256, body_tries FROM receipt ORDER BY inbox_id"
        ).fetchall()


async def test_final_receipts_are_kept_byte_exact_with_their_hash(
    send: Send, run: Run, clock: SimClock, simulator: Simulator, store: Store
) -> None:
    await send(ADDRESSES)
    clock.advance(600)

    summary = await run()

    served = {m.id: m.body for m in simulator.mailboxes[MAILBOX].inbox.values()}
    with connect(store) as conn:
        rows = conn.execute("SELECT inbox_id, kind, body, body_sha256 FROM receipt").fetchall()
    # The acceptances and the final receipts: every body, as received.
    assert len(rows) == 4 and summary.bodies == 4
    for inbox_id, _, body, digest in rows:
        assert body == served[inbox_id]  # as received, nothing rewritten
        assert digest == hashlib.sha256(body.encode("utf-8")).hexdigest()
    assert summary.bodies_missing == 0


async def test_a_body_that_cannot_be_fetched_now_is_fetched_by_a_later_run(
    send: Send,
    run: Run,
    clock: SimClock,
    simulator: Simulator,
    contract: ContractTransport,
    store: Store,
) -> None:
    contract.undocumented.add(502)
    await send(ADDRESSES)
    clock.advance(600)
    simulator.add_fault(Fault(path="/inbox/*", method="GET", kind="status", status=502, times=4))

    first = await run()
    second = await run()

    assert (first.bodies_missing, first.receipts["delivered"]) == (4, 1)  # the subject's word
    assert (second.backfilled, second.bodies_missing) == (4, 0)
    rows = kept(store)
    assert sorted((kind, tries) for kind, _, _, tries in rows) == [
        ("accepted", 1),
        ("accepted", 1),
        ("delivered", 1),
        ("not_delivered", 1),
    ]
    assert all(body is not None and digest for _, body, digest, _ in rows)


async def test_a_body_the_vendor_never_gives_is_tried_a_bounded_number_of_times(
    send: Send,
    run: Run,
    clock: SimClock,
    simulator: Simulator,
    contract: ContractTransport,
    store: Store,
) -> None:
    contract.undocumented.add(502)
    await send(ADDRESSES[:1])
    clock.advance(600)
    simulator.add_fault(Fault(path="/inbox/*", method="GET", kind="status", status=502, times=999))

    runs = [await run() for _ in range(BODY_TRIES + 2)]

    # The acceptance and the delivery receipt: tried BODY_TRIES times each, then no more.
    assert [r.bodies for r in runs][-3:] == [2, 0, 0]
    assert runs[-1].bodies_missing == 2  # still said: never silently dropped
    assert [(body, tries) for _, body, _, tries in kept(store)] == [
        (None, BODY_TRIES),
        (None, BODY_TRIES),
    ]
