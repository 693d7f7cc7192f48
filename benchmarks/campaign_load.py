"""Checking and loading a large campaign, beside a bare loop, in the same run.

A copy of campaigns/example with a generated recipients file of N rows (default
1,000,000) is
  - bare: read with csv.reader and rendered (subject + body, the example's templates);
  - massiva: checked and loaded into a new SQLite outbox (`load_campaign`: every row
    parsed, validated, de-duplicated, rendered, and written in batches; the rendering
    by one worker process per core, whose start is counted and whose memory is added).
Each runs in its own process, so each peak RSS is its own.
Targets: massiva >= 0.5 x the bare rows/s, >= 20,000 rows/s, peak RSS < 300 MB.

Run: python benchmarks/campaign_load.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def generate(folder: Path, rows: int) -> None:
    """The example campaign with ``rows`` recipients (no per-recipient attachment)."""
    shutil.copytree(ROOT / "campaigns" / "example", folder)
    with (folder / "destinatari.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(
            [
                "pec",
                "nome",
                "cognome",
                "codice_cliente",
                "comune",
                "importo",
                "scadenza",
                "allegato",
            ]
        )
        for i in range(rows):
            writer.writerow(
                [
                    f"cliente.{i:07d}@legalmail.it",
                    "Niccolò",
                    "D'Angelo",
                    f"CL-{i:07d}",
                    "Città di Castello",
                    f"{(i % 100000) / 7:.2f}".replace(".", ","),
                    "31/03/2026",
                    "",
                ]
            )


def bare(folder: Path) -> int:
    """csv.reader + the same two renders a row; returns rows."""
    from massiva.campaign import Renderer, load_spec

    renderer = Renderer(load_spec(folder, shared_templates=ROOT / "templates"))
    count = 0
    with (folder / "destinatari.csv").open(encoding="utf-8", newline="") as source:
        reader = csv.reader(source, delimiter=";")
        header = next(reader)
        for row in reader:
            renderer.render(dict(zip(header, row, strict=False)))
            count += 1
    return count


def ours(folder: Path) -> int:
    """Check and load into a new outbox; returns rows."""
    from massiva.campaign import load_spec
    from massiva.loading import load_campaign
    from massiva.store import Store

    spec = load_spec(folder, shared_templates=ROOT / "templates")

    async def run() -> int:
        async with await Store.open(folder / "massiva.db") as store:
            result = await load_campaign(store, spec)
        assert result.added == result.rows, result
        return result.rows

    return asyncio.run(run())


def child(kind: str, folder: Path) -> None:
    started = time.perf_counter()
    rows = bare(folder) if kind == "bare" else ours(folder)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The worker processes that rendered (the largest of them).
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {"rows": rows, "seconds": elapsed, "peak_mb": peak_mb, "worker_mb": worker_mb}
    print(json.dumps(result))


def measure(kind: str, folder: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(folder)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "campaign"
        generate(folder, args.rows)
        baseline = measure("bare", folder)
        loaded = measure("massiva", folder)
    for name, m in (("bare csv + render", baseline), ("massiva check + load", loaded)):
        print(
            f"{name:22s} {m['rows'] / m['seconds']:9,.0f} rows/s   peak RSS {m['peak_mb']:6.0f} MB"
            + (f" (+ {m['worker_mb']:.0f} MB a worker process)" if m["worker_mb"] else "")
        )
    ratio = (loaded["rows"] / loaded["seconds"]) / (baseline["rows"] / baseline["seconds"])
    print(
        f"ratio {ratio:.2f} (target >= 0.5); massiva"
        f" {loaded['rows'] / loaded['seconds']:,.0f} rows/s (target >= 20,000),"
        f" peak {loaded['peak_mb'] + (os.cpu_count() or 1) * loaded['worker_mb']:.0f} MB"
        " with its workers (target < 300)"
    )


if __name__ == "__main__":
    main()
