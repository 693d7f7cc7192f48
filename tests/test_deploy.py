"""docs/deploy.md and deploy/: the unit systemd would load, the files the page shows as they
are, the metrics it lists, and the receiver's verification example working."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from massiva.metrics import Metrics
from massiva.webhook import sign

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "deploy.md"
UNIT = ROOT / "deploy" / "massiva.service"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
EXEC_START = "ExecStart=/opt/massiva/venv/bin/massiva run"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine"
)


def blocks(language: str) -> list[str]:
    """The fenced code blocks of docs/deploy.md in ``language``, as written."""
    fence = re.compile(rf"^```{re.escape(language)}\n(.*?)^```$", re.MULTILINE | re.DOTALL)
    return fence.findall(DOC.read_text(encoding="utf-8"))


def verify_unit(unit_text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on ``unit_text`` with its ExecStart pointed at a real
    executable (verify refuses a command it cannot find: /opt/massiva is not here)."""
    program = folder / "massiva"
    program.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m massiva "$@"\n')
    program.chmod(0o755)
    assert unit_text.count(EXEC_START) == 1
    unit = folder / "massiva.service"
    unit.write_text(unit_text.replace(EXEC_START, f"ExecStart={program} run"))
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_systemd_analyze
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = verify_unit(UNIT.read_text(encoding="utf-8"), tmp_path)
    # verify exits 0 on a key it does not know or a value it cannot read, and only says
    # so: anything it says is a fault.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd_analyze
@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (
            lambda text: text.replace("ProtectSystem=strict", "ProtectSystem=strikt"),
            "Failed to parse protect system value",
        ),
        (
            lambda text: text.replace("Restart=on-failure", "Restrat=on-failure"),
            "Unknown key 'Restrat' in section [Service]",
        ),
        (
            lambda text: text.replace("KillSignal=SIGTERM", "KillSignal=SIGTREM"),
            "Failed to parse signal name",
        ),
    ],
)
def test_the_unit_check_catches_a_mistake(
    tmp_path: Path, change: Callable[[str], str], complaint: str
) -> None:
    result = verify_unit(change(UNIT.read_text(encoding="utf-8")), tmp_path)
    assert complaint in result.stdout + result.stderr


def test_the_unit_stops_as_the_page_says() -> None:
    directives = dict(
        line.split("=", 1)
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert directives["ExecStart"] == "/opt/massiva/venv/bin/massiva run"
    assert directives["KillSignal"] == "SIGTERM"
    # Longer than one vendor call's 120 s deadline: the post in flight can finish.
    assert int(directives["TimeoutStopSec"]) > 120
    assert directives["User"] == "massiva"
    assert directives["ReadWritePaths"] == directives["WorkingDirectory"] == "/var/lib/massiva"


def test_the_page_shows_the_unit_and_the_dockerfile_as_they_are() -> None:
    assert blocks("ini") == [UNIT.read_text(encoding="utf-8")]
    assert blocks("dockerfile") == [DOCKERFILE.read_text(encoding="utf-8")]


def test_the_page_says_the_image_was_never_built_here() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert (
        "It was not built on\nmassiva's development machines: they have no container daemon."
        in text
    )


def test_the_dockerfile_runs_massiva_run_as_a_user_from_the_wheel() -> None:
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    instructions = [line.split(" ", 1) for line in lines if line and line[0] not in "# "]
    assert [i for i, _ in instructions if i == "FROM"] == ["FROM", "FROM"]
    assert all(rest.startswith("python:3.12-slim") for i, rest in instructions if i == "FROM")
    final = dict(instructions[[i for i, _ in instructions].index("FROM", 1) :])
    assert final["USER"] == "massiva"
    assert final["VOLUME"] == "/var/lib/massiva"
    assert final["CMD"] == '["massiva", "run"]'
    assert "EXPOSE" not in final
    assert "pip wheel" in DOCKERFILE.read_text(encoding="utf-8")


def test_the_service_settings_are_valid_toml_with_the_documented_defaults() -> None:
    [service] = [b for b in blocks("toml") if b.startswith("[service]")]
    assert tomllib.loads(service) == {
        "service": {
            "reconcile_every": 900,
            "status": "127.0.0.1:9464",
            "webhook_url": "https://hooks.example.it/massiva",
            "webhook_secret_env": "MASSIVA_WEBHOOK_SECRET",
        }
    }


def test_every_metric_massiva_serves_is_listed() -> None:
    metrics = Metrics()
    metrics.post("a@pec.it", "sent")
    metrics.allowance("a@pec.it", day_used=1, day_limit=2, month_used=1, month_limit=2)
    metrics.recipients("avvisi", {"pending": 1})
    metrics.reconciled("a@pec.it", datetime.now(UTC))
    metrics.unknowns("a@pec.it", 0)
    metrics.mailbox_state("a@pec.it", "idle")
    served = {
        sample.name
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }
    listed = set(re.findall(r"^\| `(massiva_\w+)\{", DOC.read_text(encoding="utf-8"), re.M))
    assert served == listed


def test_the_receivers_verification_example_works() -> None:
    [example] = [b for b in blocks("python") if "def genuine(" in b]
    assert len([line for line in example.splitlines() if line.strip()]) <= 10  # short
    namespace: dict[str, object] = {}
    exec(compile(example, "docs/deploy.md", "exec"), namespace)
    genuine = namespace["genuine"]
    assert callable(genuine)
    secret, body = "whsec-doc-example", b'{"event": "campaign.finished"}'
    now = str(int(time.time()))
    headers = {"X-Massiva-Timestamp": now, "X-Massiva-Signature": sign(secret, now, body)}
    assert genuine(secret, headers, body) is True
    assert genuine("another secret", headers, body) is False
    assert genuine(secret, headers, body + b" ") is False
    old = str(int(time.time()) - 3600)
    replayed = {"X-Massiva-Timestamp": old, "X-Massiva-Signature": sign(secret, old, body)}
    assert genuine(secret, replayed, body) is False
    assert genuine(secret, {}, body) is False
