"""Writing a campaign's evidence bundle: one zip a law office can file.

Layout (one folder a recipient, named by its spreadsheet row first, so that the folders
sort as the spreadsheet)::

    manifest.json                       what every file is, with its SHA-256 and size
    SHA256SUMS                          every other file's SHA-256 (sha256sum -c)
    allegati/<sha256>-<name>            an attachment shared by recipients, or big: once
    0002-mario.rossi@legalmail.it/
        attestazione.html               the printable page, in Italian
        oggetto.txt                     the subject as sent (UTF-8, as hashed)
        corpo.html                      the body as posted, from the archive
        allegati/<name>                 its own attachments, from the archive
        ricevute/<inbox id>-<tipo>.eml  each receipt's body as received
        non-attendibili/<id>-<tipo>.eml messages kept that failed a check: never proof

The zip is written entry by entry into a temporary file renamed in place at the end
(:func:`massiva.files.atomic_write`), so a failure leaves nothing behind. Memory stays
bounded whatever the campaign's size: files are copied in parts, the receipts of a few
recipients are held while their signatures are checked, and the two indexes are spooled
to disk until the end. The database is read in one snapshot.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import re
import tempfile
import zipfile
from collections import deque
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from massiva import __version__
from massiva.archive import Archive
from massiva.campaign import addresses
from massiva.evidence import attestation
from massiva.evidence.attestation import Page, ReceiptLine, SentLine
from massiva.evidence.sums import MANIFEST, SUMS, sums_line
from massiva.files import TargetRefused, atomic_write, check_target
from massiva.lifecycle import State
from massiva.loaded import find
from massiva.receipts import Kind, parse_body
from massiva.report.rows import rome, rome_iso
from massiva.signature import Signature, check
from massiva.store import CampaignRow, Store
from massiva.store.evidence import KeptReceipt, SentRecipient
from massiva.times import ROME, utcnow

#: An attachment this big is kept once at the bundle's root, even for one recipient.
SHARED_FROM = 1 << 20
#: Signature checks at once. Each is a run of openssl, which waits on its start as much
#: as it computes: two a core keep the cores busy.
CHECKS = 2 * (os.cpu_count() or 1)
#: Recipients read ahead while the signatures of their receipts are checked (most have
#: one receipt body: the final one).
AHEAD = 2 * CHECKS
#: Receipt bodies held while they wait for their signature's check, at most (bytes);
#: one recipient's are held whatever their size.
HELD_BYTES = 64 << 20
_CHUNK = 1 << 20
#: What a name in the bundle may hold: letters and digits of any script, . _ - + @.
_UNSAFE = re.compile(r"[^\w.@+-]+")
#: Kinds that say a sending failed for good (their code says why).
_FAILURES = {Kind.NOT_ACCEPTED, Kind.NOT_DELIVERED, Kind.TIMEOUT, Kind.VIRUS}


class EvidenceError(ValueError):
    """The bundle cannot be written where asked; the message says why and how to fix it."""


class NotInCampaign(EvidenceError):
    """An address asked for is not one of the campaign's recipients."""


@dataclass(frozen=True)
class Bundled:
    """A bundle written: where, how big, and what it could not hold."""

    path: Path
    campaign: str
    recipients: int
    files: int
    size: int
    not_recorded: int  # recipients posted before what was sent was recorded
    not_archived: int  # bodies and attachments recorded but not in the archive
    bodiless: int  # receipts whose body was never fetched
    doubtful: int  # messages kept that are not trusted


