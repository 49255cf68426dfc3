"""Rendered and thumbnail resources (PS3.18 10.4.1.1.3 and 10.4.1.1.4; URI templates of
PS3.18 Table 10.4.1-1): what a browser can show without a DICOM decoder.

``.../rendered`` of an image instance or frame is a JPEG (the default) or a PNG, as the Accept
header (or the ``accept`` parameter) asks; one image is the whole body, several (a multi-frame
instance, a frame list, a series, a study) are a ``multipart/related`` body with one part per
frame, each rendered when the client pulls it. An encapsulated document is rendered as its own
media type (application/pdf), a Structured Report as text/html (the default) or text/plain. A
series or study rendering holds its image instances only.

``.../thumbnail`` is always one small image (128 x 128 unless a viewport says otherwise) of a
representative frame: the middle frame of the instance; of a series, of the image instance
nearest its middle (in Instance Number order); of a study, of its first series (by Series
Number) that has images.

Query parameters (PS3.18 8.3.5.1): ``quality`` (1..100, JPEG), ``viewport=vw,vh[,sx,sy,sw,sh]``,
``window=center,width,function`` (grayscale images). ``annotation`` is not supported: the image
is rendered without annotations and a 299 warning says so. Pixel work lives in
``render_image``, documents in ``render_docs``; this module maps requests and statuses.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pydicom

from . import render_docs, render_image
from .render_image import IMAGE_MEDIA, RenderError, RenderOptions, Viewport
from .web_http import HttpError, WebRequest, WebResponse, warning
from .web_multipart import media_matches, new_boundary, parse_accept, write_parts
from .web_wado import instance_refs, instance_url, parse_frame_list

LOG = logging.getLogger("pacscore.dicomweb")

THUMBNAIL_SIZE = 128
IMAGE, DOCUMENT, REPORT = "image", "document", "report"


# -- the request ----------------------------------------------------------------------------
def _parameters(request: WebRequest) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.query:
        if name in out and name in ("quality", "viewport", "window", "accept"):
            raise HttpError(400, f"the {name} parameter is given more than once")
        out[name] = value
    return out


def _accept(request: WebRequest, params: dict[str, str]) -> str | None:
    return params.get("accept") or request.header("accept")


def options(params: dict[str, str], media: str, thumbnail: bool = False) -> RenderOptions:
    """The rendering options of a request (400 for a bad value)."""
    try:
        opts = RenderOptions(media=media)
        if "quality" in params:
            opts = replace(opts, quality=render_image.parse_quality(params["quality"]))
        if "viewport" in params:
            opts = replace(opts, viewport=render_image.parse_viewport(params["viewport"]))
        elif thumbnail:
            opts = replace(opts, viewport=Viewport(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        if "window" in params:
            opts = replace(opts, window=render_image.parse_window(params["window"]))
    except RenderError as exc:
        raise HttpError(exc.status, exc.reason) from None
    return opts


def choose_media(accept: str | None, offered: tuple[str, ...], what: str) -> str:
    """The first offered media type the Accept allows (in its order of preference), or a 406."""
    for rng in parse_accept(accept):
        inner = rng.params.get("type", "*/*") if rng.media_type == "multipart/related" else rng.media_type
        for media in offered:
            if media_matches(inner, media):
                return media
    raise HttpError(406, f"{what} is rendered as {' or '.join(offered)}; the Accept header allows none of them")


def _annotation_warning(params: dict[str, str]) -> list[tuple[str, str]]:
    if "annotation" in params:
        return [warning("pacscore", "the annotation parameter is not supported; rendered without annotations")]
    return []


# -- the instances --------------------------------------------------------------------------
def _kind(header: Any) -> str | None:
    """What an instance renders as, told from its header (no pixel data is read)."""
    if render_docs.is_encapsulated_document(header) or "MIMETypeOfEncapsulatedDocument" in header:
        return DOCUMENT
    if render_docs.is_structured_report(header):
        return REPORT
    if "Rows" in header and "Columns" in header:
        return IMAGE
    return None


def offered(kind: str | None, header: Any, ref) -> tuple[str, ...]:
    """The media types an instance of ``kind`` is rendered as, the default first (422 for none)."""
    if kind == DOCUMENT:
        return (render_docs.document_media(header),)
    if kind == REPORT:
        return render_docs.SR_MEDIA
    if kind == IMAGE:
        return IMAGE_MEDIA
    raise HttpError(
        422,
        f"instance {ref.sop_instance_uid} (SOP Class {ref.sop_class_uid}) has no pixel data, document "
        "or SR content to render",
    )


def _document_response(service, ref, kind: str, media: str, extra: list[tuple[str, str]]) -> WebResponse:
    """An encapsulated document as stored, or an SR summary in ``media``."""
    ds = _load(service, ref)
    if kind == DOCUMENT:
        return WebResponse(200, [("Content-Type", media), *extra], render_docs.document_bytes(ds))
    try:
        body = render_docs.render_sr(ds, media)
    except RenderError as exc:
        raise HttpError(exc.status, f"instance {ref.sop_instance_uid}: {exc.reason}") from None
    return WebResponse(200, [("Content-Type", f"{media}; charset=utf-8"), *extra], body)


def _load(service, ref) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(service.archive.get(ref.sop_instance_uid)), force=True)


def _check_decodable(ref) -> None:
    """422 before anything is sent when no decoder can read the instance's pixel data."""
    from pydicom.pixels import get_decoder

    ts = ref.transfer_syntax_uid or "1.2.840.10008.1.2.1"
    try:
        available = get_decoder(ts).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise HttpError(
            422,
            f"instance {ref.sop_instance_uid} is stored in transfer syntax {ts}, which no installed "
            "decoder reads, so it cannot be rendered",
        )


