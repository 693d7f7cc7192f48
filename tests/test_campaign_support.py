"""Helpers for the campaign tests: a campaign folder written into tmp_path.

(A module of its own, named like the campaign tests, because those are the files this
feature owns; it holds no tests.)
"""

from __future__ import annotations

import json
from pathlib import Path

from massiva.campaign import CampaignSpec, Recipient, Reject, load_spec, validate

HEADER = "pec;nome"


def write_campaign(
    folder: Path,
    csv: str | bytes = "pec;nome\nmario.rossi@pec.it;Mario\n",
    *,
    subject: str = "Avviso per {{ nome }}",
    body: str = "<p>Gentile {{ nome }}</p>",
    extra: str = "",
    files: dict[str, str | bytes] | None = None,
) -> Path:
    """A campaign folder with ``campaign.toml``, ``destinatari.csv`` and ``files``.

    ``extra`` is appended to campaign.toml (top-level keys first, then tables).
    """
    folder.mkdir(parents=True, exist_ok=True)
    toml = (
        'name = "prova"\n'
        'mailbox = "Ufficio@PECmassiva.com"\n'
        f"subject = {json.dumps(subject, ensure_ascii=False)}\n"
        f"body = {json.dumps(body, ensure_ascii=False)}\n"
        'recipients = "destinatari.csv"\n'
        'address_column = "pec"\n' + extra
    )
    (folder / "campaign.toml").write_text(toml, encoding="utf-8")
    data = csv.encode("utf-8") if isinstance(csv, str) else csv
    (folder / "destinatari.csv").write_bytes(data)
    for name, content in (files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    return folder


def load(folder: Path, **kwargs: object) -> CampaignSpec:
    """``write_campaign`` then ``load_spec``."""
    return load_spec(write_campaign(folder, **kwargs))  # type: ignore[arg-type]


def outcome(spec: CampaignSpec) -> list[tuple[int, str, str]]:
    """Every row as ``(row, address, '')`` if valid, else ``(row, column, reason)``."""
    found: list[tuple[int, str, str]] = []
    for item in validate(spec):
        if isinstance(item, Recipient):
            found.append((item.row, item.address, ""))
        else:
            assert isinstance(item, Reject)
            found.append((item.row, item.column, item.reason))
    return found


def recipients(spec: CampaignSpec) -> list[Recipient]:
    """The valid rows only."""
    return [item for item in validate(spec) if isinstance(item, Recipient)]
