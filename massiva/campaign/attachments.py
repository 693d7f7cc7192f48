"""Attachments: checked by their type and size, read whole only when a message is sent.

Shared attachments (``attachments`` in campaign.toml) go to every recipient; a
per-recipient one is named, relative to the campaign folder, in the
``attachment_column`` of its row (an empty cell: none). Nothing outside the campaign
folder can be attached (see :mod:`massiva.campaign.paths`).

The check reads only the first bytes of each file, once per file, to see that it is
what its name says and no program (:mod:`massiva.campaign.filetypes`); it takes sizes
from ``os.stat``. Both are cached per name. A message's size is counted as sent, with
the attachments base64-encoded (the vendor's ``data:`` URI, and the MIME message the
provider builds from it, carry a third more than the file on disk): shared attachments
+ the row's attachment + the HTML body must fit ``max_message_bytes``.

:func:`message_attachments` is for sending: the shared attachments are read and encoded
once per :class:`CampaignSpec` object and every message refers to that one encoding; the
recipient's file is read when its message is built, so memory holds one encoding of
each shared file and of the files of the messages in flight, never every recipient's.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from massiva.api.models import Attachment
from massiva.archive import Archive, ArchiveError
from massiva.campaign import filetypes
from massiva.campaign.errors import CampaignError
from massiva.campaign.paths import PathProblem, clean_name, open_inside, real_root, resolve_inside
from massiva.campaign.spec import MIB, CampaignSpec

#: Names whose check is remembered; past this the cache starts again (bounded memory).
_CACHE_LIMIT = 65536


def encoded_size(size: int) -> int:
    """The length of ``size`` bytes in base64."""
    return (size + 2) // 3 * 4


def human_size(size: int) -> str:
    """``size`` bytes for people: 1.5 MB, 12.0 KB, 300 bytes (1 MB = 1,048,576 bytes)."""
    if size >= MIB:
        return f"{size / MIB:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} bytes"


class AttachmentSizes:
    """Checks attachment names and types and knows the sizes, reading at most the first
    bytes of each file, once."""

    def __init__(self, spec: CampaignSpec) -> None:
        self.root = real_root(spec.folder)
        self._cache: dict[str, tuple[str, int] | str] = {}
        self._types: dict[str, str | None] = {}  # a file's name -> what is wrong with it

    def shared(self, spec: CampaignSpec) -> tuple[list[int], list[str]]:
        """The sizes of the shared attachments on disk, and the problems found."""
        sizes: list[int] = []
        problems: list[str] = []
        for path in spec.attachments:
            name = os.path.relpath(path, self.root)
            try:
                sizes.append(os.stat(path).st_size)
            except OSError:
                problems.append(
                    f'campaign.toml, attachments: "{name}" is no longer in the campaign folder; '
                    "put it back or remove it from the list"
                )
                continue
            wrong = self._type_problem(name)
            if wrong is not None:
                problems.append(f'campaign.toml, attachments: "{name}" {wrong}')
        return sizes, problems

    def per_recipient(self, value: str) -> tuple[str, int] | str:
        """``(name relative to the folder, size)`` of the file a cell names, or why not."""
        found = self._cache.get(value)
        if found is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            found = self._cache[value] = self._check(value)
        return found

    def _check(self, value: str) -> tuple[str, int] | str:
        try:
            name, real = resolve_inside(self.root, value)
        except PathProblem as exc:
            return f'attachment "{value}" {exc}'
        try:
            stat = os.stat(real)
        except OSError:
            return f'attachment "{value}" not found in the campaign folder'
        if os.path.isdir(real):
            return f'attachment "{value}" is a folder, not a file'
        if not os.access(real, os.R_OK):
            return f'attachment "{value}" cannot be read; check its permissions'
        if stat.st_size == 0:
            return f'attachment "{value}" is empty (0 bytes); replace it with the real file'
        wrong = self._type_problem(name)
        if wrong is not None:
            return f'attachment "{value}" {wrong}'
        return name, stat.st_size

    def _type_problem(self, name: str) -> str | None:
        """What is wrong with the type of the file ``name`` (relative to the folder), from
        its first bytes (:func:`~massiva.campaign.filetypes.problem`); read once a file."""
        if name not in self._types:
            if len(self._types) >= _CACHE_LIMIT:
                self._types.clear()
            try:
                with open_inside(self.root, name) as file:
                    wrong = filetypes.problem(name, file.read(filetypes.HEAD))
            except PathProblem as exc:
                wrong = str(exc)
            except OSError as exc:
                wrong = f"cannot be read ({exc.strerror}); check it"
            self._types[name] = wrong
        return self._types[name]


def message_attachments(
    spec: CampaignSpec, attachment: str | None, archive: Archive | None = None
) -> list[Attachment]:
    """The attachments of one message: the shared ones, then the recipient's file.

    ``attachment`` is :attr:`Recipient.attachment` (a name relative to the campaign
    folder) or None. The shared attachments are read and encoded on the first call and
    kept on ``spec``; the recipient's file is read now. With an ``archive``, each file is
    first kept there (byte-exact, by its SHA-256) and what is sent is read from that
    copy: the proof of content is what left, byte for byte. Raises
    :class:`CampaignError` if a file has gone or the name leads outside the folder. This
    reads files: from async code, call it in a thread (``asyncio.to_thread``).
    """
    # Kept per archive: encodings read without one were never put in it.
    key = f"shared_attachments:{archive.root if archive else ''}"
    shared: list[Attachment] | None = spec._cache.get(key)
    if shared is None:
        root = real_root(spec.folder)
        shared = [_encoded(root, os.path.relpath(path, root), archive) for path in spec.attachments]
        spec._cache[key] = shared
    result = list(shared)
    if attachment:  # the folder's real path read again: it may have been moved since
        result.append(_encoded(real_root(spec.folder), attachment, archive))
    return result


def _encoded(root: str, name: str, archive: Archive | None) -> Attachment:
    """The file ``name`` in the folder ``root``, read and encoded, through
    :func:`~massiva.campaign.paths.open_inside`: a file swapped for a link since the
    check is refused, never followed; so is a file that is no longer of the type its
    name says."""
    try:
        shown = os.path.basename(clean_name(name))
        with open_inside(root, name) as file:
            # Checked at load; checked again, as it may have been replaced since.
            wrong = filetypes.problem(name, file.read(filetypes.HEAD))
            if wrong is not None:
                raise CampaignError([f'attachment "{name}" {wrong}'])
            file.seek(0)
            if archive is None:
                return Attachment.from_file(shown, file)
            return _kept(archive, file, shown)
    except PathProblem as exc:
        raise CampaignError([f'attachment "{name}" {exc}']) from None
    except OSError as exc:
        raise CampaignError(
            [
                f'attachment "{name}" cannot be read ({exc.strerror}); '
                "put it back in the campaign folder"
            ]
        ) from None


def _kept(archive: Archive, file: BinaryIO, name: str) -> Attachment:
    """``file`` kept in the archive, and encoded from the copy kept. The archive failing
    (a full disk) is no fault of the attachment: :class:`ArchiveError`, which stops the
    sending, not this recipient."""
    try:
        digest = archive.put_file(file)
        with open(archive.path(digest), "rb") as kept:
            return Attachment.from_file(name, kept)
    except OSError as exc:
        raise ArchiveError(f"the archive {archive.root} cannot keep {name}: {exc}") from exc
