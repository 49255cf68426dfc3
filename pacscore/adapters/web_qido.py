"""QIDO-RS (PS3.18 10.6): query parameters -> an Archive.find identifier -> a DICOM JSON page.

The translation is protocol only: the matching is the archive's (``Archive.find`` with
``combined_datetime=True``, ``invalid_keys="error"`` and ``relational`` set per resource), so a
QIDO-RS search and an in-process ``find()`` with the same keys return the same matches.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from .web_http import DICOM_JSON, HttpError, WebRequest, WebResponse, check_uid, json_response, uid_segment, warning
from .web_multipart import media_matches, parse_accept

# -- default returned attributes (PS3.18 10.6.3.3; docs/conformance-dicomweb.md) -------
STUDY_DEFAULTS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "StudyInstanceUID",
)
SERIES_DEFAULTS = ("Modality", "SeriesInstanceUID", "SeriesNumber", "NumberOfSeriesRelatedInstances")
INSTANCE_DEFAULTS = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber")
#: returned "if known": asked for, and left out of an answer when they come back empty
STUDY_CONDITIONAL = ("TimezoneOffsetFromUTC",)
SERIES_CONDITIONAL = (
    "TimezoneOffsetFromUTC",
    "SeriesDescription",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "RequestAttributesSequence",
)
INSTANCE_CONDITIONAL = (
    "TimezoneOffsetFromUTC",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
    "AvailableTransferSyntaxUID",
)
DEFAULTS = {"STUDY": STUDY_DEFAULTS, "SERIES": SERIES_DEFAULTS, "IMAGE": INSTANCE_DEFAULTS}
CONDITIONAL = {"STUDY": STUDY_CONDITIONAL, "SERIES": SERIES_CONDITIONAL, "IMAGE": INSTANCE_CONDITIONAL}
#: the item keys asked for in a default Request Attributes Sequence
REQUEST_ATTRIBUTES_ITEM = ("ScheduledProcedureStepID", "RequestedProcedureID")

T_QR_LEVEL = "00080052"
T_RETRIEVE_URL = "00081190"
T_STUDY = "0020000D"
T_SERIES = "0020000E"
T_SOP = "00080018"

RESERVED = (
    "limit",
    "offset",
    "includefield",
    "fuzzymatching",
    "emptyvaluematching",
    "multiplevaluematching",
    "orderby",
)
#: the attributes ``orderby`` sorts on (a pacscore extension; PS3.18 does not define ordering)
ORDERABLE = ("StudyDate",)
#: the unique key of each level: the tie-break of an ordered answer and how a page is fetched
UNIQUE_KEYS = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
_ATTRIBUTE_NAME = re.compile(r"^([A-Z][A-Za-z0-9]*|[0-9A-Fa-f]{8})(\.([A-Z][A-Za-z0-9]*|[0-9A-Fa-f]{8}))*$")
_UINT = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class Resource:
    """One QIDO-RS resource: the level searched, the query type, whose defaults are returned."""

    level: str
    relational: bool
    defaults: tuple[str, ...]


#: PS3.18 Table 10.6.1-1 (docs/conformance-dicomweb.md)
RESOURCES = {
    "/studies": Resource("STUDY", False, ("STUDY",)),
    "/studies/{study}/series": Resource("SERIES", False, ("SERIES",)),
    "/studies/{study}/series/{series}/instances": Resource("IMAGE", False, ("IMAGE",)),
    "/studies/{study}/instances": Resource("IMAGE", True, ("IMAGE", "SERIES")),
    "/series": Resource("SERIES", True, ("SERIES", "STUDY")),
    "/instances": Resource("IMAGE", True, ("IMAGE", "SERIES", "STUDY")),
}


def resource_for(segs: list[str]) -> tuple[str, Resource, dict[str, str]]:
    """The resource template of a path and its fixed UIDs (``{"StudyInstanceUID": ...}``)."""
    fixed: dict[str, str] = {}
    if segs[0] == "studies" and len(segs) > 1:
        fixed["StudyInstanceUID"] = check_uid(segs[1], "Study Instance UID")
        if len(segs) > 3:
            fixed["SeriesInstanceUID"] = check_uid(segs[3], "Series Instance UID")
    placeholders = {1: "{study}", 3: "{series}"} if segs[0] == "studies" else {}
    template = "/" + "/".join(placeholders.get(i, seg) for i, seg in enumerate(segs))
    if template not in RESOURCES:
        raise HttpError(404, f"no such QIDO-RS resource: {template}")
    return template, RESOURCES[template], fixed


# -- attribute paths ------------------------------------------------------------------------
def resolve(name: str) -> list[tuple[str, str]]:
    """``"RequestAttributesSequence.ScheduledProcedureStepID"`` -> [(keyword, vr), ...].

    Each step is a keyword or an 8-hex-digit tag; every step but the last must be a sequence.
    Raises HttpError(400) naming the unknown attribute.
    """
    steps = []
    parts = name.split(".")
    for i, part in enumerate(parts):
        part = part.strip()
        tag = tag_for_keyword(part)
        if tag is None and re.fullmatch(r"[0-9A-Fa-f]{8}", part):
            tag = int(part, 16)
        if tag is None:
            raise HttpError(400, f"{name}: unknown attribute {part!r} (not a DICOM keyword or an 8-digit tag)")
        try:
            vr = dictionary_VR(tag).split(" or ")[0]
        except KeyError:
            vr = "UN"
        key = keyword_for_tag(tag) or f"{tag:08X}"
        if i < len(parts) - 1 and vr != "SQ":
            raise HttpError(400, f"{name}: {key} is not a sequence, so it cannot have item attributes")
        steps.append((key, vr))
    return steps


def _put(identifier: dict, path: list[tuple[str, str]], value: object, *, override: bool) -> None:
    container = identifier
    for key, _vr in path[:-1]:
        current = container.get(key)
        if not isinstance(current, list) or not current:
            current = [{}]
            container[key] = current
        container = current[0]
    key, _vr = path[-1]
    if override or key not in container:
        container[key] = value
    elif isinstance(value, list) and isinstance(container[key], list) and value and container[key]:
        for k, v in value[0].items():
            container[key][0].setdefault(k, v)


def _bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise HttpError(400, f"{name} must be true or false, not {value!r}")
    return v == "true"


def _uint(name: str, value: str) -> int:
    if not _UINT.match(value.strip()):
        raise HttpError(400, f"{name} must be an unsigned integer, not {value!r}")
    return int(value)


@dataclass
class Search:
    """A parsed QIDO-RS request, ready for Archive.find."""

    level: str
    identifier: dict
    options: dict
    limit: int | None
    offset: int
    explicit: set  # top-level keywords the client asked for (match or includefield)
    drop_if_empty: set  # keywords left out of an answer when empty (conditional / "all")
    warnings: list[str]
    empty: bool = False  # the request cannot match anything (fixed UID outside a UID list)
    order: Order | None = None  # orderby, where it changes the order (None: unique-key order)


@dataclass(frozen=True)
class Order:
    """``orderby=StudyDate`` / ``orderby=-StudyDate``: by the attribute, then in unique-key order."""

    keyword: str
    descending: bool


def merge_uid_lists(query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Repeated parameters of a UID attribute as one comma-separated UID list, at the place of
    the first: ``StudyInstanceUID=a&StudyInstanceUID=b`` is ``StudyInstanceUID=a,b``. The comma
    form is the one PS3.18 8.3.4.1 describes; the repeated form is what dicomweb-client sends for
    a list, and it can mean nothing else (PS3.18 does not allow repeating a matching attribute).
    Any other attribute given twice is left for parse_search to refuse."""
    uid_values: dict[str, list[str]] = {}
    first: dict[str, int] = {}
    out: list[tuple[str, str]] = []
    for name, value in query:
        if name.strip().lower() not in RESERVED and _ATTRIBUTE_NAME.match(name):
            path = resolve(name)
            if path[-1][1] == "UI":
                dotted = ".".join(k for k, _ in path)
                if dotted in first:
                    uid_values[dotted].append(value)
                    continue
                first[dotted] = len(out)
                uid_values[dotted] = [value]
        out.append((name, value))
    for dotted, i in first.items():
        if len(uid_values[dotted]) > 1:
            out[i] = (out[i][0], ",".join(uid_values[dotted]))
    return out