@dataclass(frozen=True)
class SentFile:
    """An attachment as the post carried it."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class SentContent:
    """What a post carried, by SHA-256 (``recipient.sent_content``)."""

    subject: str
    body: str
    attachments: tuple[SentFile, ...]

    @classmethod
    def read(cls, stored: str | None) -> SentContent | None:
        """The content recorded (None: not recorded)."""
        if stored is None:
            return None
        data = json.loads(stored)
        files = tuple(SentFile(str(n), str(s), int(z)) for n, s, z in data["attachments"])
        return cls(str(data["subject"]), str(data["body"]), files)


def safe_name(text: str, *, limit: int = 120) -> str:
    """``text`` as a file name in any zip tool and any system: no folder separators, no
    control or reserved characters (a run of them becomes ``_``), no leading dot."""
    name = _UNSAFE.sub("_", text).lstrip(".")[:limit]
    return name or "_"


def attachment_name(name: str) -> str:
    """An attachment's file name (the last part of the path it was sent under), safe."""
    return safe_name(PurePosixPath(name.replace("\\", "/")).name)


async def make_bundle(
    store: Store,
    name: str,
    output: Path,
    *,
    only: Collection[str] = (),
    now: datetime | None = None,
) -> Bundled:
    """Write the evidence bundle of campaign ``name`` to ``output`` (a zip), for the
    recipients at the addresses ``only`` (all of them when empty).

    Raises :class:`~massiva.loaded.UnknownCampaign`, :class:`NotInCampaign` for an
    address the campaign does not hold and :class:`EvidenceError` for an output that
    cannot be written (a link, a folder, no such folder); nothing is written then.
    """
    _check_output(output)
    campaign = await find(store, name)
    wanted = tuple(dict.fromkeys(addresses.normalise(a) for a in only))
    attestation.template()  # a broken installation fails here, before any work
    at = now or utcnow()
    async with store.evidence.snapshot():
        selection = await store.evidence.selection(campaign.id, wanted)
        if selection.absent:
            raise NotInCampaign(
                f"campaign {name!r} has no recipient at {', '.join(selection.absent)}:"
                f" see massiva report {name}"
            )
        uses = await store.evidence.attachment_uses(campaign.id, wanted)
        # The two indexes grow a few lines a recipient: spooled to disk until the end.
        with (
            tempfile.TemporaryFile() as listed,
            tempfile.TemporaryFile() as sums,
            atomic_write(output) as out,
        ):
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
                writer = _Writer(
                    zf,
                    Archive(store.archive_dir),
                    campaign,
                    at,
                    uses,
                    len(str(selection.last_row)),
                    listed,
                    sums,
                )
                await _fill(store, writer, campaign.id, wanted)
                await asyncio.to_thread(writer.finish)
            size = out.tell()
    return Bundled(
        path=output,
        campaign=name,
        recipients=selection.recipients,
        size=size,
        **writer.counts(),
    )


def _check_output(output: Path) -> None:
    """Raise :class:`EvidenceError` unless a file can be written at ``output``."""
    try:
        check_target(output)
    except TargetRefused as exc:
        raise EvidenceError(f"{exc} (or give another -o)") from None
    folder = output.absolute().parent
    if not folder.is_dir():
        raise EvidenceError(f"{folder}: no such folder; create it, or give another -o")


@dataclass
class _Pending:
    """A recipient read, its receipts' signatures being checked."""

    recipient: SentRecipient
    receipts: list[KeptReceipt]
    checks: list[asyncio.Future[Signature] | None]
    held: int


async def _fill(store: Store, writer: _Writer, campaign_id: int, wanted: tuple[str, ...]) -> None:
    """Write every recipient, in order, its signatures checked a few recipients ahead
    (each check is a run of openssl: they overlap)."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=CHECKS, thread_name_prefix="signature")
    waiting: deque[_Pending] = deque()
    held = 0

    async def write_oldest() -> None:
        nonlocal held
        item = waiting.popleft()
        signatures = [None if c is None else await c for c in item.checks]
        await asyncio.to_thread(writer.add, item.recipient, item.receipts, signatures)
        held -= item.held

    try:
        async for batch in store.evidence.recipients(campaign_id, wanted):
            for recipient in batch:
                receipts = await store.evidence.receipts(
                    recipient.id, recipient.mailbox, recipient.message_id
                )
                checks = [
                    None if r.body is None else loop.run_in_executor(pool, check, r.body)
                    for r in receipts
                ]
                size = sum(len(r.body or "") for r in receipts)
                waiting.append(_Pending(recipient, receipts, checks, size))
                held += size
                while len(waiting) > AHEAD or (held > HELD_BYTES and len(waiting) > 1):
                    await write_oldest()
        while waiting:
            await write_oldest()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Entry:
    """A file written into the bundle."""

    path: str
    sha256: str
    size: int
    what: str

    def as_json(self) -> dict[str, Any]:
        """The file as the manifest lists it."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "what": self.what}


