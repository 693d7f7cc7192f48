"""Names of files inside a folder: nothing outside it can be reached.

A name is relative to the folder, written with ``/`` (a ``\\`` from a Windows
spreadsheet counts as ``/``). Absolute paths, drive letters and ``..`` are refused, and
so is a symbolic link that leads out of the folder: the check is made on the real path.
:func:`open_inside` reads a file so checked without following any link after the check,
so a file swapped for a link in between is refused too.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PureWindowsPath
from typing import BinaryIO

#: Opening one part of a real path: a link there now is refused, not followed.
_NOFOLLOW = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
#: Where the system cannot open relative to a folder without following links (Windows),
#: :func:`open_inside` opens the checked real path as it is.
_STEPWISE = (
    hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY") and os.open in os.supports_dir_fd
)


class PathProblem(ValueError):
    """Why a name cannot be used; the message completes a sentence about the name."""


def clean_name(name: str) -> str:
    """``name`` trimmed, with ``/`` separators and without ``.`` or empty parts.

    Raises :class:`PathProblem` for an empty name, an absolute path or a ``..`` part.
    """
    text = name.strip().replace("\\", "/")
    if not text:
        raise PathProblem("is empty; write the name of a file")
    if text.startswith("/") or PureWindowsPath(text).drive:
        raise PathProblem(
            "is an absolute path; write the name of a file inside the campaign folder, "
            "relative to it (e.g. allegati/avviso.pdf)"
        )
    parts = [part for part in text.split("/") if part and part != "."]
    if ".." in parts:
        raise PathProblem(
            'goes outside the campaign folder (".."); move the file into the folder '
            "and write its name relative to the folder"
        )
    if not parts:
        raise PathProblem("is a folder, not a file; write the name of a file")
    return "/".join(parts)


def real_root(folder: Path) -> str:
    """The real path of ``folder``, as the other functions here want it."""
    return os.path.realpath(folder)


def resolve_inside(root: str, name: str) -> tuple[str, str]:
    """``(clean name, real path)`` of ``name`` inside ``root`` (a :func:`real_root`).

    The file need not exist. Raises :class:`PathProblem` if the name is refused by
    :func:`clean_name` or its real path is outside ``root`` (a symbolic link).
    """
    clean = clean_name(name)
    real = os.path.realpath(os.path.join(root, clean))
    if not real.startswith(root.rstrip(os.sep) + os.sep):
        raise PathProblem(
            "leads outside the campaign folder through a symbolic link; "
            "copy the file into the folder instead"
        )
    return clean, real


def open_inside(root: str, name: str) -> BinaryIO:
    """The file ``name`` inside ``root`` (a :func:`real_root`), open for reading.

    The name is checked by :func:`resolve_inside` (raises :class:`PathProblem`), then
    its real path is opened one folder at a time from ``root``, following no link: the
    real path holds none, so a link found now means the file was swapped since the
    check, and it is refused with :class:`PathProblem` too, as is anything but a regular
    file. Raises :class:`OSError` if the file cannot be read (gone, no permission).
    """
    _, real = resolve_inside(root, name)
    if not _STEPWISE:
        return open(real, "rb")
    parts = os.path.relpath(real, root).split(os.sep)
    folder = os.open(root, _NOFOLLOW | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _NOFOLLOW | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
        # O_NONBLOCK: a named pipe put there must not hang the open; files ignore it.
        fd = os.open(parts[-1], _NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError as exc:
        # ELOOP: the last part is a link; ENOTDIR: a folder on the way is (O_DIRECTORY).
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _has_link(root, parts):
            raise PathProblem(
                "was replaced by a symbolic link after it was checked; put the file back"
                " and run again"
            ) from None
        raise
    finally:
        os.close(folder)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PathProblem("is not a regular file (a folder, a pipe...); name a file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _has_link(root: str, parts: list[str]) -> bool:
    """True if a part of ``root``/``parts`` is now a symbolic link."""
    path = root
    for part in parts:
        path = os.path.join(path, part)
        if os.path.islink(path):
            return True
    return False
