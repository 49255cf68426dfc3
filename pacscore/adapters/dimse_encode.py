"""C-FIND response identifiers encoded straight from the index's rows, without a pydicom Dataset.

For a query with many matches the DIMSE adapter spent most of its time building a pydicom
Dataset per match and having pydicom encode it. The archive's result builder already has each
response as ``(tag, VR, value)`` fields (``ResultBuilder.fields``: the values as stored, UTF-8
text under Specific Character Set ISO_IR 192); this module writes those fields as the bytes of a
data set in Implicit or Explicit VR Little Endian (PS3.5 7.1, 7.3), the two transfer syntaxes
every C-FIND requestor proposes, and hands them to pynetdicom as an already encoded identifier.

The bytes are pydicom's for the Dataset the adapter would have built (tests/test_dimse_wire_encode.py
checks it with Hypothesis over generated rows, every VR the rows carry and several scripts).
A row this encoder cannot promise that for (a sequence, a value pydicom would re-format or
refuse, text outside ASCII in a VR without character set) is built as a Dataset instead, so the
answer never depends on which path served it.

Each row is written by the query's ``EncodePlan`` straight from its stored records (the row plan
of the JSON path, read once per query); a row the plan leaves goes through ``ResultBuilder.fields``
and ``encode_row``. ``encode_fields``, ``encode_row`` and ``EncodePlan`` are the compiled twins
(pacscore._ext._dimse_encode, tests/test_dimse_encode_compiled.py) unless PACSCORE_PURE=1 or the
extension is not built; the ``*_pure`` ones are the reference. benchmarks/find_encode.py times
them per match.
"""

from __future__ import annotations

import re
import struct
import types
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import service_class as _service_class
from pynetdicom.dsutils import encode as _pynetdicom_encode
from pynetdicom.service_class import QueryRetrieveServiceClass

from .. import _impl, model
from ..index import codec
from ..query import json_rows, paging
from ..query.execute import Executor
from ..query.results import RESULT_BATCH, ResultBuilder
from .dimse_rebind import rebound

__all__ = [
    "EncodedIdentifier",
    "EncodingBuilder",
    "Unencodable",
    "encode_fields",
    "encode_fields_pure",
    "encode_row",
    "encode_row_pure",
    "merged_fields",
    "EncodePlan",
    "EncodePlanPure",
    "encoded_find",
    "encoded_results",
    "ENCODABLE_SYNTAXES",
    "EncodedFindServiceClass",
    "encode_command_set",
    "fast_command_encoding",
    "find_response_command",
    "FindResponse",
]

#: transfer syntax UID -> explicit VR?
ENCODABLE_SYNTAXES = {str(ImplicitVRLittleEndian): False, str(ExplicitVRLittleEndian): True}
#: explicit VR: these have a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
#: text encoded by the Specific Character Set (ISO_IR 192: UTF-8); others are ASCII (PS3.5 6.1.2.3)
CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
_BINARY = {"US": "<H", "SS": "<h", "UL": "<L", "SL": "<l", "UV": "<Q", "SV": "<q", "FL": "<f", "FD": "<d"}
#: PS3.5 6.2: DS and IS as pydicom accepts them unchanged (anything else goes the Dataset way)
_DS = re.compile(r"^ *[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)? *$")
_IS = re.compile(r"^ *[+-]?\d+ *$")
_MAX_SHORT = 0xFFFF
RETRIEVE_AE_TITLE = 0x00080054
INSTANCE_AVAILABILITY = 0x00080056


class Unencodable(ValueError):
    """A row this encoder does not write byte for byte as pydicom would; it goes the Dataset way."""


class EncodedIdentifier(bytes):
    """A C-FIND identifier already encoded in its presentation context's transfer syntax."""


def _text_value(vr: str, value: str) -> bytes:
    if vr in CHARSET_VRS:
        data = value.encode("utf-8")
    else:
        if not value.isascii():
            raise Unencodable(f"{vr} value outside ASCII")
        data = value.encode("ascii")
    if vr == "DS":
        if any(len(v) > 16 or not _DS.match(v) for v in value.split("\\")):
            raise Unencodable("DS value pydicom would re-format")
    elif vr == "IS":
        for v in value.split("\\"):
            if len(v) > 12 or not _IS.match(v) or not -(2**31) <= int(v) < 2**31:
                raise Unencodable("IS value pydicom would re-format")
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    return data


