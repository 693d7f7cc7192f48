"""A campaign folder's ``campaign.toml``: what is sent, from which mailbox, to whom.

A campaign is a folder. ``campaign.toml`` names everything else, and every file it names
must be inside the folder (no absolute paths, no ``..``, no symbolic link that leads
out); templates may also come from the shared templates folder (``templates/``).

``campaign.toml``::

    name = "avvisi-marzo-2026"              # required: lower-case letters, digits, - _ .
    mailbox = "ufficio@pecmassiva.com"      # required: the sending mailbox, or a pool:
    # mailboxes = ["a@pecmassiva.com", "b@pecmassiva.com"]  # every one sends, each within
    #                                       # its own pace and allowances
    # pool = "avvisi"                       # a pool named under [pools] in massiva.toml

    subject = "Avviso di pagamento n. {{ numero }}"   # the subject, a Jinja template...
    # subject_file = "oggetto.txt"          # ...or a file holding it (one of the two)
    body_file = "corpo.html"                # the HTML body, a Jinja template file...
    # body = "<p>Gentile {{ nome }}</p>"    # ...or inline (one of the two)

    recipients = "destinatari.csv"          # required: the recipients, one a row
    address_column = "pec"                  # required: the column with the address
    attachments = ["informativa.pdf"]       # optional: files sent to every recipient
    attachment_column = "allegato"          # optional: a column naming a file per recipient
    key_columns = ["codice_cliente"]        # optional: columns reports show beside the address
    dedupe = "address+keys"                 # optional: a duplicate has the address AND the
                                            # key_columns of an earlier row (the default);
                                            # "address": one message an address
    strict_empty = false                    # optional: true rejects a row where a merge
                                            # field the templates print is empty

    [csv]                                   # optional
    encoding = "windows-1252"               # default: detected (UTF-8 with or without BOM,
                                            # else Windows-1252)
    delimiter = ";"                         # default: sniffed among , ; and tab ("\\t")

    [limits]                                # optional
    max_message_mb = 100                    # MB of 1,048,576 bytes; default 100 (Flat plan)

    [schedule]                              # optional: when messages may leave
    not_before = 2026-12-07T09:00:00+01:00  # (massiva/schedule.py says it all)
    not_after = 2026-12-20T18:00:00+01:00   # a deadline: never sent late
    days = ["mon-fri"]
    hours = "09:00-18:00"                   # Europe/Rome

``subject_file`` and ``body_file`` are looked up in the campaign folder first, then in
the shared templates folder; ``{% extends %}`` and ``{% include %}`` resolve the same
way. The files are read as UTF-8 (a byte-order mark is ignored).

:func:`load_spec` reads and checks the file and raises :class:`CampaignError` listing
every problem at once. The recipients file itself is read later, streamed, by
:func:`massiva.campaign.validate`.
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from massiva.campaign import addresses
from massiva.campaign.errors import CampaignError
from massiva.campaign.paths import PathProblem, real_root, resolve_inside
from massiva.schedule import ALWAYS, Schedule, parse_schedule
from massiva.toml_values import kind_of, shown

CAMPAIGN_FILE = "campaign.toml"
MIB = 1024 * 1024
DEFAULT_MAX_MESSAGE_MB = 100
#: How to get the shared layouts, for every message about one that is missing.
SHARED_TEMPLATES_HOW = (
    "`massiva init` writes a massiva.toml and a templates/ folder with the layouts massiva ships"
)
#: Delimiters that are sniffed when campaign.toml sets none.
SNIFFED_DELIMITERS = (",", ";", "\t")

_NAME = re.compile(r"[a-z0-9._-]+")
_TOP_KEYS = (
    "name",
    "mailbox",
    "mailboxes",
    "pool",
    "subject",
    "subject_file",
    "body",
    "body_file",
    "recipients",
    "address_column",
    "attachments",
    "attachment_column",
    "key_columns",
    "dedupe",
    "strict_empty",
    "csv",
    "limits",
    "schedule",
)
_CSV_KEYS = ("encoding", "delimiter")
_LIMIT_KEYS = ("max_message_mb",)
_DELIMITER_WORDS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}
#: How duplicates are found: by the address and the key columns, or by the address alone.
Dedupe = Literal["address+keys", "address"]
DEDUPE_MODES: tuple[Dedupe, ...] = ("address+keys", "address")


@dataclass(frozen=True)
class CampaignSpec:
    """A checked ``campaign.toml``: every path is real and inside its folder.

    ``subject`` and ``body`` are the Jinja sources; ``subject_file`` and ``body_file``
    say where they were read from (None when written inline). ``shared_templates`` is
    the other folder templates may come from. ``dedupe`` says which rows are
    duplicates (see :attr:`identity`); ``strict_empty`` makes a row where a printed merge
    field is empty a reject rather than a warning.
    """

    folder: Path
    name: str
    mailboxes: tuple[str, ...]  # the pool it sends from, in campaign.toml's order
    subject: str
    body: str
    recipients: Path
    address_column: str
    attachments: tuple[Path, ...]
    attachment_column: str | None
    encoding: str | None
    delimiter: str | None
    key_columns: tuple[str, ...] = ()
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_MB * MIB
    shared_templates: Path | None = None
    subject_file: Path | None = None
    body_file: Path | None = None
    dedupe: Dedupe = "address+keys"
    strict_empty: bool = False
    schedule: Schedule = ALWAYS
    #: Per-object cache (the shared attachments, encoded once); not part of the value.
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def mailbox(self) -> str:
        """The first mailbox of the pool: the one a test send goes from."""
        return self.mailboxes[0]

    @property
    def identity(self) -> tuple[str, ...]:
        """The columns that, with the address, make a recipient: two rows that agree on
        the address and on these are duplicates. The key columns with
        ``dedupe = "address+keys"``, none (the address alone) with ``"address"``."""
        return self.key_columns if self.dedupe == "address+keys" else ()

    def content_hash(self) -> str:
        """sha256 of what every message shares: the subject and body sources, the
        templates they extend or include, and the shared attachments' names and bytes.

        The recipients file is not part of it (see :func:`csv_hash`).
        """
        from massiva.campaign.templates import referenced_sources

        digest = hashlib.sha256()

        def part(tag: str, data: bytes) -> None:
            label = tag.encode("utf-8")
            digest.update(len(label).to_bytes(8, "big") + label + len(data).to_bytes(8, "big"))
            digest.update(data)

        part("subject", self.subject.encode("utf-8"))
        part("body", self.body.encode("utf-8"))
        for name, source in referenced_sources(self):
            part(f"template:{name}", source.encode("utf-8"))
        for path in self.attachments:
            label = f"attachment:{path.name}".encode()
            digest.update(len(label).to_bytes(8, "big") + label)
            digest.update(path.stat().st_size.to_bytes(8, "big"))
            with path.open("rb") as file:
                while chunk := file.read(MIB):
                    digest.update(chunk)
        return digest.hexdigest()


def csv_hash(path: Path) -> str:
    """sha256 of the file at ``path``, read in chunks (any size, little memory)."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def template_not_found(name: str, shared: str | Path | None) -> str:
    """Why the template ``name`` cannot be used: it is neither in the campaign folder nor
    in the shared templates folder ``shared`` (None: no such folder is set), and how to
    give it."""
    if shared:
        where = (
            f"the campaign folder nor in the shared templates folder {shared}"
            " ([campaigns] templates in massiva.toml); create it or fix the name"
        )
    else:
        where = (
            "the campaign folder and no shared templates folder is set; create it, fix"
            " the name, or set [campaigns] templates in massiva.toml"
        )
    return f'"{name}" is not in {where} ({SHARED_TEMPLATES_HOW})'


