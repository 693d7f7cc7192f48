"""Follow-up campaigns: the recipients a campaign did not reach, ready to send again.

:func:`write_follow_up` writes a new campaign folder beside the original, named like it
with ``-retry-N`` (``campaigns/avvisi`` → ``campaigns/avvisi-retry-1``; a follow-up of
``avvisi-retry-1`` is ``avvisi-retry-2``), holding:

- ``campaign.toml``: the original's settings under the name ``<name>-retry-N``, the
  recipients file read as UTF-8 and ``;``-separated;
- the recipients file: just the chosen recipients (failed, expired), in file order, each
  with its original fields;
- the templates of the campaign folder, the shared attachments and the chosen
  recipients' own attachments, copied as they are (shared layouts stay where they are).

The follow-up sends exactly the message the original sent: the original folder must be
as it was loaded, and the follow-up must check to the same templates and attachments.
A recipient already in another loaded follow-up of the same campaign is left out (it
would get the message twice). The folder appears whole or not at all. Nothing is loaded
or sent: ``massiva campaign check``, then ``load``, then ``send``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from massiva.campaign import CampaignError, CampaignSpec, load_spec
from massiva.campaign.paths import PathProblem, open_inside, real_root, resolve_inside
from massiva.campaign.spec import CAMPAIGN_FILE, MIB
from massiva.campaign.templates import referenced_sources
from massiva.files import TargetRefused, atomic_write
from massiva.lifecycle import RETRYABLE, ordered
from massiva.loaded import find
from massiva.report.errors import NothingToRetry, ReportError
from massiva.report.rows import rome_iso
from massiva.store import CampaignRow, Store
from massiva.times import utcnow

#: The states a follow-up may take recipients from.
RETRY_STATES: tuple[str, ...] = ordered(RETRYABLE)
_SUFFIX = re.compile(r"-retry-(\d+)$")


class RetryError(ReportError):
    """The follow-up cannot be written; the message says what, where and how to fix it."""


@dataclass(frozen=True)
class FollowUp:
    """What :func:`write_follow_up` wrote."""

    source: str  # the campaign followed up
    name: str  # the follow-up's name
    folder: Path
    recipients_file: Path
    counts: dict[str, int]  # recipients taken, per state
    left_out: int  # in those states, but already in another follow-up
    earlier: tuple[str, ...]  # the loaded follow-ups of the same campaign
    templates: tuple[str, ...]  # template files copied
    attachments: tuple[str, ...]  # shared attachments copied
    recipient_attachments: int  # per-recipient attachments copied

    @property
    def recipients(self) -> int:
        """Recipients in the follow-up."""
        return sum(self.counts.values())


def _toml_string(value: str) -> str:
    """``value`` as a TOML basic string."""
    escaped = []
    for char in value:
        if char in '"\\':
            escaped.append("\\" + char)
        elif char == "\n":
            escaped.append("\\n")
        elif char == "\t":
            escaped.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _template_key(spec: CampaignSpec, kind: str, source: str, file: Path | None) -> str:
    """The campaign.toml line of the subject or body: inline, or the file's name."""
    if file is None:
        return f"{kind} = {_toml_string(source)}"
    inside = file.is_relative_to(spec.folder)
    root = spec.folder if inside or spec.shared_templates is None else spec.shared_templates
    return f"{kind}_file = {_toml_string(_relative(file, root))}"


def _pool_key(mailboxes: tuple[str, ...]) -> str:
    """The source's pool as loaded (not a [pools] name: the follow-up keeps the boxes)."""
    if len(mailboxes) == 1:
        return f"mailbox = {_toml_string(mailboxes[0])}"
    return "mailboxes = [" + ", ".join(_toml_string(m) for m in mailboxes) + "]"


def _campaign_toml(spec: CampaignSpec, name: str, source: CampaignRow, states: str) -> str:
    lines = [
        f"# A follow-up of campaign {source.name!r}: its {states} recipients, written by",
        f"# `massiva campaign retry` at {rome_iso(utcnow())}. Same templates and attachments.",
        f"name = {_toml_string(name)}",
        _pool_key(source.mailboxes or spec.mailboxes),
        _template_key(spec, "subject", spec.subject, spec.subject_file),
        _template_key(spec, "body", spec.body, spec.body_file),
        f"recipients = {_toml_string(_relative(spec.recipients, spec.folder))}",
        f"address_column = {_toml_string(spec.address_column)}",
        "attachments = ["
        + ", ".join(_toml_string(_relative(a, spec.folder)) for a in spec.attachments)
        + "]",
    ]
    if spec.attachment_column:
        lines.append(f"attachment_column = {_toml_string(spec.attachment_column)}")
    lines.append("key_columns = [" + ", ".join(map(_toml_string, spec.key_columns)) + "]")
    lines.append(f"dedupe = {_toml_string(spec.dedupe)}")
    lines.append(f"strict_empty = {'true' if spec.strict_empty else 'false'}")
    megabytes = spec.max_message_bytes / MIB
    shown = int(megabytes) if megabytes.is_integer() else megabytes
    lines += [
        "",
        "[csv]",
        'encoding = "utf-8"',
        'delimiter = ";"',
        "",
        "[limits]",
        f"max_message_mb = {shown}",
    ]
    return "\n".join(lines) + "\n"


