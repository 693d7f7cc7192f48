"""``massiva simulator``'s options: out-of-range values are usage errors, not tracebacks."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

import massiva.simulator
from massiva.cli import main
from massiva.simulator import SimClock, SimulatorSettings


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--clock-speed", "-1"),
        ("--clock-speed", "nan"),
        ("--clock-speed", "inf"),
        ("--send-rate", "-0.5"),
        ("--send-rate", "nan"),
        ("--daily-limit", "0"),
        ("--monthly-limit", "-3"),
        ("--port", "0"),
        ("--port", "65536"),
    ],
)
def test_out_of_range_options_are_usage_errors(option: str, value: str) -> None:
    result = CliRunner().invoke(main, ["simulator", option, value])

    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_zero_is_a_frozen_clock_and_no_pacing(monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}

    def serve(settings: SimulatorSettings, clock: SimClock, *, host: str, port: int) -> None:
        served.update(settings=settings, clock=clock, host=host, port=port)

    monkeypatch.setattr(massiva.simulator, "serve", serve)
    result = CliRunner().invoke(
        main,
        ["simulator", "--clock-speed", "0", "--send-rate", "0", "--port", "65535"],
        catch_exceptions=False,
    )

    assert result.exit_code == 0, result.output
    assert served["clock"].speed == 0
    assert served["settings"].send_rate is None
    assert served["port"] == 65535