def _render(ds, index: int, opts: RenderOptions, what: str) -> bytes:
    try:
        return render_image.render_frame(ds, index, opts)
    except RenderError as exc:
        raise HttpError(exc.status, f"{what}: {exc.reason}") from None


def _image_response(image: bytes, media: str, extra: list[tuple[str, str]]) -> WebResponse:
    return WebResponse(200, [("Content-Type", media), *extra], image)


def _multipart(parts: Iterator[tuple[list[tuple[str, str]], Any]], media: str, extra) -> WebResponse:
    boundary = new_boundary()
    content_type = f'multipart/related; type="{media}"; boundary={boundary}'
    return WebResponse(200, [("Content-Type", content_type), *extra], write_parts(boundary, parts))


# -- rendered -------------------------------------------------------------------------------
def rendered(
    service,
    request: WebRequest,
    study: str,
    series: str | None = None,
    instance: str | None = None,
    frame_list: str | None = None,
) -> WebResponse:
    params = _parameters(request)
    accept = _accept(request, params)
    extra = _annotation_warning(params)
    numbers = parse_frame_list(frame_list) if frame_list is not None else None
    refs = instance_refs(service, study, series, instance)
    if instance is None:
        return _rendered_many(service, request, refs, params, accept, extra, study if series is None else series)
    ref = refs[0]
    header = service.archive.header(ref.sop_instance_uid)
    kind = _kind(header)
    what = f"instance {ref.sop_instance_uid}"
    if numbers is not None and kind != IMAGE:
        raise HttpError(422, f"{what} has no frames to render (it is not an image)")
    if kind in (DOCUMENT, REPORT):
        media = choose_media(accept, offered(kind, header, ref), what)
        return _document_response(service, ref, kind, media, extra)
    media = choose_media(accept, offered(kind, header, ref), what)
    opts = options(params, media)
    _check_decodable(ref)
    ds = _load(service, ref)
    if not render_image.has_pixels(ds):
        raise HttpError(422, f"{what} has no pixel data to render")
    count = render_image.frame_count(ds)
    wanted = numbers or list(range(1, count + 1))
    missing = [n for n in wanted if n > count]
    if missing:
        raise HttpError(404, f"frame {missing[0]} does not exist: {what} has {count} frame(s)")
    if len(wanted) == 1:
        return _image_response(_render(ds, wanted[0] - 1, opts, what), media, extra)
    first = _render(ds, wanted[0] - 1, opts, what)  # a frame that fails is a status, not a cut stream
    url = instance_url(request.base_url, ref)

    def parts():
        for i, n in enumerate(wanted):
            if i == 0:
                data = first
            else:
                try:
                    data = render_image.render_frame(ds, n - 1, opts)
                except RenderError as exc:  # the status is sent: leave the frame out, say why
                    LOG.warning("rendering frame %d of %s failed: %s", n, ref.sop_instance_uid, exc.reason)
                    continue
            yield [("Content-Type", media), ("Content-Location", f"{url}/frames/{n}/rendered")], data

    return _multipart(parts(), media, extra)