def _binary_value(vr: str, value: str) -> bytes:
    parts = [v for v in value.split("\\") if v != ""]
    fmt = _BINARY[vr]
    try:
        if vr in ("FL", "FD"):
            return b"".join(struct.pack(fmt, float(v)) for v in parts)
        return b"".join(struct.pack(fmt, int(v)) for v in parts)
    except (ValueError, struct.error) as exc:
        raise Unencodable(f"{vr} value {value!r}") from exc


def _value(vr: str, value: object) -> bytes:
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise Unencodable(f"{vr} value of type {type(value).__name__}")
    if vr in _BINARY:
        return _binary_value(vr, value)
    if vr == "AT":
        try:
            tags = [int(v, 16) for v in value.split("\\") if v]
            return b"".join(struct.pack("<HH", t >> 16, t & 0xFFFF) for t in tags)
        except (ValueError, struct.error) as exc:
            raise Unencodable(f"AT value {value!r}") from exc
    if vr in ("OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ"):
        raise Unencodable(f"{vr} value")
    return _text_value(vr, value)


def encode_fields_pure(fields: list[tuple[int, str, Any]], explicit: bool) -> bytes:
    """The data set of ``fields`` ((tag, VR, value) as ResultBuilder.fields gives them, values as
    stored), in Explicit or Implicit VR Little Endian; raises Unencodable for what only pydicom's
    own encoding reproduces. A repeated tag keeps its last field, as Dataset.add does."""
    by_tag = {tag: (vr, value) for tag, vr, value in fields}
    out = bytearray()
    pack = struct.pack
    for tag in sorted(by_tag):
        vr, value = by_tag[tag]
        if vr in ("IN", "UN"):
            vr = "LO"  # as the Dataset path: an unknown VR goes out as LO
        data = _value(vr, value)
        group, element = tag >> 16, tag & 0xFFFF
        if not explicit:
            out += pack("<HHL", group, element, len(data))
        elif vr in LONG_LENGTH_VRS:
            out += pack("<HH2sHL", group, element, vr.encode(), 0, len(data))
        else:
            if len(data) > _MAX_SHORT:
                raise Unencodable(f"{vr} value longer than {_MAX_SHORT} bytes")
            out += pack("<HH2sH", group, element, vr.encode(), len(data))
        out += data
    return bytes(out)


def merged_fields(
    fields: list[tuple[int, str, Any]],
    defaults: tuple[tuple[int, str, str], ...],
    overrides: tuple[tuple[int, str, str], ...],
) -> list[tuple[int, str, Any]]:
    """``fields`` with what the adapter adds: ``defaults`` where the row has no value for the
    tag, ``overrides`` always; in tag order."""
    kept = {tag for tag, _, value in fields if value not in ("", None, [])}
    added = [f for f in defaults if f[0] not in kept] + list(overrides)
    replaced = {f[0] for f in added}
    return sorted([f for f in fields if f[0] not in replaced] + added, key=lambda f: f[0])


def encode_row_pure(
    fields: list[tuple[int, str, Any]],
    explicit: bool,
    defaults: tuple[tuple[int, str, str], ...] = (),
    overrides: tuple[tuple[int, str, str], ...] = (),
) -> bytes:
    """One response's data set: ``encode_fields`` of ``merged_fields``; Unencodable also for a
    row with a sequence (pydicom writes those)."""
    if defaults or overrides:
        fields = merged_fields(fields, defaults, overrides)
    if any(vr == "SQ" for _, vr, _ in fields):
        raise Unencodable("a sequence")
    return encode_fields_pure(fields, explicit)


