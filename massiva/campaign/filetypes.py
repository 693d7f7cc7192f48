"""Is a file what its name says? Decided from its name and first bytes, nothing else.

:func:`problem` takes a file's name and its first :data:`HEAD` bytes and says why it
cannot be attached, or None. A message with legal weight must carry what its name
promises: a text file named ``.pdf``, a ZIP named ``.docx`` or a program are refused.

- Programs are refused whatever their name: Windows (``MZ``), Linux (ELF) and macOS
  (Mach-O) executables, scripts (``#!``), and the names Windows runs (``.exe``,
  ``.bat``, ``.js``, ``.vbs``, ``.msi``, ``.jar``...).
- A known extension (:data:`KNOWN`) must come with content of that type: PDF, P7M and P7S
  (CMS signed data, DER or PEM or bare base64), XML and HTML, images (PNG, JPEG, GIF,
  TIFF, BMP), Office Open XML (``.docx``, ``.xlsx``, ``.pptx``: a ZIP of Office parts),
  OpenDocument (``.odt``, ``.ods``, ``.odp``: a ZIP whose first entry is its
  ``mimetype``), older Office files (``.doc``, ``.xls``, ``.ppt``), RTF, ZIP and 7z
  archives, text (``.txt``, ``.csv``, ``.tsv``) and e-mail messages (``.eml``).
- Any other extension, or none, is refused: what cannot be recognised cannot be vouched
  for (a list of dangerous names is never complete: ``.hta``, ``.lnk``, ``.iso``...),
  and a recipient's mail client cannot open a file without a type either. The message
  says how to fix it: convert it to PDF, or put it in a ZIP archive.

Pure: no file is opened here (the caller reads the first bytes once per file).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

#: How many of a file's first bytes the checks need (an Office file's part names, a
#: text file's first lines).
HEAD = 4096

#: Names Windows runs (or installs) when opened: refused whatever their content.
PROGRAM_EXTENSIONS = frozenset(
    {"exe", "bat", "cmd", "com", "scr", "js", "jse", "vbs", "vbe", "wsf", "wsh", "msi"}
    | {"msp", "jar", "ps1", "hta", "pif", "cpl", "dll", "lnk", "reg", "sh"}
)

# Mach-O, 32 and 64 bits, either byte order, and universal (the Java class files that
# share its magic number are programs too).
_MACHO = (
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)
# CMS signedData (1.2.840.113549.1.7.2) as DER: its OID opens a P7M or P7S.
_SIGNED_DATA = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02"
_PEM_CMS = re.compile(rb"-----BEGIN (PKCS7|CMS|PKCS #7 SIGNED DATA)-----")
# Names of the parts an Office Open XML package holds; the first entries of the ZIP
# name one (MS Office writes [Content_Types].xml first, openpyxl docProps/ first).
_OOXML_PARTS = (
    b"[Content_Types].xml",
    b"_rels/",
    b"docProps/",
    b"customXml/",
    b"word/",
    b"xl/",
    b"ppt/",
)
# Control characters found in no text file: all but tab, line feed, form feed, carriage
# return and ^Z (the old DOS end of file).
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0e-\x19\x1b-\x1f]")
_BINARY_TEXT = re.compile("[\x00-\x08\x0b\x0e-\x19\x1b-\x1f]")
_HEADER_LINE = re.compile(rb"[!-9;-~]+:[ \t]")  # "Received: ...": an RFC 5322 field


def _program(head: bytes) -> str | None:
    """What kind of program ``head`` starts, or None."""
    if head.startswith(b"MZ") and _BINARY.search(head[:64]):  # not a text saying "MZ..."
        return "a Windows program"
    if head.startswith(b"\x7fELF"):
        return "a Linux program"
    if head.startswith(_MACHO):
        return "a macOS program"
    if head.startswith(b"#!"):
        return "a script"
    return None


def _text(head: bytes) -> str | None:
    """``head`` as text, or None when it is binary: UTF-16 with its BOM, else any 8-bit
    text (UTF-8, or a code page such as Windows-1252: the checks need not tell which)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head[: len(head) // 2 * 2].decode("utf-16", errors="replace")
        return None if _BINARY_TEXT.search(text) else text.lstrip("\ufeff")
    if _BINARY.search(head):
        return None
    return head.removeprefix(b"\xef\xbb\xbf").decode("latin-1")


def _is_text(head: bytes) -> bool:
    return _text(head) is not None


def _markup(head: bytes) -> bool:
    """Text that opens with a tag (XML, HTML), after any white space."""
    text = _text(head)
    return text is not None and text.lstrip(" \t\r\n").startswith("<")


def _eml(head: bytes) -> bool:
    """Text that opens with a header field, as a saved e-mail message does."""
    return _is_text(head) and _HEADER_LINE.match(head.lstrip(b"\r\n")) is not None


def _pdf(head: bytes) -> bool:
    return b"%PDF" in head[:1024]  # readers allow a little junk before the header


def _signed(head: bytes) -> bool:
    """CMS signed data: DER, PEM, or the bare base64 of the DER."""
    if head.startswith(b"\x30") and _SIGNED_DATA in head[:32]:
        return True
    if _PEM_CMS.search(head[:256]):
        return True
    start = b"".join(head[:128].split())[:64]  # line breaks out
    try:
        decoded = base64.b64decode(start[: len(start) // 4 * 4], validate=True)
    except binascii.Error:
        return False
    return decoded.startswith(b"\x30") and _SIGNED_DATA in decoded[:32]


def _zip(head: bytes) -> bool:
    return head.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def _ooxml(head: bytes) -> bool:
    return _zip(head) and any(part in head for part in _OOXML_PARTS)


def _opendocument(head: bytes) -> bool:
    return _zip(head) and head[30:73].startswith(b"mimetypeapplication/vnd.oasis.opendocument")


def _starts(*signatures: bytes) -> Callable[[bytes], bool]:
    """A check that the first bytes are one of ``signatures``."""
    return lambda head: head.startswith(signatures)


@dataclass(frozen=True)
class FileType:
    """A kind of file: what to call it, and whether some first bytes are of it."""

    what: str
    matches: Callable[[bytes], bool]


PDF = FileType("a PDF document", _pdf)
SIGNED = FileType("a signed file (P7M/P7S, CMS)", _signed)
XML = FileType("an XML document", _markup)
HTML = FileType("an HTML page", _markup)
PNG = FileType("a PNG image", _starts(b"\x89PNG\r\n\x1a\n"))
JPEG = FileType("a JPEG image", _starts(b"\xff\xd8\xff"))
GIF = FileType("a GIF image", _starts(b"GIF87a", b"GIF89a"))
TIFF = FileType("a TIFF image", _starts(b"II*\x00", b"MM\x00*"))
BMP = FileType("a BMP image", _starts(b"BM"))
OOXML = FileType("a Word, Excel or PowerPoint document", _ooxml)
OPENDOCUMENT = FileType("an OpenDocument file", _opendocument)
OLE = FileType("an older Office document", _starts(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"))
RTF = FileType("an RTF document", _starts(b"{\\rtf"))
ZIP = FileType("a ZIP archive", _zip)
SEVEN_ZIP = FileType("a 7z archive", _starts(b"7z\xbc\xaf\x27\x1c"))
TEXT = FileType("text", _is_text)
EML = FileType("an e-mail message", _eml)

#: Extensions checked against their content, and the type each promises.
KNOWN: dict[str, FileType] = {
    "pdf": PDF,
    "p7m": SIGNED,
    "p7s": SIGNED,
    "xml": XML,
    "html": HTML,
    "htm": HTML,
    "png": PNG,
    "jpg": JPEG,
    "jpeg": JPEG,
    "gif": GIF,
    "tif": TIFF,
    "tiff": TIFF,
    "bmp": BMP,
    "docx": OOXML,
    "xlsx": OOXML,
    "pptx": OOXML,
    "odt": OPENDOCUMENT,
    "ods": OPENDOCUMENT,
    "odp": OPENDOCUMENT,
    "doc": OLE,
    "xls": OLE,
    "ppt": OLE,
    "rtf": RTF,
    "zip": ZIP,
    "7z": SEVEN_ZIP,
    "txt": TEXT,
    "csv": TEXT,
    "tsv": TEXT,
    "eml": EML,
}

# What some content looks like, most specific first, for the message of a mismatch.
_LOOKS = (PDF, PNG, JPEG, GIF, TIFF, OOXML, OPENDOCUMENT, ZIP, SEVEN_ZIP, OLE, RTF, SIGNED)


def extension(name: str) -> str:
    """The extension of the file ``name``, lower-case, without the dot ('' if none)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return ext.lower() if dot and stem else ""


def looks_like(head: bytes) -> str:
    """What ``head`` looks like, for people: "a PDF document", "text", "empty"..."""
    if not head:
        return "empty"
    for kind in _LOOKS:
        if kind.matches(head):
            return kind.what
    return "text" if _is_text(head) else "of no type massiva recognises"


def problem(name: str, head: bytes) -> str | None:
    """Why the file ``name``, whose first bytes (up to :data:`HEAD`) are ``head``, cannot
    be attached, as the end of a sentence that names it; None when it can."""
    program = _program(head)
    ext = extension(name)
    if program is not None or ext in PROGRAM_EXTENSIONS:
        what = program or f"a program (.{ext})"
        return f"is {what}: programs are never sent; attach a document (a PDF, say)"
    if not ext:
        return (
            "has no extension, so its type is unknown (to massiva, and to the recipient's "
            "mail client); name it for its type, e.g. .pdf"
        )
    kind = KNOWN.get(ext)
    if kind is None:
        known = ", ".join(f".{e}" for e in KNOWN)
        return (
            f"is a .{ext} file, a type massiva cannot check, so it is refused; convert "
            f"it to PDF, or put it in a .zip archive (the types checked: {known})"
        )
    if not kind.matches(head):
        return (
            f"is named .{ext} but is not {kind.what} (its content is {looks_like(head)}); "
            "attach the right file, or give it the extension of its type"
        )
    return None