def _next_number(base_name: str, base_folder: Path, loaded: Collection[str]) -> int:
    """One more than the highest N of ``<name>-retry-N`` loaded or of a folder beside."""
    used = [0]
    for name in loaded:
        found = _SUFFIX.search(name)
        if found and name == f"{base_name}-retry-{found[1]}":
            used.append(int(found[1]))
    if base_folder.parent.is_dir():
        for entry in base_folder.parent.iterdir():
            found = _SUFFIX.search(entry.name)
            if found and entry.name == f"{base_folder.name}-retry-{found[1]}":
                used.append(int(found[1]))
    return max(used) + 1


def _in_folder(folder: Path, name: str) -> bool:
    """True if the template ``name`` is a file of the campaign folder (not a shared one)."""
    try:
        return os.path.isfile(resolve_inside(str(folder), name)[1])
    except PathProblem:
        return False


def _copy(source_root: Path, target_root: Path, name: str) -> None:
    """Copy the file ``name`` of the campaign folder as campaign check finds it: confined
    to the folder (:func:`resolve_inside`), and opened without following a link, so a
    file swapped for a link to a file outside is refused, never copied."""
    target = target_root / name
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        source = open_inside(real_root(source_root), name)
    except PathProblem as exc:
        raise RetryError(_outside(source_root, name, exc)) from None
    with source, atomic_write(target) as out:
        shutil.copyfileobj(source, out, MIB)


def _outside(folder: Path, name: str, problem: PathProblem) -> str:
    """Why ``name`` cannot go in the follow-up: it is not the file that was loaded."""
    why = str(problem).split(";")[0]  # its own fix ("copy the file...") is not this one
    return (
        f'"{name}" in {folder} is not the file that was loaded: it {why}; put the loaded'
        " file back in its place, then retry"
    )


def _missing(folder: Path, names: Collection[str]) -> list[str]:
    """The recipients' own files no longer in ``folder``, sorted.

    They are not in the content hash: each is checked as campaign check does, so that
    one swapped for a link to a file outside the folder since the load raises
    :class:`RetryError` here, before anything is written.
    """
    root = real_root(folder)
    missing = []
    for name in sorted(names):
        try:
            real = resolve_inside(root, name)[1]
        except PathProblem as exc:
            raise RetryError(_outside(folder, name, exc)) from None
        if not os.path.isfile(real):
            missing.append(name)
    return missing


@dataclass
class _Chosen:
    """The recipients a follow-up takes, read in a first pass."""

    counts: dict[str, int]
    ids: set[int] = field(default_factory=set)  # the second pass writes these only
    header: dict[str, None] = field(default_factory=dict)  # their columns, in order
    own_files: set[str] = field(default_factory=set)  # their own attachments


async def _choose(
    store: Store, campaign_id: int, states: tuple[str, ...], others: Collection[int]
) -> _Chosen:
    """Who goes in the follow-up: their ids, columns (a CSV loaded twice may have grown
    some) and attachments."""
    chosen = _Chosen(dict.fromkeys(states, 0))
    async for batch in store.reports.retry_candidates(campaign_id, states, not_in=others):
        for candidate in batch:
            chosen.ids.add(candidate.id)
            chosen.counts[candidate.state] += 1
            chosen.header.update(dict.fromkeys(json.loads(candidate.fields)))
            if candidate.attachment:
                chosen.own_files.add(candidate.attachment)
    return chosen


