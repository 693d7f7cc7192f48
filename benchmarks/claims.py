"""Claims a second: PostgreSQL with 1, 4 and 16 concurrent claimers beside SQLite with 1.

A paced mailbox claims once a second; these figures show the headroom for hundreds of
mailboxes. Each measurement loads a campaign of ``--recipients`` recipients (default
20,000) into a fresh database through the store API (``campaigns.create``,
``add_recipients``), then every claimer takes recipients with ``store.outbox.claim`` as
fast as it can until none is left. A claimer is one mailbox holding its own lease (its
``send:<mailbox>`` lease, as ``massiva send`` takes it), all claimers claiming from the
same campaign: the multi-host shape, where PostgreSQL's ``FOR UPDATE SKIP LOCKED`` lets
them take the next rows at once. The allowance limits are far above what a run claims.

Two shapes of concurrent claimers, both shown:
  - hosts: each claimer a process of its own with its own Store (its own connection
    pool), as hosts (or processes) sharing one database are: the realistic shape;
  - one host: one process, one Store shared by one task a mailbox (its pool of at most
    ``massiva.store.postgres.POOL_SIZE`` connections), as one ``massiva send`` of a pool
    of mailboxes runs them.
Every claimer runs in a child process, SQLite's one included, started and connected
before the clock starts; a run's rate is its claims over the time from the first
claimer's start to the last one's end. CPU time: the claimers' processes (all their
threads: SQLite's work is there) and, on PostgreSQL, the server's processes (read from
/proc: the throwaway server's, or a local server's at ``--database-url``), since there
the server does the database's work.

Printed for each run: claims a second and their ratio to SQLite's one claimer; the wall
time; the CPU seconds of the claimers and of the server, and both together a claim; the
rate over the first and over the last tenth of the claims (a claim whose cost grows as
the campaign is claimed shows there); the fewest and the most claims of one claimer.

Then every run is checked: each recipient claimed exactly once (no id returned twice,
every one returned), as many rows ``sending`` as claims and none ``pending``, and each
mailbox's allowance counters (day and month) equal to its claims. A run that fails this
stops the benchmark.

PostgreSQL: the server at ``--database-url`` (a fresh database a measurement, created
and dropped there), else a throwaway one started with tests/postgres.py (fsync and
synchronous_commit off: no commit waits for the disk, nor does SQLite's, in WAL mode
with synchronous=NORMAL). Each loaded database is ANALYZEd before the clock starts, as
autovacuum does within a minute of a load: a campaign sends for hours.

Run: python benchmarks/claims.py [--recipients 20000] [--claimers 1,4,16]
     [--shape both|hosts|one-host] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from massiva.dburl import masked
from massiva.store import Claimed, NewRecipient, Stopped, Store
from tests.db import connect
from tests.postgres import PostgresServer

DAY, MONTH = "D2026-03-10", "M2026-03"
LIMIT = 10**9  # the allowances: never what stops a run
BATCH = 5_000  # recipients an add_recipients statement
CAMPAIGN = "bench-claims"


# ---- PostgreSQL for the benchmarks (reconcile.py and report_export.py use it too) ------


def cpu_of(pid: int) -> float:
    """CPU seconds of process ``pid`` and of its children, living or reaped (Linux):
    for a postmaster, the whole server."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = stat.rpartition(")")[2].split()
        # fields[1] is the parent; [11:15] utime, stime, and the reaped children's.
        if int(entry) == pid or int(fields[1]) == pid:
            total += sum(int(f) for f in fields[11:15])
    return total / ticks