def parse_search(
    segs: list[str], query: list[tuple[str, str]], *, model_keywords=None, defaults: dict | None = None
) -> Search:
    """Turn a QIDO-RS path and its query parameters into a Search (raises HttpError(400)).

    ``defaults``: the server's matching options (``create_app(find_options=...)``); the
    resource and the request's parameters (emptyvaluematching, ...) override them."""
    _, resource, fixed = resource_for(segs)
    query = merge_uid_lists(query)
    params = _reserved_parameters(query)
    keys = _matching_keys(query, fixed)
    identifier, explicit = keys.identifier, keys.explicit
    asked_modalities = _asks_for_modalities(keys, params)
    drop_if_empty = _add_includes(identifier, explicit, params, resource.level, model_keywords or _all_keywords)
    identifier.update(fixed)
    _add_defaults(identifier, explicit, drop_if_empty, resource)
    if "ModalitiesInStudy" in identifier and not asked_modalities:
        drop_if_empty.add("ModalitiesInStudy")
    options = {
        "empty_value_matching": False,
        "multiple_value_matching": False,
        **(defaults or {}),
        "combined_datetime": True,
        "relational": resource.relational,
        "invalid_keys": "error",
        **params.options,
    }
    if keys.timezone_given:
        options["timezone_adjustment"] = True
    return Search(
        level=resource.level,
        identifier=identifier,
        options=options,
        limit=params.limit,
        offset=params.offset or 0,
        explicit=explicit,
        drop_if_empty=drop_if_empty,
        warnings=params.warnings,
        empty=keys.empty,
        order=params.order if params.order is not None and _order_applies(params.order, resource) else None,
    )


