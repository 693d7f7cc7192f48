"""Names of files inside a folder: nothing outside it can be reached.

A name is relative to the folder, written with ``/`` (a ``\\`` from a Windows
spreadsheet counts as ``/``). Absolute paths, drive letters and ``..`` are refused, and
so is a symbolic link that leads out of the folder: the check is made on the real path.
"""

from __future__ import annotations

import os
from pathlib import Path, PureWindowsPath


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
