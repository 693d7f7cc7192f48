"""Writing a file safely: whole or not at all, and never through a symbolic link.

Every file massiva writes (a rejects list, a follow-up campaign, a downloaded form) goes
through :func:`atomic_write`: the bytes are written beside the target under a temporary
name, then renamed over it, so a reader never sees half a file and an error leaves the
old one as it was. A target that is a symbolic link is refused, not followed: a link
where massiva writes is a mistake or a trap (``rejects.csv`` -> ``~/.bashrc``), and
writing through it would overwrite a file nobody named. Typical use::

    with atomic_write(Path("scarti.csv"), encoding="utf-8-sig", newline="") as out:
        csv.writer(out).writerows(rows)

Only the last part of the path is checked: the folders on the way are the caller's
choice (a campaign folder may well be a link to a shared disk).
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO, overload

#: Flags of the temporary file: a new file only (O_EXCL never follows a link either).
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_CREATE |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


class TargetRefused(ValueError):
    """The file cannot be written where asked; the message says what, where, how to fix."""


def check_target(path: Path) -> None:
    """Raise :class:`TargetRefused` if ``path`` is a symbolic link or a folder.

    A missing file is fine: it will be created. :func:`atomic_write` calls this; call
    it yourself to refuse before long work.
    """
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # no such file (fine), or its folder is missing: the write says so
        return
    if stat.S_ISLNK(mode):
        raise TargetRefused(
            f"{path} is a symbolic link: massiva does not write through links;"
            " remove it and run again"
        )
    if stat.S_ISDIR(mode):
        raise TargetRefused(f"{path} is a folder: give the name of a file")


@overload
def atomic_write(path: Path) -> AbstractContextManager[BinaryIO]: ...


@overload
def atomic_write(
    path: Path, *, encoding: str, newline: str | None = None
) -> AbstractContextManager[TextIO]: ...


def atomic_write(
    path: Path, *, encoding: str | None = None, newline: str | None = None
) -> AbstractContextManager[IO[Any]]:
    """``path`` opened for writing (binary, or text with ``encoding``), appearing whole
    when the block ends without an error, and not at all otherwise.

    Raises :class:`TargetRefused` (before anything is written) if ``path`` is a symbolic
    link or a folder, :class:`OSError` if it cannot be written. A link put at ``path``
    while the file is being written is refused too; one put there in the instant before
    the rename is replaced by the file: never followed.
    """
    return _atomic_write(path, encoding, newline)


@contextmanager
def _atomic_write(path: Path, encoding: str | None, newline: str | None) -> Iterator[IO[Any]]:
    check_target(path)
    fd, temporary = _create_beside(path)
    try:
        mode = "w" if encoding else "wb"
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())  # on disk before it takes the name: never an empty file
        with suppress(FileNotFoundError):  # a file rewritten keeps its permissions
            os.chmod(temporary, stat.S_IMODE(os.lstat(path).st_mode))
        check_target(path)  # a link put there meanwhile: refuse it rather than replace it
        # os.replace renames onto the name itself: a link there would be replaced, not
        # followed, so even a link appearing after this check leads nowhere.
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _create_beside(path: Path) -> tuple[int, Path]:
    """A new, empty temporary file in ``path``'s folder, and its path.

    Created with mode 0o666 less the umask, as any new file (mkstemp's would be private).
    """
    while True:
        temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.partial"
        try:
            return os.open(temporary, _CREATE, 0o666), temporary
        except FileExistsError:  # another name taken: draw again
            continue
