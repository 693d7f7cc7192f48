"""Is a file what its name says? (massiva.campaign.filetypes: a name and first bytes.)"""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import openpyxl
import pytest

from massiva.campaign.filetypes import HEAD, KNOWN, extension, problem

EXAMPLE = Path(__file__).resolve().parents[1] / "campaigns" / "example"
PROGRAM = "programs are never sent; attach a document (a PDF, say)"
MISMATCH = "attach the right file, or give it the extension of its type"
OFFICE = "a Word, Excel or PowerPoint document"
# CMS signedData, DER (indefinite length, as signing tools write it): the start of a P7M.
DER = b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0\x80\x30\x80\x02\x01\x01"
PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48


def head(data: bytes) -> bytes:
    return data[:HEAD]


def zipped(*entries: tuple[str, bytes], stored_first: bool = False) -> bytes:
    """A ZIP of ``entries`` in order (the first stored uncompressed if asked, as
    OpenDocument requires of its mimetype)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for n, (name, content) in enumerate(entries):
            method = zipfile.ZIP_STORED if stored_first and n == 0 else zipfile.ZIP_DEFLATED
            archive.writestr(name, content, compress_type=method)
    return out.getvalue()


def xlsx() -> bytes:
    out = io.BytesIO()
    openpyxl.Workbook().save(out)  # its first entry is docProps/app.xml
    return out.getvalue()


def odf(kind: str) -> bytes:
    """An OpenDocument file of ``kind`` (text, spreadsheet, presentation)."""
    mimetype = f"application/vnd.oasis.opendocument.{kind}".encode()
    return zipped(("mimetype", mimetype), ("content.xml", b"<x/>"), stored_first=True)


DOCX = zipped(("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w:document/>"))
ODT = odf("text")
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00"

ACCEPTED = {
    "informativa.pdf": (EXAMPLE / "informativa.pdf").read_bytes(),
    "fattura-CL-0001.pdf": (EXAMPLE / "allegati" / "fattura-CL-0001.pdf").read_bytes(),
    "junk-first.pdf": b"\r\n\r\n%PDF-1.7\n",
    "fattura.xml.p7m": DER + b"\x00" * 200,
    "firma.p7s": b"-----BEGIN PKCS7-----\nMIAGCSqGSIb3DQEHAqCAMIACAQE=\n-----END PKCS7-----\n",
    "base64.p7m": base64.encodebytes(DER + b"\x00" * 60),
    "fattura.xml": b'\xef\xbb\xbf<?xml version="1.0"?><p:FatturaElettronica/>',
    "utf16.xml": '<?xml version="1.0" encoding="UTF-16"?><a/>'.encode("utf-16"),
    "pagina.htm": b"\n  <!DOCTYPE html><html></html>",
    "pagina.html": b"<html><body>Gentile</body></html>",
    "scansione.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "foto.JPG": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "foto.jpeg": b"\xff\xd8\xff\xe1\x00\x10Exif\x00",
    "logo.gif": b"GIF89a\x01\x00\x01\x00",
    "fax.tif": b"II*\x00\x08\x00\x00\x00",
    "fax.tiff": b"MM\x00*\x00\x00\x00\x08",
    "vecchia.bmp": b"BM6\x00\x00\x00\x00\x00",
    "lettera.docx": DOCX,
    "tabella.xlsx": xlsx(),
    "slide.pptx": zipped(("_rels/.rels", b"<Relationships/>"), ("ppt/presentation.xml", b"<p/>")),
    "lettera.odt": ODT,
    "foglio.ods": odf("spreadsheet"),
    "slide.odp": odf("presentation"),
    "vecchio.doc": OLE,
    "vecchio.xls": OLE,
    "vecchio.ppt": OLE,
    "lettera.rtf": b"{\\rtf1\\ansi Gentile",
    "pratica.zip": zipped(("a.pdf", b"%PDF-1.4")),
    "pratica.7z": b"7z\xbc\xaf\x27\x1c\x00\x04",
    "nota.txt": "Città di Castello\r\n".encode(),
    "elenco.csv": "pec;nome\nniccolo@pec.it;Niccolò\n".encode("cp1252"),
    "elenco.tsv": b"pec\tnome\nanna@pec.it\tAnna\n",
    "mz.csv": b"MZ;codice\nAB;1\n",  # a cell reading "MZ" is no program
    "utf16.txt": "Perché\n".encode("utf-16"),
    "cut.txt": "è".encode() * 3000,  # the head ends inside a character
    "messaggio.eml": b"Return-Path: <a@pec.it>\r\nReceived: from x\r\n\r\nCiao",
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_a_file_of_the_type_its_name_says_is_accepted(name: str) -> None:
    assert problem(name, head(ACCEPTED[name])) is None


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "avviso.pdf",
            b"Gentile cliente,\n",
            "is named .pdf but is not a PDF document (its content is text)",
        ),
        (
            "avviso.pdf",
            DOCX,
            f"is named .pdf but is not a PDF document (its content is {OFFICE})",
        ),
        (
            "lettera.docx",
            b"Gentile cliente,\n",
            f"is named .docx but is not {OFFICE} (its content is text)",
        ),
        (
            "lettera.docx",
            zipped(("a.txt", b"x")),
            f"is named .docx but is not {OFFICE} (its content is a ZIP archive)",
        ),
        (
            "lettera.odt",
            DOCX,
            f"is named .odt but is not an OpenDocument file (its content is {OFFICE})",
        ),
        (
            "foto.jpg",
            b"\x89PNG\r\n\x1a\n\x00",
            "is named .jpg but is not a JPEG image (its content is a PNG image)",
        ),
        (
            "fattura.xml",
            b"%PDF-1.4\n",
            "is named .xml but is not an XML document (its content is a PDF document)",
        ),
        (
            "firma.p7m",
            b"%PDF-1.4\n",
            "is named .p7m but is not a signed file (P7M/P7S, CMS) (its content is a PDF document)",
        ),
        (
            "elenco.csv",
            b"\x00\x01\x02\x03",
            "is named .csv but is not text (its content is of no type massiva recognises)",
        ),
        (
            "messaggio.eml",
            b"Gentile cliente\n",
            "is named .eml but is not an e-mail message (its content is text)",
        ),
        ("vuoto.pdf", b"", "is named .pdf but is not a PDF document (its content is empty)"),
    ],
    ids=[
        "text-pdf",
        "docx-pdf",
        "text-docx",
        "zip-docx",
        "docx-odt",
        "png-jpg",
        "pdf-xml",
        "pdf-p7m",
        "binary-csv",
        "text-eml",
        "empty",
    ],
)
def test_content_that_is_not_what_the_name_says_is_refused(
    name: str, content: bytes, expected: str
) -> None:
    assert problem(name, head(content)) == f"{expected}; {MISMATCH}"


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [
        ("avviso.pdf", PE, "a Windows program"),
        ("avviso.exe", PE, "a Windows program"),
        ("avviso.exe", b"%PDF-1.4\n", "a program (.exe)"),
        ("nota.txt", b"#!/bin/sh\nrm -rf ~\n", "a script"),
        ("dati.csv", b"\x7fELF\x02\x01\x01\x00", "a Linux program"),
        ("app.zip", b"\xcf\xfa\xed\xfe\x07\x00\x00\x01", "a macOS program"),
        ("Avviso.PDF.js", b"var x = 1;\n", "a program (.js)"),
        ("avviso.bat", b"@echo off\r\n", "a program (.bat)"),
        ("avviso.cmd", b"@echo off\r\n", "a program (.cmd)"),
        ("avviso.com", b"\xb4\x09\xcd\x21", "a program (.com)"),
        ("avviso.scr", PE, "a Windows program"),
        ("avviso.vbs", b"MsgBox 1\r\n", "a program (.vbs)"),
        ("setup.msi", OLE, "a program (.msi)"),
        ("app.jar", zipped(("META-INF/MANIFEST.MF", b"x")), "a program (.jar)"),
    ],
)
def test_programs_are_refused_whatever_their_name(name: str, content: bytes, what: str) -> None:
    assert problem(name, head(content)) == f"is {what}: {PROGRAM}"


def test_an_extension_massiva_does_not_check_is_refused_and_says_how_to_fix_it() -> None:
    found = problem("progetto.dwg", b"AC1032\x00\x00")
    assert found is not None
    assert found.startswith(
        "is a .dwg file, a type massiva cannot check, so it is refused; convert it to PDF, "
        "or put it in a .zip archive (the types checked: .pdf, .p7m, .p7s, .xml,"
    )
    assert problem("contratto", b"%PDF-1.4\n") == (
        "has no extension, so its type is unknown (to massiva, and to the recipient's mail "
        "client); name it for its type, e.g. .pdf"
    )


@pytest.mark.parametrize(
    ("name", "ext"),
    [
        ("a.PDF", "pdf"),
        ("fattura.xml.p7m", "p7m"),
        ("allegati\\x.Docx", "docx"),
        (".bashrc", ""),
        ("x.", ""),
    ],
)
def test_the_extension_is_the_last_one_lower_cased(name: str, ext: str) -> None:
    assert extension(name) == ext


def test_every_type_checked_has_a_file_accepted_above() -> None:
    assert {extension(name) for name in ACCEPTED} == set(KNOWN)