def _order_applies(order: Order, resource: Resource) -> bool:
    """Whether the order can differ from unique-key order: below one fixed study (a
    non-relational series or instance search) every match has that study's StudyDate."""
    return resource.level == "STUDY" or resource.relational


@dataclass
class _Parameters:
    """The request's reserved parameters (PS3.18 8.3.4.1-8.3.4.6)."""

    limit: int | None = None
    offset: int | None = None
    includes: list[str] = field(default_factory=list)
    include_all: bool = False
    #: the matching options the request sets (fuzzymatching, emptyvaluematching, ...)
    options: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    order: Order | None = None


def _reserved_parameters(query: list[tuple[str, str]]) -> _Parameters:
    """limit, offset, includefield and the matching switches; each but includefield at most once."""
    params = _Parameters()
    seen: set = set()
    for name, value in query:
        lname = name.strip().lower()
        if lname not in RESERVED:
            continue
        if lname != "includefield" and lname in seen:
            raise HttpError(400, f"the {lname} parameter is given more than once")
        seen.add(lname)
        if lname == "limit":
            params.limit = _uint("limit", value)
        elif lname == "offset":
            params.offset = _uint("offset", value)
        elif lname == "fuzzymatching":
            if _bool(lname, value):
                params.options["fuzzy_pn"] = True
                params.warnings.append(
                    "The fuzzymatching parameter is not supported. Only literal matching has been performed."
                )
        elif lname == "emptyvaluematching":
            params.options["empty_value_matching"] = _bool(lname, value)
        elif lname == "multiplevaluematching":
            params.options["multiple_value_matching"] = _bool(lname, value)
        elif lname == "orderby":
            params.order = _order(value)
        else:
            _include_fields(params, value)
    if params.include_all and params.includes:
        raise HttpError(400, "includefield=all excludes any other includefield")
    return params


