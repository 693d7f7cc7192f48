"""massiva installed from its wheel, not run from a clone: the wheel carries the shared
templates and the example campaign, and every command works from an empty folder.

The wheel is built from a copy of the sources, without build isolation (no network), and
installed with ``--no-deps --no-index`` in a new virtual environment; the dependencies
come from this environment's site-packages, named in a ``.pth`` file. Such a path is put
on ``sys.path`` as it is: the ``.pth`` files in it (this checkout's editable install)
are not run, and the test proves every massiva module comes from the new environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What the wheel is built from.
SOURCES = ("pyproject.toml", "README.md", "massiva", "campaigns", "templates")
CAMPAIGN = "esempio-avvisi-2026"  # campaigns/example's name
PIP = (sys.executable, "-m", "pip")
OFFLINE = ("-q", "--no-deps", "--no-index")  # nothing from the network
HTML_TO = ("--format", "html", "-o")

#: Run in the new environment: which files the massiva modules the commands use come from.
WHERE_FROM = """
import json, sys
import massiva.cli, massiva.demo, massiva.simulator.server
print(json.dumps({
    "massiva": massiva.__file__,
    "modules": sorted(
        m.__file__ for name, m in list(sys.modules.items())
        if name.partition(".")[0] == "massiva" and getattr(m, "__file__", None)
    ),
    "editable": [repr(f) for f in sys.meta_path if "editable" in repr(f).lower()],
}))
"""


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command; its output, once it has exited 0 (else the test fails, showing it)."""
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    dist = tmp_path / "dist"
    run(*PIP, "wheel", *OFFLINE, "--no-build-isolation", "-w", dist, source, cwd=tmp_path)
    (wheel,) = dist.glob("massiva-*.whl")
    return wheel


def new_environment(tmp_path: Path, wheel: Path) -> tuple[Path, dict[str, str]]:
    """A virtual environment with the wheel installed; its bin folder and environment."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    bin_ = venv / "bin"
    run(*PIP, "--python", bin_ / "python", "install", *OFFLINE, wheel, cwd=tmp_path)
    # After the install: pip would otherwise take this checkout's massiva for installed.
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = run(bin_ / "python", "-c", purelib, cwd=tmp_path).strip()
    ours = dict.fromkeys((sysconfig.get_path("purelib"), sysconfig.get_path("platlib")))
    (Path(site) / "dependencies.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    }
    env["PATH"] = f"{bin_}{os.pathsep}{env.get('PATH', '')}"
    return bin_, env


def empty_folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def test_the_wheel_installed_in_a_new_environment_works_from_an_empty_folder(
    tmp_path: Path,
) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "massiva").rglob("*.py")}
    assert modules - inside == set(), (
        "modules missing from the wheel: list their package in pyproject.toml"
    )
    shipped = {
        f"massiva/shipped/{name}/{path.relative_to(ROOT / folder).as_posix()}"
        for name, folder in (("templates", "templates"), ("example", "campaigns/example"))
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
    }
    assert shipped - inside == set()
    assert "massiva/shipped/templates/pec_base.html" in shipped

    bin_, env = new_environment(tmp_path, wheel)
    massiva = bin_ / "massiva"
    where = json.loads(
        run(bin_ / "python", "-c", WHERE_FROM, cwd=empty_folder(tmp_path, "w"), env=env)
    )
    site = (bin_.parent / "lib").resolve()
    assert Path(where["massiva"]).resolve().is_relative_to(site)
    assert [m for m in where["modules"] if not Path(m).resolve().is_relative_to(site)] == []
    assert where["editable"] == []

    # The demo, from an empty folder: the example campaign and templates come with it.
    demo = empty_folder(tmp_path, "demo")
    run(massiva, "demo", cwd=demo, env=env)
    assert "<svg" in (demo / "demo-out" / "report.html").read_text(encoding="utf-8")
    # An HTML report with no massiva.toml and no templates/ here: the shipped report.html.
    database = ("--db", "demo-out/massiva.db")
    run(massiva, *database, "report", CAMPAIGN, *HTML_TO, "again.html", cwd=demo, env=env)
    assert CAMPAIGN in (demo / "again.html").read_text(encoding="utf-8")

    # init, then its example checked, loaded and reported on, as the README says.
    start = empty_folder(tmp_path, "start")
    assert "massiva campaign check campaigns/example" in run(massiva, "init", cwd=start, env=env)
    run(massiva, "campaign", "check", "campaigns/example", cwd=start, env=env)
    run(massiva, "campaign", "load", "campaigns/example", cwd=start, env=env)
    run(massiva, "report", CAMPAIGN, *HTML_TO, "report.html", cwd=start, env=env)
    assert CAMPAIGN in (start / "report.html").read_text(encoding="utf-8")

    # The example copied elsewhere, with no massiva.toml: it finds the shipped layout.
    elsewhere = empty_folder(tmp_path, "elsewhere")
    shutil.copytree(start / "campaigns" / "example", elsewhere / "mine")
    run(massiva, "campaign", "check", "mine", cwd=elsewhere, env=env)