@dataclass
class _Writer:
    """The zip being written, and what it holds so far (for the two indexes)."""

    zf: zipfile.ZipFile
    archive: Archive
    campaign: CampaignRow
    at: datetime
    uses: dict[str, int]
    row_digits: int
    listed: BinaryIO  # the manifest's recipients so far, one JSON object a line
    sums: BinaryIO  # the lines of SHA256SUMS so far
    shared: dict[str, _Entry] = field(default_factory=dict)
    recipients: int = 0
    files: int = 0
    not_recorded: int = 0
    not_archived: int = 0
    bodiless: int = 0
    doubtful: int = 0

    def counts(self) -> dict[str, int]:
        """What :class:`Bundled` counts of the files written."""
        return {
            "files": self.files,
            "not_recorded": self.not_recorded,
            "not_archived": self.not_archived,
            "bodiless": self.bodiless,
            "doubtful": self.doubtful,
        }

    # -- entries ---------------------------------------------------------------------

    def _info(self, path: str, *, compress: bool = True) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, self.at.astimezone(ROME).timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        return info

    def _record(self, path: str, sha: str, size: int, what: str) -> _Entry:
        self.sums.write(sums_line(path, sha).encode("utf-8"))
        self.files += 1
        return _Entry(path, sha, size, what)

    def put(self, path: str, data: bytes, what: str) -> _Entry:
        """Write ``data`` as the file ``path``."""
        self.zf.writestr(self._info(path), data)
        return self._record(path, hashlib.sha256(data).hexdigest(), len(data), what)

    def copy(self, path: str, source: Path, what: str) -> _Entry:
        """Write the file ``source`` as ``path``, read in parts. Attachments are stored
        as they are: PDFs and images are compressed already, deflating them again costs
        time and saves nothing."""
        with open(source, "rb") as file:
            big = os.fstat(file.fileno()).st_size >= zipfile.ZIP64_LIMIT
            return self._stream(path, _parts(file), what, compress=what == "body", big=big)

    def _stream(
        self, path: str, parts: Iterable[bytes], what: str, *, compress: bool, big: bool = False
    ) -> _Entry:
        """Write ``parts`` as the file ``path``."""
        sha, size = hashlib.sha256(), 0
        with self.zf.open(self._info(path, compress=compress), "w", force_zip64=big) as out:
            for part in parts:
                sha.update(part)
                size += len(part)
                out.write(part)
        return self._record(path, sha.hexdigest(), size, what)

    def archived(self, path: str, digest: str, what: str) -> _Entry | None:
        """The archive's copy of ``digest`` written as ``path``; None (nothing written)
        when the archive does not hold it whole."""
        if not self.archive.intact(digest):
            self.not_archived += 1
            return None
        return self.copy(path, self.archive.path(digest), what)

    # -- a recipient -----------------------------------------------------------------

    def add(
        self,
        recipient: SentRecipient,
        receipts: list[KeptReceipt],
        signatures: list[Signature | None],
    ) -> None:
        """Write one recipient's folder: what was sent, its receipts, its page."""
        folder = f"{recipient.row:0{max(4, self.row_digits)}d}-{safe_name(recipient.address)}"
        files: list[_Entry] = []
        sent = SentContent.read(recipient.sent_content)
        posted = recipient.message_id is not None or recipient.sent_at is not None
        lines, sent_note, attachments = self._content(folder, recipient, sent, posted, files)
        trusted, doubtful, kept = self._receipts(folder, receipts, signatures, files)
        late = self.campaign.schedule.past_deadline(self.at)
        page = Page(
            campaign=self.campaign.name,
            mailbox=recipient.mailbox,
            address=recipient.address,
            row=recipient.row,
            subject=recipient.subject,
            message_id=recipient.message_id or "",
            state=attestation.state_name(recipient.state, late=late),
            times=_times(recipient),
            reason=recipient.reason or "",
            code=_failure_code(receipts),
            sent=tuple(lines),
            sent_note=sent_note,
            receipts=tuple(trusted),
            doubtful=tuple(doubtful),
            notes=_notes(recipient),
            generated_at=attestation.when(self.at),
            version=__version__,
        )
        files.append(
            self.put(f"{folder}/attestazione.html", attestation.render(page), "attestation")
        )
        listing = json.dumps(
            {
                "row": recipient.row,
                "address": recipient.address,
                "mailbox": recipient.mailbox or None,
                "folder": folder,
                "state": recipient.state,
                "subject": recipient.subject,
                "message_id": recipient.message_id,
                "sent_at": rome(recipient.sent_at) or None,
                "accepted_at": rome(recipient.accepted_at) or None,
                "delivered_at": rome(recipient.delivered_at) or None,
                "failed_at": rome(recipient.failed_at) or None,
                "reason": recipient.reason,
                "purged_at": rome(recipient.purged_at) or None,
                "sent": None
                if sent is None
                else {"subject": sent.subject, "body": sent.body, "attachments": attachments},
                "receipts": kept,
                "files": [entry.as_json() for entry in files],
            },
            ensure_ascii=False,
        )
        self.listed.write((",\n" if self.recipients else "").encode() + listing.encode("utf-8"))
        self.recipients += 1

    def _content(
        self,
        folder: str,
        recipient: SentRecipient,
        sent: SentContent | None,
        posted: bool,
        files: list[_Entry],
    ) -> tuple[list[SentLine], str, list[dict[str, Any]]]:
        """Write what the post carried; its lines for the page, a note when it is not
        all here, and its attachments for the manifest."""
        lines: list[SentLine] = []
        if sent is None:
            if not posted:
                return lines, "Nessun contenuto: il messaggio non è stato inviato.", []
            self.not_recorded += 1
            files.append(
                self.put(f"{folder}/oggetto.txt", recipient.subject.encode("utf-8"), "subject")
            )
            return (
                lines,
                "Impronte di quanto inviato non registrate: il messaggio fu inviato prima che"
                " massiva le conservasse. L'oggetto (oggetto.txt) è quello registrato"
                " all'invio e citato dalle ricevute; corpo e allegati non sono in questa"
                " raccolta.",
                [],
            )
        missing: list[str] = []
        notes: list[str] = []
        subject = self.put(f"{folder}/oggetto.txt", recipient.subject.encode("utf-8"), "subject")
        files.append(subject)
        if subject.sha256 != sent.subject:
            notes.append(
                "L'oggetto registrato (oggetto.txt) NON corrisponde all'impronta di quanto"
                f" inviato: il suo SHA-256 è {subject.sha256}."
            )
        lines.append(SentLine("oggetto", sent.subject, subject.size, "oggetto.txt"))
        body = self.archived(f"{folder}/corpo.html", sent.body, "body")
        if body is None:
            missing.append("il corpo")
        else:
            files.append(body)
        size = body.size if body is not None else None  # not recorded: the archive knew it
        lines.append(SentLine("corpo (HTML)", sent.body, size, _where(body, folder)))
        attachments: list[dict[str, Any]] = []
        taken: set[str] = set()
        for attachment in sent.attachments:
            entry = self._attachment(folder, attachment, taken, files)
            if entry is None:
                missing.append(f"l'allegato {attachment.name}")
            lines.append(
                SentLine(
                    f"allegato {attachment.name}",
                    attachment.sha256,
                    attachment.size,
                    _where(entry, folder),
                )
            )
            attachments.append(
                {
                    "name": attachment.name,
                    "sha256": attachment.sha256,
                    "size": attachment.size,
                    "path": entry.path if entry is not None else None,
                }
            )
        if missing:
            notes.append(
                f"Non in questa raccolta: {'; '.join(missing)} (non conservato integro"
                f" nell'archivio {self.archive.root}). Le impronte qui sotto sono quelle"
                " registrate all'invio."
            )
        if recipient.state in (State.REJECTED, State.PENDING):
            notes.append("Il messaggio non è partito: questo è quanto si tentò di inviare.")
        return lines, " ".join(notes), attachments

    def _attachment(
        self, folder: str, attachment: SentFile, taken: set[str], files: list[_Entry]
    ) -> _Entry | None:
        """Write one attachment: once at the root when shared or big, else in the
        recipient's folder."""
        name = attachment_name(attachment.name)
        if self.uses.get(attachment.sha256, 0) > 1 or attachment.size >= SHARED_FROM:
            if attachment.sha256 not in self.shared:
                entry = self.archived(
                    f"allegati/{attachment.sha256}-{name}", attachment.sha256, "shared-attachment"
                )
                if entry is None:
                    return None
                self.shared[attachment.sha256] = entry
            return self.shared[attachment.sha256]
        path = f"{folder}/allegati/{name}"
        if path in taken:  # two attachments of one name: the hash tells them apart
            path = f"{folder}/allegati/{attachment.sha256[:12]}-{name}"
        taken.add(path)
        entry = self.archived(path, attachment.sha256, "attachment")
        if entry is not None:
            files.append(entry)
        return entry

    def _receipts(
        self,
        folder: str,
        receipts: list[KeptReceipt],
        signatures: list[Signature | None],
        files: list[_Entry],
    ) -> tuple[list[ReceiptLine], list[ReceiptLine], list[dict[str, Any]]]:
        """Write each receipt's body as received; its lines for the page (trusted ones,
        then the others) and its entries for the manifest."""
        trusted: list[ReceiptLine] = []
        doubtful: list[ReceiptLine] = []
        kept: list[dict[str, Any]] = []
        for receipt, signature in zip(receipts, signatures, strict=True):
            slug = attestation.SLUGS.get(receipt.kind, "altro")
            where = "non-attendibili" if receipt.suspicious else "ricevute"
            notes: list[str] = []
            if receipt.suspicious:
                self.doubtful += 1
                notes.append(f"non attendibile: {receipt.suspicious}")
            entry = None
            verdict = ""
            if receipt.body is None:
                self.bodiless += 1
            else:
                what = "suspicious-message" if receipt.suspicious else "receipt"
                path = f"{folder}/{where}/{receipt.inbox_id}-{slug}.eml"
                entry = self.put(path, receipt.body.encode("utf-8"), what)
                files.append(entry)
                if receipt.body_sha256 and receipt.body_sha256 != entry.sha256:
                    notes.append(
                        "il corpo conservato NON corrisponde all'impronta registrata alla"
                        f" ricezione ({receipt.body_sha256})"
                    )
                assert signature is not None
                verdict = attestation.signature_verdict(signature, self.at)
            date = _receipt_date(receipt)
            line = ReceiptLine(
                inbox_id=receipt.inbox_id,
                kind=attestation.kind_name(receipt.kind, receipt.final),
                date=date,
                subject=receipt.subject,
                sender=receipt.sender,
                sha256=entry.sha256 if entry else None,
                signature=verdict,
                file=_where(entry, folder) if entry else None,
                notes=tuple(notes),
            )
            (doubtful if receipt.suspicious else trusted).append(line)
            kept.append(
                {
                    "inbox_id": receipt.inbox_id,
                    "kind": receipt.kind,
                    "final": receipt.final,
                    "sender": receipt.sender,
                    "subject": receipt.subject,
                    "date": rome(receipt.date_utc) or None,
                    "date_as_written": receipt.date_raw,
                    "path": entry.path if entry else None,
                    "sha256": entry.sha256 if entry else None,
                    "recorded_sha256": receipt.body_sha256,
                    "suspicious": receipt.suspicious,
                    "signature": _signature_json(signature, verdict),
                }
            )
        return trusted, doubtful, kept

    # -- the indexes -----------------------------------------------------------------

    def finish(self) -> None:
        """Write ``manifest.json``, then ``SHA256SUMS`` over every other file."""
        head = json.dumps(
            {
                "format": "massiva-evidence/1",
                "campaign": self.campaign.name,
                "mailbox": self.campaign.mailbox,
                "mailboxes": list(self.campaign.mailboxes or (self.campaign.mailbox,)),
                "generated_at": rome_iso(self.at),
                "massiva_version": __version__,
                "files": [entry.as_json() for entry in self.shared.values()],
            },
            ensure_ascii=False,
            indent=1,
        )
        # The recipients go in before the object's closing brace, read back from disk.
        parts = [head.removesuffix("\n}").encode("utf-8") + b',\n "recipients": [\n']
        self.listed.seek(0)
        manifest = itertools.chain(parts, _parts(self.listed), [b"\n ]\n}\n"])
        self._stream(MANIFEST, manifest, "manifest", compress=True)
        self.sums.seek(0)
        with self.zf.open(self._info(SUMS), "w") as out:  # every file but itself
            for part in _parts(self.sums):
                out.write(part)
        self.files += 1


