"""Charged or irreversible commands ask first on a terminal, take --yes from scripts, and
refuse (exit 2) when there is no terminal to ask on and no --yes: a cron job or a script
never hangs on a question nobody can answer."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from starlette.applications import Starlette

from massiva.cli import main
from massiva.cli.context import Env
from massiva.simulator import SimClock, Simulator, SimulatorSettings, create_app
from tests.conftest import START, TOKEN
from tests.contract import ContractTransport
from tests.test_sender import make_campaign

Invoke = Callable[..., Result]
BOX, DOMAIN, CAMPAIGN = "demo@pecmassiva.com", "pec.studio.it", "prova"
SIMULATOR_OPTIONS = ("--api-url", "http://sim", "--sending-url", "http://sim")

#: command -> (its arguments, what it asks about, how to see what it did)
CASES: dict[str, tuple[list[str], str, list[str]]] = {
    "mailbox renew": (
        ["mailbox", "renew", BOX, "--years", "2"],
        f"renew mailbox {BOX} for 2 years, which the vendor charges",
        ["mailbox", "status", BOX],
    ),
    "domain renew": (
        ["domain", "renew", DOMAIN],
        f"renew domain {DOMAIN} for 1 year, which the vendor charges",
        ["domain", "status", DOMAIN],
    ),
    "mailbox revoke": (
        ["mailbox", "revoke", BOX],
        f"revoke mailbox {BOX}: it stops sending and receiving, for good",
        ["mailbox", "status", BOX],
    ),
    "domain revoke": (
        ["domain", "revoke", DOMAIN],
        f"revoke domain {DOMAIN} and every mailbox on it, for good",
        ["domain", "status", DOMAIN],
    ),
    "campaign cancel": (
        ["campaign", "cancel", CAMPAIGN],
        f"cancel campaign {CAMPAIGN} for good: its recipients not yet sent never will be",
        ["campaign", "status", CAMPAIGN],
    ),
}


class Terminal(io.BytesIO):
    """What the user types, on a standard input that is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def app() -> Starlette:
    return create_app(SimulatorSettings(send_rate=None), clock=SimClock(start=START, speed=0))


@pytest.fixture
def invoke(app: Starlette, tmp_path: Path) -> Invoke:
    """``massiva ...`` on the simulator, with a database in tmp_path, a certified domain
    and a loaded campaign; ``input`` is what stdin holds (not a terminal, unless it is a
    :class:`Terminal`)."""
    transport = ContractTransport(httpx.ASGITransport(app=app))

    def run(*args: str, input: str | io.BytesIO | None = None) -> Result:
        return CliRunner().invoke(
            main,
            [*SIMULATOR_OPTIONS, "--db", str(tmp_path / "massiva.db"), *args],
            obj=Env(transport=transport),
            env={"OPENAPI_TOKEN": TOKEN},
            input=input,
            catch_exceptions=False,
        )

    assert run("domain", "add", DOMAIN, "--provider", "infocert").exit_code == 0
    app.state.simulator.clock.advance(3600)  # certified
    assert run("campaign", "load", str(make_campaign(tmp_path / "c", ["a@pec.it"]))).exit_code == 0
    return run


def seen(invoke: Invoke, look: list[str]) -> Any:
    result = invoke(*look, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("case", CASES)
def test_without_a_terminal_or_yes_it_refuses_and_does_nothing(
    invoke: Invoke, app: Starlette, case: str
) -> None:
    args, action, look = CASES[case]
    before = seen(invoke, look)
    simulator: Simulator = app.state.simulator
    requests = len(simulator.requests)

    human = invoke(*args)
    scripted = invoke(*args, "--json")

    assert human.exit_code == scripted.exit_code == 2
    message = (
        f"not done: this would {action}; add --yes to confirm (there is no terminal to ask on)"
    )
    assert human.stderr == f"Error: {message}\n"
    assert json.loads(scripted.stdout) == {"error": {"message": message, "exit_code": 2}}
    assert len(simulator.requests) == requests  # nothing asked of the vendor
    assert seen(invoke, look) == before


@pytest.mark.parametrize("case", CASES)
def test_with_yes_it_goes_on(invoke: Invoke, case: str) -> None:
    args, _, look = CASES[case]
    before = seen(invoke, look)

    result = invoke(*args, "--yes")

    assert result.exit_code == 0, result.output
    assert seen(invoke, look) != before


@pytest.mark.parametrize("case", CASES)
def test_on_a_terminal_it_asks_and_a_yes_goes_on(invoke: Invoke, case: str) -> None:
    args, action, look = CASES[case]
    before = seen(invoke, look)

    result = invoke(*args, input=Terminal(b"y\n"))

    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"This will {action}. Go on? [y/N]: ")
    assert seen(invoke, look) != before


@pytest.mark.parametrize("case", CASES)
def test_on_a_terminal_a_no_does_nothing(invoke: Invoke, app: Starlette, case: str) -> None:
    args, action, look = CASES[case]
    before = seen(invoke, look)
    simulator: Simulator = app.state.simulator
    requests = len(simulator.requests)

    human = invoke(*args, input=Terminal(b"n\n"))
    scripted = invoke(*args, "--json", input=Terminal(b"n\n"))

    assert human.exit_code == scripted.exit_code == 1
    assert (
        human.stderr == f"This will {action}. Go on? [y/N]: n\nError: not done: you answered no\n"
    )
    # The question goes to stderr: stdout stays one JSON document.
    assert json.loads(scripted.stdout) == {
        "error": {"message": "not done: you answered no", "exit_code": 1}
    }
    assert len(simulator.requests) == requests
    assert seen(invoke, look) == before