class Postgres:
    """A PostgreSQL server for a benchmark: the one at ``url``, or a throwaway one
    (tests/postgres.py) started on entering and stopped on leaving."""

    def __init__(self, url: str | None) -> None:
        self._url = url
        self._server: PostgresServer | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._names = itertools.count(1)
        self.postmaster: int | None = None

    def __enter__(self) -> Postgres:
        if self._url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="bench-pg-")
            self._server = PostgresServer.start(Path(self._tmp.name))
            pid = (self._server.data / "postmaster.pid").read_text().split("\n", 1)[0]
            self.postmaster = int(pid)
        else:
            self.postmaster = self._local_postmaster(self._url)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def described(self) -> str:
        """The server, for the printout (a password masked)."""
        if self._url is None:
            return "a throwaway server (tests/postgres.py: fsync and synchronous_commit off)"
        return masked(self._url)

    @staticmethod
    def _local_postmaster(url: str) -> int | None:
        """The server's postmaster, when it runs on this machine (its CPU is then read
        from /proc): the parent of our own backend, if that is a postgres process here."""
        host = psycopg.conninfo.conninfo_to_dict(url).get("host") or "/"
        if not (str(host).startswith("/") or host in ("localhost", "127.0.0.1", "::1")):
            return None
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        try:
            parent = int(Path(f"/proc/{row[0]}/stat").read_text().rpartition(")")[2].split()[1])
            name = Path(f"/proc/{parent}/comm").read_text().strip()
        except (OSError, ValueError):
            return None
        return parent if name in ("postgres", "postmaster") else None

    def server_cpu(self) -> float | None:
        """The server's CPU seconds so far, if it can be read here."""
        return cpu_of(self.postmaster) if self.postmaster is not None else None

    def _admin(self, statement: sql.Composed) -> None:
        if self._server is not None:
            self._server.execute(statement)
            return
        assert self._url is not None
        with psycopg.connect(self._url, autocommit=True) as conn:
            conn.execute(statement)

    def _url_of(self, name: str) -> str:
        if self._server is not None:
            return self._server.url(name)
        assert self._url is not None
        return urlsplit(self._url)._replace(path="/" + quote(name, safe="")).geturl()

    @contextlib.contextmanager
    def database(self, prefix: str) -> Iterator[str]:
        """The URL of a new, empty database, dropped when the block ends."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield self._url_of(name)
        finally:
            self._admin(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# ---- the claimers (a child process) ----------------------------------------------------


async def claim_all(store: Store, campaign: int, mailbox: str, now: datetime) -> dict[str, Any]:
    """Claim as ``mailbox`` until nothing is left: the ids claimed, and when."""
    ids: list[int] = []
    times: list[float] = []
    while True:
        got = await store.outbox.claim(
            campaign,
            mailbox=mailbox,
            lease=f"send:{mailbox}",
            holder=f"bench:{mailbox}",
            day=DAY,
            month=MONTH,
            daily_limit=LIMIT,
            monthly_limit=LIMIT,
            now=now,
            wall=now,
        )
        if isinstance(got, Stopped):
            if got.why != "done":
                raise RuntimeError(f"{mailbox} stopped: {got}")
            return {"mailbox": mailbox, "ids": ids, "times": times}
        assert isinstance(got, Claimed)
        ids.append(got.id)
        times.append(time.monotonic())


async def claimer(spec: dict[str, Any]) -> None:
    """One process: its Store, a lease for each of its mailboxes; says ``ready``, waits
    for a line on stdin, then claims with one task a mailbox and prints what it did."""
    now = datetime.now(UTC)
    archive = Path(spec["archive"])
    async with await Store.open(spec["target"], archive_dir=archive) as store:
        for mailbox in spec["mailboxes"]:
            other = await store.outbox.acquire_lease(
                f"send:{mailbox}", f"bench:{mailbox}", timedelta(hours=1), now
            )
            assert other is None, other
        # A pooled connection a mailbox opened before the clock starts (PostgreSQL).
        await asyncio.gather(*(store.outbox.usage(m, DAY, MONTH) for m in spec["mailboxes"]))
        print("ready", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":  # the benchmark gave up (its stdin closed)
            return
        cpu, start = time.process_time(), time.monotonic()
        done = await asyncio.gather(
            *(claim_all(store, spec["campaign"], m, now) for m in spec["mailboxes"])
        )
        end, cpu = time.monotonic(), time.process_time() - cpu
    print(json.dumps({"start": start, "end": end, "cpu": cpu, "mailboxes": done}), flush=True)


# ---- one measurement -------------------------------------------------------------------


@dataclass
class Run:
    engine: str
    claimers: int
    shape: str
    claims: int
    wall: float
    client_cpu: float
    server_cpu: float | None
    first_tenth: float  # claims a second over the first tenth of the claims
    last_tenth: float
    spread: tuple[int, int]  # fewest and most claims of one claimer

    @property
    def rate(self) -> float:
        return self.claims / self.wall


def mailboxes(n: int) -> list[str]:
    return [f"box{i:02d}@pecmassiva.com" for i in range(n)]


async def load(target: Path | str, archive: Path, recipients: int, boxes: list[str]) -> int:
    """A campaign of ``recipients`` pending recipients, through the store API; its id."""
    async with await Store.open(target, archive_dir=archive) as store:
        campaign = await store.campaigns.create(
            name=CAMPAIGN,
            folder=".",
            mailboxes=boxes,
            subject="Avviso",
            body="<p>x</p>",
            content_hash="-",
            csv_hash="-",
        )
        for first in range(0, recipients, BATCH):
            batch = [
                NewRecipient(
                    row=n + 2,
                    address=f"utente{n:07d}@legalmail.it",
                    fields={"codice": f"CL-{n:07d}"},
                    subject="Avviso",
                    attachment=None,
                )
                for n in range(first, min(first + BATCH, recipients))
            ]
            await store.campaigns.add_recipients(campaign.id, batch)
        if store.engine == "postgresql":
            async with store.database.transaction() as db:
                await db.execute("ANALYZE")
        return campaign.id


def start_claimers(specs: list[dict[str, Any]]) -> list[subprocess.Popen[str]]:
    """The claimer processes, each connected and holding its leases (said ``ready``)."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--claimer", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for spec in specs
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"a claimer did not start (it said {line!r})")
    except BaseException:
        for proc in procs:
            proc.kill()
            proc.wait()
        raise
    return procs


