"""A worker of a parallel CSV export (massiva.report.as_csv.write_csv), run as
``python -m massiva.report.csv_part SPEC``: writes one part, prints how many recipients
it wrote. SPEC is a JSON object of write_part's arguments; a PostgreSQL database's URL
is in the environment instead (PART_DATABASE_ENV), out of the command line.

Its stdin is a pipe that the exporting process holds open and never writes to: the end
of it means that process is gone (killed, say), and nobody will join the part. The
worker then stops at once and removes the part, and the parts' folder once it is empty,
rather than write a file nobody will read or remove.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from contextlib import suppress
from pathlib import Path

from massiva.report.as_csv import PART_DATABASE_ENV, write_part


def _leave_when_orphaned(part: Path) -> None:
    # The file descriptor, not sys.stdin: a daemon thread blocked in a buffered read
    # would hold its lock when the interpreter exits, which aborts the exit.
    while os.read(sys.stdin.fileno(), 1 << 16):
        pass  # nothing is ever written; the end means the exporting process has gone
    with suppress(OSError):
        part.unlink()
    with suppress(OSError):
        part.parent.rmdir()  # the last of the workers empties it
    os._exit(1)


def main() -> None:
    """Write the part SPEC (sys.argv[1]) names and print its number of recipients."""
    spec = json.loads(sys.argv[1])
    part = Path(spec["part"])
    threading.Thread(target=_leave_when_orphaned, args=(part,), daemon=True).start()
    database = spec["database"]
    written = asyncio.run(
        write_part(
            Path(database) if database is not None else os.environ[PART_DATABASE_ENV],
            Path(spec["archive"]),
            int(spec["campaign_id"]),
            bool(spec["late"]),
            tuple(spec["key_columns"]),
            (int(spec["ids"][0]), int(spec["ids"][1])),
            str(spec["delimiter"]),
            part,
        )
    )
    print(written)


if __name__ == "__main__":
    main()