def _rendered_many(service, request, refs, params, accept, extra, scope: str) -> WebResponse:
    """A series or study: every frame of its image instances, one part each."""
    images = [r for r in refs if _kind(service.archive.header(r.sop_instance_uid)) == IMAGE]
    if not images:
        raise HttpError(422, f"{scope} has no image instance to render")
    media = choose_media(accept, IMAGE_MEDIA, scope)
    opts = options(params, media)
    for ref in images:
        _check_decodable(ref)
    base_url = request.base_url

    def parts():
        for ref in images:
            ds = _load(service, ref)
            url = instance_url(base_url, ref)
            for n in range(1, render_image.frame_count(ds) + 1):
                try:
                    data = render_image.render_frame(ds, n - 1, opts)
                except RenderError as exc:  # the status is sent: leave the frame out, say why
                    LOG.warning("rendering frame %d of %s failed: %s", n, ref.sop_instance_uid, exc.reason)
                    continue
                yield [("Content-Type", media), ("Content-Location", f"{url}/frames/{n}/rendered")], data

    return _multipart(parts(), media, extra)


# -- WADO-URI -------------------------------------------------------------------------------
#: WADO-URI parameters this renderer refuses (PS3.18 9.1.2): what they ask for is not done here
URI_REFUSED = {
    "presentationUID": "presentation states are not applied by this origin server",
    "presentationSeriesUID": "presentation states are not applied by this origin server",
    "transferSyntax": "transferSyntax applies to contentType=application/dicom only",
    "anonymize": "de-identification is not offered by this origin server",
    "charset": None,  # allowed: the text answers are UTF-8
}


def _uri_number(params: dict[str, str], name: str, low: float, high: float) -> float | None:
    if name not in params:
        return None
    try:
        value = float(params[name])
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise HttpError(400, f"{name}={params[name]!r}: expected a number from {low:g} to {high:g}")
    return value


def _uri_options(params: dict[str, str], media: str, header: Any) -> tuple[RenderOptions, int]:
    """Rendering options and the frame index from the WADO-URI parameters (PS3.18 9.1.2.1)."""
    opts = RenderOptions(media=media)
    quality = params.get("imageQuality")
    if quality is not None:
        opts = replace(opts, quality=_checked(render_image.parse_quality, quality))
    center, width = params.get("windowCenter"), params.get("windowWidth")
    if (center is None) != (width is None):
        raise HttpError(400, "windowCenter and windowWidth are given together or not at all")
    if center is not None:
        opts = replace(opts, window=_checked(render_image.parse_window, f"{center},{width}"))
    rows = _uri_number(params, "rows", 1, 8192)
    columns = _uri_number(params, "columns", 1, 8192)
    region = None
    if "region" in params:
        try:
            xmin, ymin, xmax, ymax = (float(v) for v in params["region"].split(","))
        except ValueError:
            raise HttpError(400, f"region={params['region']!r}: expected xmin,ymin,xmax,ymax") from None
        if not (0 <= xmin < xmax <= 1 and 0 <= ymin < ymax <= 1):
            raise HttpError(400, f"region={params['region']!r}: expected 0 <= min < max <= 1 on both axes")
        height, width_px = int(header.get("Rows", 0) or 0), int(header.get("Columns", 0) or 0)
        sx, sy = int(xmin * width_px), int(ymin * height)
        sw = max(1, round((xmax - xmin) * width_px))
        sh = max(1, round((ymax - ymin) * height))
        region = (sx, sy, sw, sh)
    if rows is not None or columns is not None or region is not None:
        full = (region[2], region[3]) if region else (int(header.get("Columns", 1)), int(header.get("Rows", 1)))
        vw = int(columns) if columns is not None else (8192 if rows is not None else full[0])
        vh = int(rows) if rows is not None else (8192 if columns is not None else full[1])
        opts = replace(opts, viewport=Viewport(vw, vh, region))
    number = params.get("frameNumber", "1")
    if not number.isdigit() or int(number) < 1:
        raise HttpError(400, f"frameNumber={number!r}: expected an integer from 1")
    return opts, int(number) - 1


