"""WADO-URI (PS3.18 Chapter 9, URI Service): one stored instance by its three UIDs.

Viewers that predate WADO-RS (Weasis, older OHIF through cornerstone's wadouri loader) ask
``<root>/wado?requestType=WADO&studyUID=..&seriesUID=..&objectUID=..&contentType=application/dicom``.
The instance is looked up as WADO-RS looks it up (the three UIDs must agree). With
``contentType=application/dicom`` it is sent with the same transfer syntax rules
(``web_wado.select_syntax``). Without a contentType, or with a rendered one, it is rendered by
``web_render.uri_rendered``: an image as image/jpeg (the standard's default) or image/png, with
``rows``, ``columns``, ``region``, ``windowCenter``/``windowWidth``, ``frameNumber`` and
``imageQuality``; an encapsulated PDF as application/pdf; an SR as text/html or text/plain.
"""

from __future__ import annotations

from .web_http import HttpError, WebRequest, WebResponse, check_uid
from .web_multipart import media_matches, parse_accept
from .web_render import uri_rendered
from .web_wado import instance_refs, select_syntax, transcode

DICOM = "application/dicom"
#: the parameters that identify the object, with the name used in error messages
UID_PARAMETERS = (
    ("studyUID", "Study Instance UID"),
    ("seriesUID", "Series Instance UID"),
    ("objectUID", "SOP Instance UID"),
)
#: parameters of a rendered answer (PS3.18 9.1.2.1.x); PS3.18 forbids them with application/dicom
RENDERING_PARAMETERS = (
    "annotation",
    "rows",
    "columns",
    "region",
    "windowCenter",
    "windowWidth",
    "frameNumber",
    "imageQuality",
    "presentationUID",
    "presentationSeriesUID",
)


def _parameters(request: WebRequest) -> dict[str, str]:
    """The query parameters by name; a parameter given twice is a 400 (which one would count?)."""
    out: dict[str, str] = {}
    for name, value in request.query:
        if name in out:
            raise HttpError(400, f"the {name} parameter is given more than once")
        out[name] = value
    return out


def _wants_dicom(content_type: str | None, accept: str | None) -> bool:
    """Whether application/dicom can be the answer: named in contentType (a list with optional
    q-values, PS3.18 9.1.2.1.1) and allowed by the Accept header (none sent allows it)."""
    named = content_type is not None and any(r.media_type == DICOM for r in parse_accept(content_type))
    return named and any(media_matches(r.media_type, DICOM) for r in parse_accept(accept))


def retrieve(service, request: WebRequest) -> WebResponse:
    """Answer one WADO-URI request: 200 with the Part-10 object, or the status that says why not."""
    params = _parameters(request)
    request_type = params.get("requestType")
    if request_type is None:
        raise HttpError(400, "requestType is missing (WADO-URI needs requestType=WADO)")
    if request_type != "WADO":
        raise HttpError(400, f"requestType must be WADO, not {request_type!r}")
    policy = getattr(service.archive, "uid_policy", "lenient")
    uids = []
    for name, what in UID_PARAMETERS:
        value = params.get(name)
        if value is None or not value.strip():
            raise HttpError(400, f"{name} ({what}) is missing")
        uids.append(check_uid(value.strip(), what, policy))
    content_type = params.get("contentType")
    if not _wants_dicom(content_type, request.header("accept")):
        if content_type is not None and all(r.media_type == DICOM for r in parse_accept(content_type)):
            raise HttpError(406, "contentType application/dicom: the Accept header does not allow application/dicom")
        return uri_rendered(service, request, uids[0], uids[1], uids[2], params)
    for name in (*RENDERING_PARAMETERS, "anonymize"):
        if name in params:
            raise HttpError(400, f"the {name} parameter does not apply to application/dicom on this origin server")
    ref = instance_refs(service, *uids)[0]
    wanted = params.get("transferSyntax", "").strip() or None
    target = select_syntax(ref.transfer_syntax_uid, [wanted])
    if target is None:
        raise HttpError(
            406,
            f"instance {ref.sop_instance_uid} is stored in transfer syntax {ref.transfer_syntax_uid}, "
            f"which cannot be converted to transferSyntax {wanted} without decoding its pixel data",
        )
    data = service.archive.get(ref.sop_instance_uid)
    if target != ref.transfer_syntax_uid:
        data = transcode(data, target)
    return WebResponse(200, [("Content-Type", DICOM)], data)


__all__ = ["retrieve", "UID_PARAMETERS", "RENDERING_PARAMETERS"]