class EncodePlanPure:
    """One query's responses written straight from the stored records: the row plan of the JSON
    path (``ResultBuilder._row_plan``, specs of pacscore/query/json_rows.py) with what the adapter
    adds. ``row(recs)`` is ``encode_row`` of the fields ``ResultBuilder.fields`` gives for the
    same records, read spec by spec as json_rows reads them. ValueError when the plan cannot
    serve the query (a spec built by a callable, a tag twice); then the builder uses ``fields``.
    ``pacscore._ext._dimse_encode.EncodePlan`` is the compiled twin, which writes the stored
    UTF-8 bytes without making a str of them."""

    def __init__(
        self,
        specs: tuple,
        explicit: bool,
        defaults: tuple[tuple[int, str, str], ...] = (),
        overrides: tuple[tuple[int, str, str], ...] = (),
    ) -> None:
        tags = [int(spec[1], 16) for spec in specs]
        if any(spec[0] not in (json_rows.CONSTANT, json_rows.UNIQUE, json_rows.KEY) for spec in specs):
            raise ValueError("a spec built by a callable")
        added = [f[0] for f in defaults] + [f[0] for f in overrides]
        if len(set(tags)) != len(tags) or len(set(added)) != len(added):
            raise ValueError("a tag twice")
        self.specs = tuple(zip(tags, specs))
        self.explicit, self.defaults, self.overrides = explicit, defaults, overrides

    def row(self, recs: tuple) -> bytes:
        """One response's data set; ``recs[i]`` is the raw record of level i or None."""
        fields: list[tuple[int, str, Any]] = []
        for tag, spec in self.specs:
            if spec[0] == json_rows.CONSTANT:
                fields.append((tag, spec[2], spec[3]))
                continue
            _, _, index, read, vr = spec
            rec = recs[index]
            if spec[0] == json_rows.UNIQUE:
                value = codec.get_value(rec, read) if rec is not None else None
                fields.append((tag, vr, value or ""))
                continue
            field = codec.get(rec, read) if rec is not None else None
            if field is None:
                fields.append((tag, vr, [] if vr == "SQ" else ""))
            else:
                fields.append((tag, json_rows.out_vr(vr, field[0]), field[1]))
        return encode_row_pure(fields, self.explicit, self.defaults, self.overrides)


#: the compiled twins (pacscore._ext._dimse_encode) when built, else the pure ones above
_compiled = _impl.compiled("_dimse_encode")
encode_fields: Callable[[list[tuple[int, str, Any]], bool], bytes] = (
    _compiled.encode_fields if _compiled is not None else encode_fields_pure
)
encode_row: Callable[..., bytes] = _compiled.encode_row if _compiled is not None else encode_row_pure
EncodePlan: Callable[..., Any] = _compiled.EncodePlan if _compiled is not None else EncodePlanPure


#: the encode plan of each response shape seen (EncodingBuilder): a plan depends on the query's
#: model, level and keys (tag, level, VR), never on their values, so a client repeating a query
#: with other values (a kept association, a worklist poll) reuses it. Plans are immutable.
_PLANS: dict[tuple, tuple[Any, tuple[str, ...]]] = {}
_MAX_PLANS = 512


def _shape(query, explicit: bool, defaults: tuple, overrides: tuple) -> tuple | None:
    """What an EncodePlan of ``query`` depends on; None for a query whose rows need a per-query
    callable (a timezone key: the plan is not cached)."""
    keys = tuple((k.tag, k.level, k.vr) for k in query.keys)
    if any(k[0] == model.T_TZ for k in keys):
        return None
    return (query.model, query.level, query.levels, keys, explicit, tuple(defaults), tuple(overrides))


