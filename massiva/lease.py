"""Leases in the database: one sender (or reconciler) per mailbox at a time, across
processes and, on PostgreSQL, across hosts.

A lease lapses ``ttl`` after its last renewal; a live holder renews it in the background
every third of ``ttl``. Its holder is an instance id unique to the process and its host:
host, pid and a random nonce (two containers may share a host name and a pid). On
SQLite, one machine's, a holder that died on this host (even killed with SIGKILL) is
noticed at once; on PostgreSQL, shared by hosts whose pids mean nothing to each other,
only the lease's expiry frees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from massiva.store import Store, Unavailable
from massiva.times import utcnow

DEFAULT_TTL = timedelta(seconds=60)
# The part of the ttl a lease must still have for a request to leave under it; it is
# renewed every third, so a live holder always has two thirds left.
MARGIN = 1 / 6
log = logging.getLogger("massiva.lease")


class LeaseBusy(Exception):
    """Another live process holds the lease."""

    def __init__(self, name: str, holder: str) -> None:
        self.name = name
        self.holder = holder
        super().__init__(f"{name} is held by {holder}")


@dataclass
class Lease:
    """A lease this process holds."""

    store: Store
    name: str
    holder: str
    ttl: timedelta
    clock: Callable[[], datetime]
    valid_until: datetime  # the expiry last written: nobody can take it before then

    async def renew(self) -> bool:
        """Extend the lease now (after a long wait, say); False if another process took it."""
        now = self.clock()
        renewed = await self.store.outbox.renew_lease(self.name, self.holder, self.ttl, now)
        if renewed:
            self.valid_until = now + self.ttl
        return renewed

    def surely_held(self) -> bool:
        """True while no other process can have taken the lease, with a margin for a
        request about to leave: a process frozen past its lease (SIGSTOP, a suspended VM)
        finds this False on waking, before it posts anything."""
        return self.clock() + self.ttl * MARGIN < self.valid_until


def holder_name() -> str:
    """Who this process is, for the other processes to read: host, pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def dead(holder: str, store: Store) -> bool:
    """True if ``holder`` is a process of this host that no longer runs (killed, crashed):
    its lease need not be waited out. A holder on another host is never presumed dead,
    nor any holder of a PostgreSQL database: another container may have this host's
    name and reuse the pid, and its lease would be taken from it alive."""
    if store.engine != "sqlite":
        return False
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


@asynccontextmanager
async def held(
    store: Store,
    name: str,
    *,
    ttl: timedelta = DEFAULT_TTL,
    clock: Callable[[], datetime] = utcnow,
    on_lost: Callable[[], None] = lambda: None,
    holder: str | None = None,
) -> AsyncIterator[Lease]:
    """Hold the lease ``name`` for the block, as ``holder`` (default: a new
    :func:`holder_name`).

    Raises :class:`LeaseBusy` when another live process holds it. If a renewal finds the
    lease taken, ``on_lost`` is called (the claim itself also refuses a lost lease). A
    process that keeps one holder for a lease (the service, for each mailbox) takes it
    back at once after a failure that left it unreleased (the database was down).
    """
    now = clock()
    lease = Lease(store, name, holder or holder_name(), ttl, clock, now + ttl)
    taken_by = await store.outbox.acquire_lease(name, lease.holder, ttl, now)
    if taken_by is not None and dead(taken_by, store):
        taken_by = await store.outbox.acquire_lease(name, lease.holder, ttl, now, dead=(taken_by,))
    if taken_by is not None:
        raise LeaseBusy(name, taken_by)

    async def keep() -> None:
        while True:
            await asyncio.sleep(ttl.total_seconds() / 3)
            try:
                renewed = await lease.renew()
            except Unavailable as exc:  # the lease will lapse: say it is lost
                log.warning("could not renew the lease %s: %s", name, exc)
                renewed = False
            except Exception:  # a database error: the lease will lapse; say it is lost
                log.exception("could not renew the lease %s", name)
                renewed = False
            if not renewed:
                on_lost()
                return

    keeper = asyncio.create_task(keep())
    try:
        yield lease
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await store.outbox.release_lease(name, lease.holder)