def load_spec(
    folder: Path,
    *,
    shared_templates: Path | None = None,
    pools: Mapping[str, tuple[str, ...]] | None = None,
) -> CampaignSpec:
    """Read and check ``folder/campaign.toml``.

    ``shared_templates`` is the folder of shared layouts (``[campaigns] templates`` in
    massiva.toml), the only place outside ``folder`` templates may come from.
    Raises :class:`CampaignError` listing every problem at once.
    """
    toml_path = folder / CAMPAIGN_FILE
    if not folder.is_dir():
        raise CampaignError(
            [f"{folder}: no such folder; give the folder that holds {CAMPAIGN_FILE}"]
        )
    raw = _read_toml(toml_path)
    found = _Reader(raw, str(toml_path), real_root(folder))
    shared_root = None
    if shared_templates is not None:
        if shared_templates.is_dir():
            shared_root = real_root(shared_templates)
        else:
            found.problems.append(
                f"{shared_templates}: the shared templates folder does not exist; create it"
                f" or set [campaigns] templates in massiva.toml ({SHARED_TEMPLATES_HOW})"
            )
    found.unknown_keys(raw, _TOP_KEYS, "")
    csv_table = found.table("csv", _CSV_KEYS)
    limits = found.table("limits", _LIMIT_KEYS)

    name = found.name()
    mailboxes = found.mailboxes(pools or {})
    subject, subject_file = found.template("subject", shared_root)
    body, body_file = found.template("body", shared_root)
    recipients = found.recipients()
    address_column = found.text("address_column", required=True, example='"pec"')
    attachments = found.attachments()
    attachment_column = found.text("attachment_column", example='"allegato"')
    key_columns = found.columns("key_columns")
    dedupe = found.dedupe(key_columns)
    strict_empty = found.flag("strict_empty")
    encoding = found.encoding(csv_table)
    delimiter = found.delimiter(csv_table)
    max_bytes = found.max_message_bytes(limits)
    schedule = found.schedule()

    if found.problems:
        raise CampaignError(found.problems)
    assert name and mailboxes and subject is not None and body is not None
    assert recipients and address_column
    return CampaignSpec(
        folder=Path(found.root),
        name=name,
        mailboxes=mailboxes,
        subject=subject,
        body=body,
        recipients=recipients,
        address_column=address_column,
        attachments=attachments,
        attachment_column=attachment_column,
        encoding=encoding,
        delimiter=delimiter,
        key_columns=key_columns,
        max_message_bytes=max_bytes,
        shared_templates=Path(shared_root) if shared_root else None,
        subject_file=subject_file,
        body_file=body_file,
        dedupe=dedupe,
        strict_empty=strict_empty,
        schedule=schedule,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        # utf-8-sig: editors on Windows put a byte-order mark that tomllib refuses.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CampaignError(
            [f"{path}: not found; create it (copy campaigns/example/{CAMPAIGN_FILE})"]
        ) from None
    except UnicodeDecodeError:
        raise CampaignError([f"{path}: not UTF-8 text; save it as UTF-8"]) from None
    except OSError as exc:
        raise CampaignError([f"{path}: cannot be read ({exc.strerror})"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError has no lineno: the position ends the message.
        found = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", str(exc))
        where, what = (f"{found[2]}: ", found[1]) if found else ("", str(exc))
        raise CampaignError(
            [f"{path}: {where}invalid TOML ({what}); fix the syntax there"]
        ) from None


class _Reader:
    """Reads the keys of campaign.toml, collecting every problem instead of stopping."""

    def __init__(self, raw: Mapping[str, Any], where: str, root: str) -> None:
        self.raw = raw
        self.where = where
        self.root = root
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where}, {key}: {message}")

    def unknown_keys(self, table: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
        for key in table:
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the known keys: {', '.join(known)}"
            self.problem(prefix + key, f"unknown key; {hint}")

    def table(self, name: str, known: tuple[str, ...]) -> Mapping[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, Mapping):
            self.problem(name, f"{shown(value)} is {kind_of(value)}; write it as a table, [{name}]")
            return {}
        self.unknown_keys(value, known, f"{name}.")
        return value

    def text(
        self,
        key: str,
        *,
        required: bool = False,
        example: str,
        table: Mapping[str, Any] | None = None,
        label: str | None = None,
    ) -> str | None:
        source = self.raw if table is None else table
        value = source.get(key)
        label = label or key
        if value is None:
            if required:
                self.problem(label, f"missing; add it, e.g. {key} = {example}")
            return None
        if not isinstance(value, str):
            self.problem(label, f"{shown(value)} is {kind_of(value)}, not text; write it in quotes")
            return None
        if not value.strip():
            self.problem(label, f"empty; write e.g. {key} = {example}, or remove the key")
            return None
        return value.strip()

    def name(self) -> str | None:
        value = self.text("name", required=True, example='"avvisi-marzo-2026"')
        if value is not None and not _NAME.fullmatch(value):
            slug = re.sub(r"[^a-z0-9._-]+", "-", value.lower()).strip("-") or "avvisi"
            self.problem(
                "name",
                f'"{value}" may hold only lower-case letters, digits, "-", "_" and "."; '
                f'write e.g. "{slug}"',
            )
            return None
        return value

    def mailboxes(self, pools: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
        """The pool it sends from: ``mailbox``, ``mailboxes`` or ``pool``, one of them."""
        given = [key for key in ("mailbox", "mailboxes", "pool") if key in self.raw]
        if len(given) > 1:
            self.problem(
                given[1],
                f"{' and '.join(given)} are all set; keep one: mailbox (one box), mailboxes"
                " (a list) or pool (a pool named in massiva.toml)",
            )
            return ()
        if given == ["pool"]:
            name = self.text("pool", example='"avvisi"')
            if name is None:
                return ()
            if name not in pools:
                known = ", ".join(sorted(pools)) or "none"
                self.problem(
                    "pool",
                    f'"{name}" is not a pool of massiva.toml (its pools: {known}); add'
                    f' [pools] {name} = ["a@pecmassiva.com", ...] there, or list the'
                    " boxes here with mailboxes = [...]",
                )
                return ()
            return pools[name]
        if given == ["mailboxes"]:
            value = self.raw["mailboxes"]
            if not isinstance(value, list) or not value:
                self.problem(
                    "mailboxes",
                    f"{shown(value)} is not a list of mailboxes; write e.g."
                    ' mailboxes = ["a@pecmassiva.com", "b@pecmassiva.com"]',
                )
                return ()
            found = [self._address("mailboxes", item) for item in value]
            boxes = [box for box in found if box is not None]
            for twice in sorted({b for b in boxes if boxes.count(b) > 1}):
                self.problem("mailboxes", f'"{twice}" is listed twice; list it once')
            return tuple(dict.fromkeys(boxes)) if len(boxes) == len(value) else ()
        value = self.text("mailbox", required=True, example='"ufficio@pecmassiva.com"')
        box = None if value is None else self._address("mailbox", value)
        return () if box is None else (box,)

    def _address(self, key: str, value: object) -> str | None:
        if not isinstance(value, str):
            self.problem(key, f"{shown(value)} is {kind_of(value)}, not text; write it in quotes")
            return None
        address = addresses.normalise(value)
        why = addresses.problem(address)
        if why:
            self.problem(
                key,
                f'"{value}" is not a mailbox address ({why}); write the sending box, '
                "e.g. ufficio@pecmassiva.com",
            )
            return None
        return address

    def schedule(self) -> Schedule:
        table = self.raw.get("schedule", {})
        if not isinstance(table, Mapping):
            self.problem(
                "schedule", f"{shown(table)} is {kind_of(table)}; write it as a table, [schedule]"
            )
            return ALWAYS
        schedule, problems = parse_schedule(table, self.where)
        self.problems += problems
        return schedule

    def template(self, kind: str, shared_root: str | None) -> tuple[str | None, Path | None]:
        """The source of the subject or body template, and the file it came from."""
        inline_key, file_key = kind, f"{kind}_file"
        example = '"oggetto.txt"' if kind == "subject" else '"corpo.html"'
        inline = self.raw.get(inline_key)
        named = self.raw.get(file_key)
        if inline is not None and named is not None:
            self.problem(
                file_key, f"both {inline_key} and {file_key} are set; keep only one of the two"
            )
            return None, None
        if inline is None and named is None:
            self.problem(
                inline_key,
                f'missing; add {inline_key} = "..." (a Jinja template) '
                f"or {file_key} = {example} (a file in the campaign folder)",
            )
            return None, None
        if inline is not None:
            if not isinstance(inline, str):
                message = f"{shown(inline)} is {kind_of(inline)}, not text; write it in quotes"
                self.problem(inline_key, message)
                return None, None
            if not inline.strip():
                self.problem(inline_key, f"empty; write the {kind} template")
                return None, None
            return (inline.strip() if kind == "subject" else inline), None
        name = self.text(file_key, example=example)
        if name is None:
            return None, None
        path = self._find_template(file_key, name, shared_root)
        if path is None:
            return None, None
        try:
            source = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            self.problem(file_key, f'"{name}" is not UTF-8 text; save it as UTF-8')
            return None, None
        except OSError as exc:
            self.problem(
                file_key, f'"{name}" cannot be read ({exc.strerror}); check its permissions'
            )
            return None, None
        if kind == "subject":
            source = source.strip()
        if not source.strip():
            self.problem(file_key, f'"{name}" is empty; write the {kind} template in it')
            return None, None
        return source, path

    def _find_template(self, key: str, name: str, shared_root: str | None) -> Path | None:
        places = [self.root] if shared_root is None else [self.root, shared_root]
        for place in places:
            try:
                _, real = resolve_inside(place, name)
            except PathProblem as exc:
                self.problem(key, f'"{name}" {exc}')
                return None
            if os.path.isfile(real):
                return Path(real)
        self.problem(key, template_not_found(name, shared_root))
        return None

    def _file(self, key: str, name: str) -> Path | None:
        """The real path of the existing, readable file ``name`` inside the folder."""
        try:
            _, real = resolve_inside(self.root, name)
        except PathProblem as exc:
            self.problem(key, f'"{name}" {exc}')
            return None
        if os.path.isdir(real):
            self.problem(key, f'"{name}" is a folder; name a file')
        elif not os.path.isfile(real):
            self.problem(
                key, f'"{name}" not found in the campaign folder; put it there or fix the name'
            )
        elif not os.access(real, os.R_OK):
            self.problem(key, f'"{name}" cannot be read; check its permissions')
        else:
            return Path(real)
        return None

    def recipients(self) -> Path | None:
        name = self.text("recipients", required=True, example='"destinatari.csv"')
        return None if name is None else self._file("recipients", name)

    def attachments(self) -> tuple[Path, ...]:
        value = self.raw.get("attachments", [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.problem(
                "attachments",
                f'{shown(value)} is {kind_of(value)}; write a list, e.g. ["informativa.pdf"]',
            )
            return ()
        found: list[Path] = []
        for item in value:
            if not isinstance(item, str):
                message = f"{shown(item)} is {kind_of(item)}, not a file name; write it in quotes"
                self.problem("attachments", message)
                continue
            path = self._file("attachments", item)
            if path is None:
                continue
            if path in found:
                self.problem("attachments", f'"{item}" is listed twice; list it once')
                continue
            found.append(path)
        return tuple(found)

    def columns(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(
            isinstance(item, str) and item.strip() for item in value
        ):
            self.problem(
                key, f'{shown(value)} is not a list of column names; write e.g. ["codice_cliente"]'
            )
            return ()
        return tuple(dict.fromkeys(item.strip() for item in value))

    def dedupe(self, key_columns: tuple[str, ...]) -> Dedupe:
        value = self.raw.get("dedupe")
        if value is None:
            return "address+keys"
        for mode in DEDUPE_MODES:
            if value == mode:
                if mode == "address+keys" and not key_columns:
                    self.problem(
                        "dedupe",
                        '"address+keys" compares the key_columns too, and there are none; '
                        'add key_columns = ["codice_cliente"] (the columns that tell two '
                        "notices to one address apart), or remove dedupe",
                    )
                return mode
        self.problem(
            "dedupe",
            f'{shown(value)} is not a way to find duplicates; write "address+keys" (a '
            "duplicate has the address and the key_columns of an earlier row: the default) "
            'or "address" (one message an address)',
        )
        return "address+keys"

    def flag(self, key: str) -> bool:
        value = self.raw.get(key, False)
        if not isinstance(value, bool):
            kind = "text" if isinstance(value, str) else kind_of(value)
            self.problem(key, f"{shown(value)} is {kind}; write {key} = true or {key} = false")
            return False
        return value

    def encoding(self, table: Mapping[str, Any]) -> str | None:
        value = self.text("encoding", example='"windows-1252"', table=table, label="csv.encoding")
        if value is None:
            return None
        try:
            return codecs.lookup(value).name
        except LookupError:
            self.problem(
                "csv.encoding",
                f'"{value}" is not a known encoding; write "utf-8" or "windows-1252", '
                "or remove the key to have it detected",
            )
            return None

    def delimiter(self, table: Mapping[str, Any]) -> str | None:
        value = table.get("delimiter")
        if value is None:
            return None
        if isinstance(value, str) and value.strip().lower() in _DELIMITER_WORDS:
            return _DELIMITER_WORDS[value.strip().lower()]
        if not isinstance(value, str) or len(value) != 1 or value in '"\r\n' or value.isalnum():
            self.problem(
                "csv.delimiter",
                f'{shown(value)} is not a delimiter; write ";", "," or "\\t" (tab), '
                "or remove the key to have it sniffed",
            )
            return None
        return value

    def max_message_bytes(self, table: Mapping[str, Any]) -> int:
        value = table.get("max_message_mb", DEFAULT_MAX_MESSAGE_MB)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.problem(
                "limits.max_message_mb",
                f"{shown(value)} is not a positive number of MB; write e.g. max_message_mb = 100",
            )
            return DEFAULT_MAX_MESSAGE_MB * MIB
        return int(value * MIB)