class EncodingBuilder(ResultBuilder):
    """The archive's result builder, giving EncodedIdentifier bytes (or, per row, the Dataset the
    adapter would have had, when the row is not one encode_fields reproduces exactly).

    What the adapter adds to each response goes into the fields first: ``defaults`` (tag, VR,
    value) where the row has no value for the tag (Retrieve AE Title), ``overrides`` always
    (Instance Availability)."""

    def __init__(
        self,
        query,
        explicit: bool,
        defaults: tuple[tuple[int, str, str], ...] = (),
        overrides: tuple[tuple[int, str, str], ...] = (),
    ) -> None:
        super().__init__(query, "dataset")
        self.explicit = explicit
        self.defaults = defaults
        self.overrides = overrides
        self._added = {f[0] for f in defaults} | {f[0] for f in overrides}
        self.fallbacks = 0
        self.render = self._encode
        shape = _shape(query, explicit, defaults, overrides) if not self._seq_filters else None
        cached = _PLANS.get(shape) if shape is not None else None
        if cached is not None:
            self._plan, self._plan_levels = cached
            return
        specs, levels = self._row_plan()
        try:
            self._plan = EncodePlan(specs, explicit, tuple(defaults), tuple(overrides))
        except (ValueError, Unencodable):
            self._plan = None  # every row from fields()
        self._plan_levels = tuple(lvl or query.level for lvl in levels)
        if shape is not None:
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.clear()
            _PLANS[shape] = (self._plan, self._plan_levels)

    def __call__(self, match) -> EncodedIdentifier | Dataset:
        """One response: from the records through the plan, else (a row the plan leaves to the
        Dataset path) from ``fields``, which encodes it or builds its Dataset."""
        if self._plan is not None:
            try:
                return EncodedIdentifier(self._plan.row(tuple(map(match.record, self._plan_levels))))
            except Unencodable:
                pass
        return self._encode(self.fields(match))

    def _encode(self, fields: list[tuple[int, str, Any]]) -> EncodedIdentifier | Dataset:
        try:
            return EncodedIdentifier(encode_row(fields, self.explicit, self.defaults, self.overrides))
        except Unencodable:
            pass
        self.fallbacks += 1
        if self._added:
            fields = merged_fields(fields, self.defaults, self.overrides)
        return self._dataset(fields)


def encodable(archive, transfer_syntax: str) -> bool:
    """Whether encoded_find serves this archive in this transfer syntax."""
    from ..archive import Archive

    return str(transfer_syntax) in ENCODABLE_SYNTAXES and type(archive).find is Archive.find


def encoded_find(
    archive,
    identifier,
    level: str,
    model: str,
    options: dict,
    transfer_syntax: str,
    defaults: tuple[tuple[int, str, str], ...] = (),
    overrides: tuple[tuple[int, str, str], ...] = (),
    query=None,
    between: Callable[[], None] | None = None,
) -> Iterator | None:
    """``archive.find(identifier, level, model, **options)`` with each match as an
    EncodedIdentifier for ``transfer_syntax`` (or its Dataset, see EncodingBuilder); None when
    this archive or transfer syntax cannot be served that way (the caller uses ``find``).

    The same query, plan and snapshot as ``Archive.find``: only the last step, building the
    response, differs. ``between`` is called after a full batch of rows, before the next is
    read (the caller's moment to send what it holds: the next rows may take a scan)."""

    explicit = ENCODABLE_SYNTAXES.get(str(transfer_syntax))
    if not encodable(archive, transfer_syntax):
        return None  # another transfer syntax, or an archive (proxy) whose find() is its own
    assert explicit is not None
    if query is None:  # (the caller may have built it already, for the same arguments)
        query = archive._query(identifier, level, model, options)
    builder = EncodingBuilder(query, explicit, defaults, overrides)

    def batches():
        with archive.index.read() as txn, Executor(archive.index, txn, query) as executor:
            yield from paging.rows(executor, builder, None, 0)

    return _chain(batches(), between)


def encoded_results(
    event,
    archive,
    identifier,
    level: str,
    model: str,
    options: dict,
    retrieve_ae: str,
    availability: bool,
    query=None,
):
    """What the C-FIND handler iterates when the association can take encoded identifiers
    (dimse_fastpath) and the request's context is Implicit / Explicit VR Little Endian; else None."""
    if not getattr(event.assoc, "accepts_encoded_identifiers", False):
        return None
    defaults = ((RETRIEVE_AE_TITLE, "AE", retrieve_ae),) if retrieve_ae else ()
    overrides = ((INSTANCE_AVAILABILITY, "CS", "ONLINE"),) if availability else ()
    syntax = event.context.transfer_syntax
    # an event that sends responses in batches (dimse_direct) learns that the rows come in batches
    hook = getattr(event, "rows_in_batches", None)
    between = hook() if hook is not None and encodable(archive, syntax) else None
    return encoded_find(archive, identifier, level, model, options, syntax, defaults, overrides, query, between)


