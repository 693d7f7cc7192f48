"""``massiva ...`` run in process (click's CliRunner) on an in-process simulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result
from starlette.applications import Starlette

from massiva.cli import main
from massiva.cli.context import Env
from massiva.simulator import SimClock, SimulatorSettings, create_app
from massiva.times import utcnow
from tests.conftest import TOKEN
from tests.contract import ContractTransport

ROOT = Path(__file__).resolve().parents[1]
MAILBOX = "demo@pecmassiva.com"
Invoke = Callable[..., Result]


def cli(app: Starlette, tmp_path: Path, *, mailbox: str = "daily_limit = 100\n") -> Invoke:
    """``massiva ...`` on ``app``, every exchange checked against the vendor's specs, with
    a ``massiva.toml`` in ``tmp_path``: the database there, the shared templates, and the
    demo box's password from the environment plus the ``mailbox`` settings (TOML lines).
    The returned function takes the arguments and, optionally, ``env`` to add."""
    config = tmp_path / "massiva.toml"
    config.write_text(
        '[database]\npath = "massiva.db"\n'
        f'[campaigns]\ntemplates = "{ROOT / "templates"}"\n'
        f'[mailboxes."{MAILBOX}"]\npassword_env = "DEMO_PW"\n{mailbox}',
        encoding="utf-8",
    )
    transport = ContractTransport(httpx.ASGITransport(app=app))

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(
            main,
            [
                "--config",
                str(config),
                "--api-url",
                "http://sim",
                "--sending-url",
                "http://sim",
                *args,
            ],
            obj=Env(transport=transport),
            env={"OPENAPI_TOKEN": TOKEN, "DEMO_PW": "demo", **(env or {})},
            catch_exceptions=False,
        )

    return run


def real_clock_app() -> Starlette:
    """The simulator for commands that run on the real clock: so does its own (frozen at
    the start, moved by hand), or its receipts would be dated months before the posts
    and not be trusted. Unpaced."""
    return create_app(SimulatorSettings(send_rate=None), clock=SimClock(start=utcnow(), speed=0))


def on(database: Path | str, invoke: Invoke) -> Invoke:
    """``invoke`` with ``--db database``: the ``database`` fixture's SQLite file or
    PostgreSQL URL instead of the massiva.db of massiva.toml."""

    def run(*args: str, **options: Any) -> Result:
        return invoke("--db", str(database), *args, **options)

    return run
