"""Documents rendered for people: encapsulated documents as their own media type (PDF above all,
PS3.3 A.45) and Structured Reports as a readable text or HTML summary of the content tree
(PS3.3 C.17.3).

The SR summary lists the document title, the patient and study, the completion and
verification flags, then every content item in tree order, indented by depth, as
"Concept name: value" (TEXT, CODE, NUM with units, PNAME, DATE, TIME, DATETIME, UIDREF,
IMAGE / COMPOSITE / WAVEFORM references, SCOORD / TCOORD kinds, CONTAINER headings). It is a
summary for reading, not a full SR presentation (no by-reference relationships are followed).
Every value is escaped in HTML: a report's text can hold anything.
"""

from __future__ import annotations

import html
from typing import Any

from .render_image import RenderError

PDF = "application/pdf"
HTML = "text/html"
TEXT = "text/plain"
SR_MEDIA = (HTML, TEXT)
#: guards against a hostile or broken tree (PS3.3 does not bound the depth)
MAX_DEPTH = 64


def is_encapsulated_document(ds: Any) -> bool:
    return "EncapsulatedDocument" in ds


def is_structured_report(ds: Any) -> bool:
    return "ContentSequence" in ds and str(ds.get("ValueType", "")).upper() == "CONTAINER"


def document_media(ds: Any) -> str:
    """The media type of an encapsulated document (MIME Type of Encapsulated Document)."""
    return str(ds.get("MIMETypeOfEncapsulatedDocument", "") or PDF).strip().lower()


def document_bytes(ds: Any) -> bytes:
    """The encapsulated document as it was before DICOM padded it to an even length: cut to
    Encapsulated Document Length when given, else one trailing NUL pad byte removed."""
    data = bytes(ds.EncapsulatedDocument)
    length = ds.get("EncapsulatedDocumentLength")
    if length is not None and 0 < int(length) <= len(data):
        return data[: int(length)]
    if data.endswith(b"\x00") and len(data) % 2 == 0:
        return data[:-1]
    return data


# -- Structured Reports ---------------------------------------------------------------------
def _meaning(seq: Any) -> str:
    if not seq:
        return ""
    item = seq[0]
    return str(item.get("CodeMeaning", "") or item.get("CodeValue", ""))


def _value(item: Any) -> str:
    kind = str(item.get("ValueType", "")).upper()
    if kind == "TEXT":
        return str(item.get("TextValue", ""))
    if kind == "CODE":
        return _meaning(item.get("ConceptCodeSequence"))
    if kind == "NUM":
        measured = item.get("MeasuredValueSequence")
        if not measured:
            return ""
        number = measured[0].get("NumericValue", "")
        units = measured[0].get("MeasurementUnitsCodeSequence")
        unit = str(units[0].get("CodeValue", "")) if units else ""
        return f"{number} {unit}".strip()
    if kind == "PNAME":
        return str(item.get("PersonName", ""))
    if kind in ("DATE", "TIME", "DATETIME", "UIDREF"):
        keyword = {"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime", "UIDREF": "UID"}[kind]
        return str(item.get(keyword, ""))
    if kind in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        refs = item.get("ReferencedSOPSequence") or []
        return ", ".join(f"{kind.lower()} {r.get('ReferencedSOPInstanceUID', '')}" for r in refs)
    if kind in ("SCOORD", "SCOORD3D"):
        return f"{str(item.get('GraphicType', '')).lower()} ({kind})"
    if kind == "TCOORD":
        return f"{str(item.get('TemporalRangeType', '')).lower()} (TCOORD)"
    return ""


def sr_lines(ds: Any) -> list[tuple[int, str, str]]:
    """The content tree as (depth, concept name, value) in document order."""
    out: list[tuple[int, str, str]] = []

    def walk(items: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise RenderError(422, f"the SR content tree is deeper than {MAX_DEPTH} levels")
        for item in items or []:
            name = _meaning(item.get("ConceptNameCodeSequence"))
            out.append((depth, name, _value(item)))
            walk(item.get("ContentSequence"), depth + 1)

    walk(ds.get("ContentSequence"), 0)
    return out


def _header(ds: Any) -> list[tuple[str, str]]:
    fields = [
        ("Patient", str(ds.get("PatientName", "") or "")),
        ("Patient ID", str(ds.get("PatientID", "") or "")),
        ("Study date", str(ds.get("StudyDate", "") or "")),
        ("Content date", str(ds.get("ContentDate", "") or "")),
        ("Completion", str(ds.get("CompletionFlag", "") or "")),
        ("Verification", str(ds.get("VerificationFlag", "") or "")),
    ]
    return [(k, v) for k, v in fields if v]


def sr_title(ds: Any) -> str:
    return _meaning(ds.get("ConceptNameCodeSequence")) or "Structured Report"


def sr_text(ds: Any) -> str:
    """The SR as plain text: title, header lines, then the indented content tree."""
    lines = [sr_title(ds), ""]
    lines += [f"{k}: {v}" for k, v in _header(ds)]
    lines.append("")
    for depth, name, value in sr_lines(ds):
        text = f"{name}: {value}" if name and value else (name or value)
        lines.append("  " * depth + text)
    return "\n".join(lines).rstrip() + "\n"


def sr_html(ds: Any) -> str:
    """The SR as a small standalone HTML page; every value escaped."""
    esc = html.escape
    title = esc(sr_title(ds))
    head = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _header(ds))
    body = []
    for depth, name, value in sr_lines(ds):
        label = f"<b>{esc(name)}</b>" if name else ""
        sep = ": " if name and value else ""
        body.append(f'<li style="margin-left:{depth * 1.5}em">{label}{sep}{esc(value)}</li>')
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        f"{title}</title></head><body><h1>{title}</h1><table>{head}</table>"
        f'<ul style="list-style:none;padding:0">{"".join(body)}</ul></body></html>\n'
    )


def render_sr(ds: Any, media: str) -> bytes:
    if media == HTML:
        return sr_html(ds).encode("utf-8")
    if media == TEXT:
        return sr_text(ds).encode("utf-8")
    raise RenderError(406, f"a Structured Report is rendered as {' or '.join(SR_MEDIA)}, not {media}")


__all__ = [
    "PDF",
    "HTML",
    "TEXT",
    "SR_MEDIA",
    "is_encapsulated_document",
    "is_structured_report",
    "document_media",
    "document_bytes",
    "sr_lines",
    "sr_text",
    "sr_html",
    "render_sr",
]
