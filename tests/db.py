"""Opening a massiva database directly, as another process would."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def connect(path: Path | str) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to ``path`` for the block: what it writes is committed
    at the end (rolled back on an error), then the connection is closed.

    ``with sqlite3.connect(...)`` alone commits but leaves the connection open, which
    Python 3.13 reports as a ResourceWarning, an error in this suite.
    """
    connection = sqlite3.connect(path)
    try:
        with connection:
            yield connection
    finally:
        connection.close()