def _chain(batches: Iterator[list], between: Callable[[], None] | None = None) -> Iterator:
    """Rows of the batches, closing the batches (and their read transaction) when closed;
    ``between`` called after each full batch (a shorter one is the last: paging.paged)."""
    try:
        for batch in batches:
            yield from batch
            if between is not None and len(batch) >= RESULT_BATCH:
                between()
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


# ---- handing the bytes to pynetdicom ----------------------------------------------------------
def _encode(ds, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False) -> bytes | None:
    """pynetdicom's dsutils.encode, passing an EncodedIdentifier through as it is."""
    if isinstance(ds, EncodedIdentifier):
        if not is_little_endian or deflated:  # never made for these: encoded_find checks
            return None
        return bytes(ds)
    return _pynetdicom_encode(ds, is_implicit_vr, is_little_endian, deflated)


_FIND_SCP = rebound(QueryRetrieveServiceClass._c_find_scp, _service_class, encode=_encode)
#: True when this pynetdicom's C-FIND SCP can send EncodedIdentifier responses
ENCODED_RESPONSES = _FIND_SCP is not None


class EncodedFindServiceClass(QueryRetrieveServiceClass):
    """pynetdicom's Query/Retrieve service class whose C-FIND SCP accepts EncodedIdentifier
    responses from the handler (everything else, statuses, cancel, logging, is pynetdicom's)."""

    if _FIND_SCP is not None:
        _c_find_scp = _FIND_SCP


# ---- command sets ------------------------------------------------------------------------------------
#: VRs of the command set elements (PS3.7 E.1) written here; any other goes to pydicom
_COMMAND_TEXT_VRS = frozenset({"UI", "AE", "LO", "SH", "CS"})


def encode_command_set(ds: Dataset) -> bytes:
    """A DIMSE command set (always Implicit VR Little Endian, PS3.7 6.3.1) as pydicom writes it;
    Unencodable for an element this does not reproduce exactly (pydicom then encodes it).

    pynetdicom encodes every command set twice with pydicom (once for the group length), about
    a third of the CPU of a C-FIND response; the elements are a handful of US, UL, UI, AT and LO."""
    return _command_elements((int(e.tag), e.VR, e.value) for e in ds)


def _command_elements(elements) -> bytes:
    """(tag, VR, value) in tag order, Implicit VR Little Endian."""
    out = bytearray()
    pack = struct.pack
    for tag, vr, value in elements:
        if value is None or value == "" or (isinstance(value, list) and not value):
            data = b""
        elif vr in ("US", "UL") and isinstance(value, int):
            try:
                data = pack("<H" if vr == "US" else "<L", value)
            except struct.error as exc:
                raise Unencodable(f"{vr} value {value!r}") from exc
        elif vr == "AT":
            tags = value if isinstance(value, list) else [value]
            try:
                data = b"".join(pack("<HH", int(t) >> 16, int(t) & 0xFFFF) for t in tags)
            except (struct.error, TypeError, ValueError) as exc:
                raise Unencodable(f"AT value {value!r}") from exc
        elif vr in _COMMAND_TEXT_VRS and isinstance(value, str) and value.isascii() and "\\" not in value:
            data = value.encode("ascii")
            if len(data) % 2:
                data += b"\0" if vr == "UI" else b" "
        else:
            raise Unencodable(f"command element {tag:08X} {vr}")
        out += pack("<HHL", tag >> 16, tag & 0xFFFF, len(data))
        out += data
    return bytes(out)