def check(target: Path | str, recipients: int, claimed: dict[str, list[int]]) -> None:
    """Each recipient claimed exactly once, and counted once in its mailbox's allowance."""
    every = [i for ids in claimed.values() for i in ids]
    total = len(every)
    assert len(set(every)) == total, f"{total - len(set(every))} recipient(s) claimed twice"
    assert total == recipients, f"{total} claims of {recipients} recipients"
    with connect(target) as db:
        states = dict(db.execute("SELECT state, count(*) FROM recipient GROUP BY state").fetchall())
        assert states == {"sending": total}, states
        owners = dict(
            db.execute("SELECT claimed_by, count(*) FROM recipient GROUP BY claimed_by").fetchall()
        )
        assert owners == {f"bench:{m}": len(ids) for m, ids in claimed.items() if ids}, owners
        used = {
            (str(m), str(p)): int(u)
            for m, p, u in db.execute("SELECT mailbox, period, used FROM allowance").fetchall()
        }
    for period in (DAY, MONTH):
        counted = sum(u for (_, p), u in used.items() if p == period)
        assert counted == total, f"{period}: {counted} counted, {total} claimed"
    for mailbox, ids in claimed.items():
        for period in (DAY, MONTH):
            assert used.get((mailbox, period), 0) == len(ids), (mailbox, period, used)


def measure(
    target: Path | str, archive: Path, recipients: int, claimers: int, shape: str, pg: Postgres
) -> Run:
    """Load, claim everything with ``claimers`` claimers of ``shape``, check."""
    boxes = mailboxes(claimers)
    campaign = asyncio.run(load(target, archive, recipients, boxes))
    base = {"target": str(target), "archive": str(archive), "campaign": campaign}
    if shape == "hosts":
        specs = [{**base, "mailboxes": [box]} for box in boxes]
    else:
        specs = [{**base, "mailboxes": boxes}]
    procs = start_claimers(specs)
    server = pg.server_cpu() if isinstance(target, str) else None
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"a claimer failed (exit {proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    server_after = pg.server_cpu() if isinstance(target, str) else None
    claimed = {m["mailbox"]: m["ids"] for r in results for m in r["mailboxes"]}
    check(target, recipients, claimed)
    start = min(r["start"] for r in results)
    end = max(r["end"] for r in results)
    times = sorted(t for r in results for m in r["mailboxes"] for t in m["times"])
    tenth = max(1, len(times) // 10)
    return Run(
        engine="postgresql" if isinstance(target, str) else "sqlite",
        claimers=claimers,
        shape=shape,
        claims=len(times),
        wall=end - start,
        client_cpu=sum(r["cpu"] for r in results),
        server_cpu=(
            server_after - server if server is not None and server_after is not None else None
        ),
        first_tenth=tenth / (times[tenth - 1] - start),
        last_tenth=tenth / (end - times[-tenth - 1]),
        spread=(min(map(len, claimed.values())), max(map(len, claimed.values()))),
    )


def describe(run: Run, baseline: Run) -> str:
    shape = {"hosts": f"{run.claimers} process(es)", "one-host": "1 process"}[run.shape]
    server = f"{run.server_cpu:8.2f}" if run.server_cpu is not None else f"{'n/a':>8}"
    cpu = run.client_cpu + (run.server_cpu or 0)
    ratio = run.rate / baseline.rate
    return (
        f"{run.engine:10} {run.claimers:>3} {shape:14} {run.rate:9,.0f} {ratio:6.2f}"
        f" {run.wall:7.2f} {run.client_cpu:8.2f} {server} {cpu * 1e3 / run.claims:8.3f}"
        f" {run.first_tenth:8,.0f} {run.last_tenth:8,.0f}  {run.spread[0]}-{run.spread[1]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--claimers", default="1,4,16", help="PostgreSQL's, comma-separated")
    parser.add_argument("--shape", default="both", choices=("both", "hosts", "one-host"))
    parser.add_argument("--database-url", help="a PostgreSQL server's (else a throwaway one)")
    parser.add_argument("--claimer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.claimer:
        asyncio.run(claimer(json.loads(args.claimer)))
        return
    counts = [int(n) for n in args.claimers.split(",")]
    shapes = ["hosts", "one-host"] if args.shape == "both" else [args.shape]
    plan = [(n, s) for s in shapes for n in counts if n > 1 or s == shapes[0]]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp, Postgres(args.database_url) as pg:
        print(f"{args.recipients:,} recipients a run; PostgreSQL: {pg.described}")
        runs.append(
            measure(Path(tmp) / "claims.db", Path(tmp) / "archive", args.recipients, 1, "hosts", pg)
        )
        for claimers, shape in plan:
            with pg.database("bench_claims") as url:
                archive = Path(tmp) / "archive"
                runs.append(measure(url, archive, args.recipients, claimers, shape, pg))
    baseline = runs[0]
    print(
        f"{'engine':10} {'n':>3} {'claimers in':14} {'claims/s':>9} {'x sql1':>6}"
        f" {'wall s':>7} {'cli CPU':>8} {'srv CPU':>8} {'CPU ms/c':>8}"
        f" {'1st 10%':>8} {'last 10%':>8}  per claimer"
    )
    for run in runs:
        print(describe(run, baseline))
    print(
        "checked: every recipient claimed exactly once; rows 'sending' = claims;"
        " each mailbox's day and month counters = its claims"
    )


if __name__ == "__main__":
    main()
