"""A new working folder (``massiva init``): a commented ``massiva.toml`` that points at
the built-in simulator, a copy of the shared templates and a copy of the example campaign.

Nothing is ever overwritten: :func:`create` refuses, naming every file that is already
there, before it writes anything, and each file is created new (never through a link).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from massiva.config import CONFIG_NAME
from massiva.resources import EXAMPLE_CAMPAIGN, TEMPLATES

#: Where the copies go in the new folder (the layout of the massiva repository, so that
#: the README's commands work there as written).
TEMPLATES_FOLDER = Path("templates")
CAMPAIGN_FOLDER = Path("campaigns/example")
#: The variable CONFIG_TEXT names for the password of the box the example sends from.
EXAMPLE_PASSWORD_ENV = "MASSIVA_PASSWORD_DEMO"  # noqa: S105 - the name of a variable

CONFIG_TEXT = """\
# massiva's settings for this folder, written by `massiva init`. Every command reads
# massiva.toml in the folder it runs in (or the file --config names). Secrets never go
# here: the Openapi token and each mailbox's password come from environment variables.

[vendor]
# The built-in simulator on this machine (`massiva simulator --port 8080`): nothing real
# is sent. To go live, delete pec_url and sending_url; set sandbox = true to try the
# vendor's test hosts first, then delete it too for production.
pec_url = "http://127.0.0.1:8080"       # the PEC API: mailboxes, forms, domains
sending_url = "http://127.0.0.1:8080"   # the PEC Massiva API: send, receipts, inbox
# sandbox = true                        # the vendor's test hosts (test.*)
token_env = "OPENAPI_TOKEN"             # the variable with the token (the simulator takes any)

[database]
path = "massiva.db"                     # relative to this file

[campaigns]
templates = "templates"                 # shared layouts campaigns extend, and report.html

# The box campaigns/example sends from: the simulator's demo box, password "demo".
[mailboxes."demo@pecmassiva.com"]
password_env = "MASSIVA_PASSWORD_DEMO"  # export MASSIVA_PASSWORD_DEMO=demo
daily_limit = 3500                      # recipients a Rome day (Standard plan)
monthly_limit = 30000                   # recipients a Rome month (Flat plan)
send_rate = 1.0                         # POST /send a second
# certifying_senders = ["posta-certificata@pecmassiva.com"]  # who writes its receipts
# purge_archived = true                 # free the box of receipts kept here (back the
#                                       # database and its archive up: the only copy then)

# [domains]
# own = ["pec.studio.it"]               # certified own domains boxes may be registered on
"""


class FilesExist(Exception):
    """Some of the files :func:`create` would write are already there."""

    def __init__(self, folder: Path, existing: list[Path]) -> None:
        self.existing = existing
        names = ", ".join(str(path) for path in existing)
        super().__init__(
            f"{folder} already has {names}; nothing was written: move them away, or run"
            " massiva init in another folder"
        )


@dataclass(frozen=True)
class Started:
    """What :func:`create` wrote (paths relative to the folder), and the name of the
    example campaign it copied to :data:`CAMPAIGN_FOLDER`."""

    written: list[Path]
    campaign_name: str


def create(folder: Path) -> Started:
    """Write ``massiva.toml``, ``templates/`` and ``campaigns/example/`` into ``folder``
    (created if missing). Raises :class:`FilesExist` if any of them is there already
    (nothing is written then), :class:`OSError` if one cannot be written."""
    planned: dict[Path, bytes | Path] = {Path(CONFIG_NAME): CONFIG_TEXT.encode()}
    for source, copy in ((TEMPLATES, TEMPLATES_FOLDER), (EXAMPLE_CAMPAIGN, CAMPAIGN_FOLDER)):
        for path in sorted(source.rglob("*")):
            if path.is_file():
                planned[copy / path.relative_to(source)] = path
    existing = [name for name in planned if os.path.lexists(folder / name)]
    if existing:
        raise FilesExist(folder, existing)
    for name, content in planned.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content if isinstance(content, bytes) else content.read_bytes()
        with target.open("xb") as out:  # "x": a new file; it never follows a link
            out.write(data)
    example = tomllib.loads((EXAMPLE_CAMPAIGN / "campaign.toml").read_text(encoding="utf-8"))
    return Started(list(planned), str(example["name"]))