def find_response_command(primitive) -> bytes:
    """The command set of a C-FIND response (PS3.7 9.3.2.2) from its primitive, as pynetdicom's
    C_FIND_RSP message would encode it: the primitive's fields that are set, the command
    field, the data set type, and the group length first."""
    fields: list[tuple[int, str, Any]] = []
    if primitive.AffectedSOPClassUID is not None:
        fields.append((0x00000002, "UI", str(primitive.AffectedSOPClassUID)))
    fields.append((0x00000100, "US", 0x8020))
    if primitive.MessageIDBeingRespondedTo is not None:
        fields.append((0x00000120, "US", primitive.MessageIDBeingRespondedTo))
    fields.append((0x00000800, "US", 0x0001 if primitive.Identifier else 0x0101))
    if primitive.Status is not None:
        fields.append((0x00000900, "US", primitive.Status))
    if primitive.OffendingElement is not None:  # one tag or a list of them
        fields.append((0x00000901, "AT", primitive.OffendingElement))
    if primitive.ErrorComment is not None:
        fields.append((0x00000902, "LO", primitive.ErrorComment))
    body = _command_elements(fields)
    return _command_elements([(0x00000000, "UL", len(body))]) + body


class _PreEncoded:
    """A command set already encoded (what _command_encode passes through)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _command_encode(ds, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False) -> bytes | None:
    """What pynetdicom's DIMSE messages call to encode their command set: ours when it can."""
    if isinstance(ds, _PreEncoded):
        return ds.data
    if is_implicit_vr and is_little_endian and not deflated:
        try:
            return encode_command_set(ds)
        except Unencodable:
            pass
    return _pynetdicom_encode(ds, is_implicit_vr, is_little_endian, deflated)


def _rebind_messages(method: Callable) -> Callable | None:
    from pynetdicom import dimse_messages

    return rebound(method, dimse_messages, encode=_command_encode)


def _message_methods() -> dict[str, Callable] | None:
    from pynetdicom.dimse_messages import DIMSEMessage

    methods = {
        name: _rebind_messages(getattr(DIMSEMessage, name)) for name in ("_set_command_group_length", "encode_msg")
    }
    if any(m is None for m in methods.values()):
        return None
    return cast(dict[str, Callable], methods)


_MESSAGE_METHODS = _message_methods()


def fast_command_encoding(message) -> None:
    """Make one outgoing pynetdicom DIMSE message encode its command set with
    encode_command_set (its data set, when it has one, is left as it is)."""
    if _MESSAGE_METHODS is None:
        return
    for name, method in _MESSAGE_METHODS.items():
        setattr(message, name, types.MethodType(method, message))


def _find_response_class():
    from pynetdicom.dimse_messages import C_FIND_RSP

    class FindResponse(C_FIND_RSP):
        """A C-FIND response message whose command set is encoded straight from its primitive;
        pynetdicom's Dataset of it is built only if something asks for ``command_set`` (an
        EVT_DIMSE_SENT handler). Building that Dataset, field by field through pydicom, was
        about a third of the SCP's CPU per response."""

        def __init__(self, primitive) -> None:  # not C_FIND_RSP's: no command set template
            self.context_id = None
            self.encoded_command_set = BytesIO()
            self._data_set_path = None
            self._data_set_file = None
            self._primitive = primitive
            self._command_set: Any = None
            self.data_set = primitive.Identifier

        @property
        def command_set(self):
            if self._command_set is None:
                message = C_FIND_RSP()
                fast_command_encoding(message)
                message.primitive_to_message(self._primitive)
                self._command_set = message.command_set
            return self._command_set

        @command_set.setter
        def command_set(self, value) -> None:
            self._command_set = value

        def primitive_to_message(self, primitive) -> None:
            self._primitive, self._command_set, self.data_set = primitive, None, primitive.Identifier

        def encode_msg(self, context_id: int, max_pdu_length: int):
            if self._command_set is None:  # nobody looked: encode from the primitive
                try:
                    self._command_set = _PreEncoded(find_response_command(self._primitive))
                except (Unencodable, TypeError, ValueError):  # then as pynetdicom would
                    self.command_set  # noqa: B018 - builds pynetdicom's Dataset of it
            assert _MESSAGE_METHODS is not None
            return _MESSAGE_METHODS["encode_msg"](self, context_id, max_pdu_length)

    FindResponse.__name__ = FindResponse.__qualname__ = "C_FIND_RSP"  # what handlers dispatch on
    return FindResponse


#: the C-FIND response message class of the fast path (None: this pynetdicom cannot have it)
FindResponse = _find_response_class() if _MESSAGE_METHODS is not None else None