async def _write(
    store: Store,
    work: Path,
    spec: CampaignSpec,
    source: CampaignRow,
    new_name: str,
    chosen: _Chosen,
    copied: Collection[str],
    others: Collection[int],
) -> None:
    """Write the follow-up's files into the folder ``work``."""
    states = tuple(chosen.counts)
    with atomic_write(work / CAMPAIGN_FILE, encoding="utf-8") as toml:
        toml.write(_campaign_toml(spec, new_name, source, " and ".join(states)))
    for name in sorted({*copied, *chosen.own_files}):
        _copy(spec.folder, work, name)
    recipients = work / _relative(spec.recipients, spec.folder)
    recipients.parent.mkdir(parents=True, exist_ok=True)
    # UTF-8 with a byte-order mark: massiva reads it, and so does Excel.
    with atomic_write(recipients, encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(list(chosen.header))
        async for batch in store.reports.retry_candidates(source.id, states, not_in=others):
            writer.writerows(
                [json.loads(candidate.fields).get(column, "") for column in chosen.header]
                for candidate in batch
                if candidate.id in chosen.ids
            )


async def write_follow_up(
    store: Store,
    name: str,
    states: Collection[str],
    *,
    shared_templates: Path | None = None,
    pools: Mapping[str, tuple[str, ...]] | None = None,
) -> FollowUp:
    """Write the follow-up campaign of ``name``'s recipients in ``states`` (a subset of
    :data:`RETRY_STATES`); see the module's docstring. Raises :class:`RetryError`.
    ``pools``: massiva.toml's, which the source's campaign.toml may name."""
    wanted = tuple(s for s in RETRY_STATES if s in states)
    source = await find(store, name)
    try:
        spec = load_spec(Path(source.folder), shared_templates=shared_templates, pools=pools)
    except CampaignError as exc:
        raise RetryError(
            f"the folder of campaign {name!r}, {source.folder}, cannot be read as it was loaded"
            f" ({exc.problems[0]}); put it back as it was, then retry"
        ) from None
    folder = spec.folder
    if spec.content_hash() != source.content_hash:
        raise RetryError(
            f"the templates or shared attachments in {folder} changed since campaign"
            f" {name!r} was loaded, so a follow-up would not send the same message; put the"
            " loaded versions back, or copy the folder, give it a new name and load that"
        )

    base_name = _SUFFIX.sub("", source.name)
    base_folder = folder.with_name(_SUFFIX.sub("", folder.name))
    loaded = await store.reports.named_from(f"{base_name}-retry-")
    earlier = sorted(n for n in loaded if _SUFFIX.sub("", n) == base_name and n != name)
    others = [loaded[n] for n in earlier]
    number = _next_number(base_name, base_folder, loaded)
    new_name = f"{base_name}-retry-{number}"
    target = base_folder.with_name(f"{base_folder.name}-retry-{number}")

    chosen = await _choose(store, source.id, wanted, others)
    taken = sum(chosen.counts.values())
    left_out = await store.reports.count_in(source.id, wanted) - taken
    if taken == 0:
        why = f" ({left_out} are already in {', '.join(earlier)}: retry that campaign instead)"
        raise NothingToRetry(
            f"campaign {name!r} has no {' or '.join(wanted)} recipient to retry"
            + (why if left_out else "")
        )
    missing = _missing(folder, chosen.own_files)
    if missing:
        raise RetryError(
            f"{len(missing)} attachment(s) of the recipients to retry are no longer in"
            f" {folder}, e.g. {missing[0]}; put them back, then retry"
        )
    templates = {r for r, _ in referenced_sources(spec) if _in_folder(folder, r)}
    templates |= {
        _relative(file, folder)
        for file in (spec.subject_file, spec.body_file)
        if file is not None and file.is_relative_to(folder)
    }
    shared = [_relative(a, folder) for a in spec.attachments]

    try:
        work = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        )
    except OSError as exc:
        raise RetryError(
            f"{target.parent} cannot be written ({exc.strerror}); check its permissions"
        ) from None
    try:
        await _write(store, work, spec, source, new_name, chosen, [*templates, *shared], others)
        try:
            same = load_spec(work, shared_templates=shared_templates, pools=pools).content_hash()
        except CampaignError as exc:
            same = str(exc)
        if same != source.content_hash:
            raise RetryError(
                f"the follow-up written in {work} would not send the same message as"
                f" campaign {name!r}: this is a bug in massiva; please report it"
            )
        os.rename(work, target)
    except TargetRefused as exc:  # a link in the new folder: nothing was written through it
        shutil.rmtree(work, ignore_errors=True)
        raise RetryError(str(exc)) from None
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise RetryError(
            f"the follow-up could not be written in {target} ({exc.strerror}"
            f"{': ' + exc.filename if exc.filename else ''}); nothing was left there:"
            " fix that, then retry"
        ) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FollowUp(
        source=source.name,
        name=new_name,
        folder=target,
        recipients_file=target / _relative(spec.recipients, folder),
        counts=chosen.counts,
        left_out=left_out,
        earlier=tuple(earlier),
        templates=tuple(sorted(templates)),
        attachments=tuple(shared),
        recipient_attachments=len(chosen.own_files),
    )