def _order(value: str) -> Order:
    text = value.strip()
    descending = text.startswith("-")
    keyword = text.lstrip("+-").strip()
    if keyword not in ORDERABLE:
        raise HttpError(
            400, f"orderby: cannot order by {keyword!r} (this server orders by {', '.join(ORDERABLE)} only)"
        )
    return Order(keyword, descending)


def _include_fields(params: _Parameters, value: str) -> None:
    for item in value.split(","):
        item = item.strip()
        if not item:
            raise HttpError(400, "includefield has an empty attribute name")
        if item.lower() == "all":
            params.include_all = True
        else:
            params.includes.append(item)


@dataclass
class _Keys:
    """The request's matching keys as an identifier, and what they say beyond it."""

    identifier: dict = field(default_factory=dict)
    explicit: set = field(default_factory=set)  # top-level keywords the client named
    empty: bool = False  # a key excludes the UID the path fixes
    timezone_given: bool = False  # TimezoneOffsetFromUTC has a value (PS3.18 8.3.4.6)


def _matching_keys(query: list[tuple[str, str]], fixed: dict[str, str]) -> _Keys:
    """Every attribute parameter as a key; UID lists with "," become "\\"; a sequence is matched
    through its item attributes only; any other parameter is ignored (PS3.18 8.3)."""
    keys = _Keys()
    matched: set = set()
    for name, value in query:
        if name.strip().lower() in RESERVED or not _ATTRIBUTE_NAME.match(name):
            continue
        path = resolve(name)
        dotted = ".".join(k for k, _ in path)
        if dotted in matched:
            raise HttpError(400, f"{name}: an attribute must not be repeated in a query")
        matched.add(dotted)
        key, vr = path[-1]
        if vr == "SQ":
            if value.strip():
                raise HttpError(
                    400, f"{name}: a sequence is matched through its item attributes ({key}.Attribute=value)"
                )
        elif vr == "UI":
            value = "\\".join(v.strip() for v in value.split(","))
        if len(path) == 1 and key in fixed:
            # the path fixes this UID: the parameter can only agree with it or exclude everything
            if value.strip() and fixed[key] not in value.split("\\"):
                keys.empty = True
            continue
        keys.explicit.add(path[0][0])
        _put(keys.identifier, path, value if vr != "SQ" else "", override=True)
        if key == "TimezoneOffsetFromUTC" and len(path) == 1 and value.strip():
            keys.timezone_given = True
    return keys


def _asks_for_modalities(keys: _Keys, params: _Parameters) -> bool:
    """Whether the request asks for Modalities in Study back even when it has no value.

    A study none of whose series has a Modality has no Modalities in Study. Sent as
    ``{"vr": "CS"}`` (PS3.18 F.2.5: an attribute without a value) it is conformant, but viewers
    read its Value unguarded (OHIF 3.13's getModalities fails on it and shows no study list),
    so it is treated as returned "if known": left out when empty, unless the request names it
    as a return key (``includefield=ModalitiesInStudy`` or ``ModalitiesInStudy=`` with no value).
    A matching value (``ModalitiesInStudy=CT``) that matched such a study through empty-record
    matching (PS3.4 C.2.2.1.2) does not count: that request asked for CT studies, not for the
    attribute (docs/conformance-dicomweb.md, 3.2)."""
    if keys.identifier.get("ModalitiesInStudy") == "":
        return True
    return any(resolve(name)[0][0] == "ModalitiesInStudy" for name in params.includes)


def _add_includes(identifier: dict, explicit: set, params: _Parameters, level: str, model_keywords) -> set:
    """Ask for the includefield attributes; returns the keywords to leave out when they come back
    empty (those includefield=all adds)."""
    for name in params.includes:
        path = resolve(name)
        explicit.add(path[0][0])
        _put(identifier, path, "", override=False)
    drop_if_empty: set = set()
    if params.include_all:
        for keyword in model_keywords(level):
            if keyword not in identifier:
                identifier[keyword] = ""
                drop_if_empty.add(keyword)
    return drop_if_empty