def _checked(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except RenderError as exc:
        raise HttpError(exc.status, exc.reason) from None


def uri_rendered(
    service, request: WebRequest, study: str, series: str, instance: str, params: dict[str, str]
) -> WebResponse:
    """A WADO-URI answer in a rendered media type (contentType absent, or not application/dicom)."""
    for name, reason in URI_REFUSED.items():
        if reason is not None and name in params:
            raise HttpError(400, f"the {name} parameter: {reason}")
    ref = instance_refs(service, study, series, instance)[0]
    header = service.archive.header(ref.sop_instance_uid)
    kind = _kind(header)
    choices = offered(kind, header, ref)
    what = f"instance {ref.sop_instance_uid}"
    wanted = params.get("contentType")
    accept = request.header("accept")
    media = None
    for rng in parse_accept(wanted):  # contentType: a list of media types, best first
        for candidate in choices:
            if media_matches(rng.media_type, candidate) and any(
                media_matches(a.media_type, candidate) for a in parse_accept(accept)
            ):
                media = candidate
                break
        if media:
            break
    if media is None:
        raise HttpError(
            406,
            f"contentType {wanted or '(absent)'}: {what} is rendered as {' or '.join(choices)}"
            " (or application/dicom), and the Accept header must allow it",
        )
    extra = _annotation_warning(params)
    if kind != IMAGE:
        return _document_response(service, ref, kind or "", media, extra)
    opts, index = _uri_options(params, media, header)
    _check_decodable(ref)
    ds = _load(service, ref)
    return _image_response(_render(ds, index, opts, what), media, extra)


# -- thumbnail ------------------------------------------------------------------------------
def representative(service, refs: list) -> Any:
    """The instance a thumbnail shows: in the first series (by Series Number, then UID) that has
    an image, the image instance nearest the middle of the series in Instance Number order; None
    when no instance is an image. Headers are read from the index only as far as the search goes
    (one per series for its number, then outward from the middle), so a large study stays cheap."""
    by_series: dict[str, list] = {}
    for ref in refs:  # archive order: series UID, then Instance Number, then SOP Instance UID
        by_series.setdefault(ref.series_instance_uid, []).append(ref)

    def series_number(uid: str) -> tuple[int, str]:
        try:
            number = int(service.archive.header(by_series[uid][0].sop_instance_uid).get("SeriesNumber", "") or 1 << 30)
        except (TypeError, ValueError):
            number = 1 << 30
        return number, uid

    for uid in sorted(by_series, key=series_number):
        members = by_series[uid]
        middle = len(members) // 2
        for i in sorted(range(len(members)), key=lambda i: (abs(i - middle), i)):
            if _kind(service.archive.header(members[i].sop_instance_uid)) == IMAGE:
                return members[i]
    return None


def thumbnail(
    service,
    request: WebRequest,
    study: str,
    series: str | None = None,
    instance: str | None = None,
    frame_list: str | None = None,
) -> WebResponse:
    params = _parameters(request)
    accept = _accept(request, params)
    numbers = parse_frame_list(frame_list) if frame_list is not None else None
    refs = instance_refs(service, study, series, instance)
    scope = instance or series or study
    ref = representative(service, refs)
    if ref is None:
        raise HttpError(422, f"{scope} has no image to make a thumbnail from")
    what = f"instance {ref.sop_instance_uid}"
    media = choose_media(accept, IMAGE_MEDIA, what)
    opts = options(params, media, thumbnail=True)
    _check_decodable(ref)
    ds = _load(service, ref)
    count = render_image.frame_count(ds)
    if numbers is not None:
        if numbers[0] > count:
            raise HttpError(404, f"frame {numbers[0]} does not exist: {what} has {count} frame(s)")
        index = numbers[0] - 1
    else:
        index = count // 2
    return _image_response(_render(ds, index, opts, what), media, _annotation_warning(params))


__all__ = [
    "rendered",
    "thumbnail",
    "uri_rendered",
    "offered",
    "options",
    "choose_media",
    "representative",
    "THUMBNAIL_SIZE",
]
