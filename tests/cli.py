"""``massiva ...`` run in process (click's CliRunner) on an in-process simulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from click.testing import CliRunner, Result
from starlette.applications import Starlette

from massiva.cli import main
from massiva.cli.context import Env
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