def _parts(file: BinaryIO) -> Iterator[bytes]:
    """What ``file`` holds from where it stands, a part at a time."""
    while part := file.read(_CHUNK):
        yield part


def _where(entry: _Entry | None, folder: str) -> str:
    """Where the page finds a file: its path from the recipient's folder."""
    if entry is None:
        return "non in questa raccolta"
    if entry.path.startswith(folder + "/"):
        return entry.path[len(folder) + 1 :]
    return "../" + entry.path


def _times(recipient: SentRecipient) -> tuple[tuple[str, str], ...]:
    shown = (
        ("Invio", recipient.sent_at),
        ("Accettazione", recipient.accepted_at),
        ("Consegna", recipient.delivered_at),
        ("Mancata consegna o rifiuto", recipient.failed_at),
    )
    return tuple((label, attestation.when_stored(at)) for label, at in shown if at)


def _notes(recipient: SentRecipient) -> tuple[str, ...]:
    if recipient.purged_at is None:
        return ()
    return (
        "Le ricevute sono state rimosse dalla casella il"
        f" {attestation.when_stored(recipient.purged_at)}, dopo essere state conservate:"
        " quelle qui elencate sono le copie conservate da massiva.",
    )


def _receipt_date(receipt: KeptReceipt) -> str:
    if receipt.date_utc is not None:
        return attestation.when_stored(receipt.date_utc)
    return f"{receipt.date_raw} (come scritta dal gestore: non leggibile come data)"


def _failure_code(receipts: list[KeptReceipt]) -> str:
    """The code of the final failure receipt's ``errore-esteso`` (``5.1.1``), if kept."""
    for receipt in receipts:
        if receipt.suspicious or receipt.body is None or receipt.kind not in _FAILURES:
            continue
        if receipt.final is False:
            continue
        code = parse_body(receipt.body).code
        if code:
            return code
    return ""


def _signature_json(signature: Signature | None, verdict: str) -> dict[str, Any] | None:
    if signature is None:
        return None
    return {
        "intact": signature.intact,
        "signer": signature.signer,
        "valid_until": rome_iso(signature.valid_until) if signature.valid_until else None,
        "verdict": verdict,
    }