def _add_defaults(identifier: dict, explicit: set, drop_if_empty: set, resource: Resource) -> None:
    """The resource's default attributes (PS3.18 10.6.3.3); its conditional ones are left out of
    an answer when empty, unless the client named them."""
    for level in resource.defaults:
        for keyword in DEFAULTS[level]:
            identifier.setdefault(keyword, "")
        for keyword in CONDITIONAL[level]:
            if keyword == "RequestAttributesSequence":
                _put(identifier, [(keyword, "SQ")], [{k: "" for k in REQUEST_ATTRIBUTES_ITEM}], override=False)
            else:
                identifier.setdefault(keyword, "")
            if keyword not in explicit:
                drop_if_empty.add(keyword)


def _all_keywords(level: str) -> tuple[str, ...]:
    """``includefield=all``: every attribute the archive keeps at that level (Study Root)."""
    from .. import model

    if level == "STUDY":
        return model.PATIENT_KEYWORDS + model.STUDY_KEYWORDS + model.STUDY_COMPUTED
    if level == "SERIES":
        return model.SERIES_KEYWORDS + model.SERIES_COMPUTED
    return tuple(k for k in model.IMAGE_KEYWORDS if k != "SpecificCharacterSet") + model.IMAGE_COMPUTED


# -- the answer -----------------------------------------------------------------------------
def _tag_hex(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    return f"{tag:08X}" if tag is not None else keyword.upper()


def retrieve_url(base_url: str, row: dict, level: str) -> str | None:
    def uid(tag: str) -> str | None:
        attr = row.get(tag) or {}
        values = attr.get("Value") or []
        return values[0] if values and isinstance(values[0], str) else None

    study = uid(T_STUDY)
    if not study:
        return None
    url = f"{base_url}/studies/{uid_segment(study)}"
    if level in ("SERIES", "IMAGE"):
        series = uid(T_SERIES)
        if not series:
            return None
        url += f"/series/{uid_segment(series)}"
    if level == "IMAGE":
        sop = uid(T_SOP)
        if not sop:
            return None
        url += f"/instances/{uid_segment(sop)}"
    return url


def finish_row(row: dict, search: Search, base_url: str, drop_tags: set) -> dict:
    row.pop(T_QR_LEVEL, None)
    for tag in drop_tags:
        attr = row.get(tag)
        if attr is not None and "Value" not in attr and "BulkDataURI" not in attr and "InlineBinary" not in attr:
            del row[tag]
    url = retrieve_url(base_url, row, search.level)
    if url is not None:
        row[T_RETRIEVE_URL] = {"vr": "UR", "Value": [url]}
    return dict(sorted(row.items()))


def _negotiate(request: WebRequest) -> str:
    for accepted in parse_accept(_accept(request)):
        media = accepted.media_type
        if media == "multipart/related":
            continue  # multipart/related; type="application/dicom+xml" is not offered
        if media == "application/json":
            return "application/json"
        if media_matches(media, DICOM_JSON):
            return DICOM_JSON
    raise HttpError(406, "QIDO-RS answers application/dicom+json (or application/json) only")


def _accept(request: WebRequest) -> str | None:
    for name, value in request.query:
        if name.lower() == "accept":  # the accept query parameter overrides the header (PS3.18 8.3.3.1)
            return value
    return request.header("accept")


def search(service, request: WebRequest, segs: list[str]) -> WebResponse:
    """Answer a QIDO-RS request: 200 with a page of DICOM JSON, or 204 when it is empty.

    Every answer carries ``X-Total-Count``, the number of matches of the whole search (so a
    client can show "page 3 of 12"); ``limit=0`` asks for that count alone."""
    content_type = _negotiate(request)
    parsed = parse_search(segs, request.query, defaults=service.find_options)
    limits = service.limits
    limit = limits.default_limit if parsed.limit is None else parsed.limit
    limit = min(limit, limits.max_results)
    service_uri = request.base_url or "pacscore"
    headers = [warning(service_uri, text) for text in parsed.warnings]
    archive = service.archive
    if parsed.empty:
        return WebResponse(204, [*headers, (TOTAL_COUNT, "0")])
    if limit == 0:
        return WebResponse(204, [*headers, (TOTAL_COUNT, str(_count(archive, parsed)))])
    if parsed.order is not None:
        rows, total = _ordered_page(archive, parsed, limit)
    else:
        rows, total = _page(archive, parsed, limit)
    headers.append((TOTAL_COUNT, str(total)))
    if not rows:
        return WebResponse(204, headers)
    remaining = total - parsed.offset - len(rows)
    if remaining > 0:
        headers.append(warning(service_uri, f"There are {remaining} additional results that can be requested"))
    drop_tags = {_tag_hex(k) for k in parsed.drop_if_empty}
    answer = [finish_row(row, parsed, request.base_url, drop_tags) for row in rows]
    return json_response(answer, 200, headers, content_type=content_type)


#: the response header with the number of matches of the whole search (docs/conformance-dicomweb.md)
TOTAL_COUNT = "X-Total-Count"


def _find(archive, parsed: Search, identifier: dict, **paging) -> list[dict]:
    return list(archive.find(identifier, level=parsed.level, model="STUDY", format="json", **paging, **parsed.options))


def _count(archive, parsed: Search) -> int:
    return archive.count(parsed.identifier, level=parsed.level, model="STUDY", **parsed.options)


def _page(archive, parsed: Search, limit: int) -> tuple[list[dict], int]:
    """One page in unique-key order and the total; the archive counts (without building
    results) only when the page alone does not tell the total."""
    rows = _find(archive, parsed, parsed.identifier, limit=limit + 1, offset=parsed.offset)
    if len(rows) > limit:
        return rows[:limit], _count(archive, parsed)
    if rows or parsed.offset == 0:
        return rows, parsed.offset + len(rows)
    return rows, _count(archive, parsed)  # past the end: the page says nothing of the total


def _ordered_page(archive, parsed: Search, limit: int) -> tuple[list[dict], int]:
    """One page ordered by ``parsed.order``, then by unique key, and the total.

    A first pass asks every match for the sort attribute and the unique key only (a zero-length
    key is universal matching, PS3.4 C.2.2.2.3, so dropping the return keys keeps the matches)
    and keeps the best ``offset + limit`` of them; a second pass builds the full results of the
    page alone, through the list of its unique keys."""
    order = parsed.order
    assert order is not None
    unique = UNIQUE_KEYS[parsed.level]
    keep = {order.keyword, unique}
    light = {k: v for k, v in parsed.identifier.items() if v != "" or k in keep}
    light.setdefault(order.keyword, "")
    light.setdefault(unique, "")
    sort_tag, unique_tag = _tag_hex(order.keyword), _tag_hex(unique)
    total = 0

    def keyed():
        nonlocal total
        for i, row in enumerate(_find(archive, parsed, light)):
            total += 1
            value = _first_value(row, sort_tag)
            yield (value, -i if order.descending else i), _first_value(row, unique_tag)

    wanted = parsed.offset + limit
    select = heapq.nlargest if order.descending else heapq.nsmallest
    best = select(wanted, keyed(), key=lambda item: item[0])
    page = [uid for _, uid in best[parsed.offset :]]
    if not page:
        return [], total
    rows = _find(archive, parsed, {**parsed.identifier, unique: "\\".join(page)})
    by_uid = {_first_value(row, unique_tag): row for row in rows}
    return [by_uid[uid] for uid in page if uid in by_uid], total


def _first_value(row: dict, tag: str) -> str:
    values = (row.get(tag) or {}).get("Value") or []
    return str(values[0]) if values else ""


__all__ = [
    "search",
    "parse_search",
    "Search",
    "RESOURCES",
    "resolve",
    "STUDY_DEFAULTS",
    "SERIES_DEFAULTS",
    "INSTANCE_DEFAULTS",
]
