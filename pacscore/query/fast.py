"""Accelerated condition tests: the compiled kernels (_ext/_match.pyx) for the common keys.

``accelerate(cond, options)`` gives a test with the signature and the answers of
``cond.test`` (one stored value in), or None when the condition is not one the kernels take:

* single values and UID lists on the text VRs compared exactly (CS SH LO AE UI AS UC LT ST UT UR);
* wild cards on the wild card VRs other than PN;
* PN wild cards of one component group (``SMI*``, ``*ohn*``), with ``options`` given;
* DA single values and ranges whose ends are plain YYYYMMDD dates (stored values that are not
  a valid YYYYMMDD date, e.g. the retired YYYY.MM.DD form, go to the reference);
* combined date-time ranges (a DA and a TM key, without timezone adjustment), on stored
  YYYYMMDD dates and HH[MM[SS[.F]]] times;
* TM and DT single values and ranges without timezone adjustment, on stored HH[MM[SS[.F]]]
  times and DT values with or without an offset (query/temporal.py has the bounds and the
  pure twins of the readers).

``record_tester(query, fallback)`` gives ``test(level, record_bytes) -> bool`` for a whole
query, reading fields in place; conditions without a kernel go through the codec and
``cond.test`` as before. Both give ``None``/``fallback`` when the extension is not live, so the
pure path (``PACSCORE_PURE=1``) is untouched.

Empty and absent stored values: the kernels answer ``cond.test(None)`` for them, which is how
the reference applies ``empty_record_matches`` (conditions._stored_test), so the two cannot
disagree. Anything the kernels cannot settle on ASCII bytes (non-ASCII text, which needs NFC
and case folding; person names not in normal form; SQ fields) is handed to ``cond.test``.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import _impl, values
from . import temporal
from .kinds import ConditionKind

_match = _impl.compiled("_match")  # None: pure install or forced pure, nothing to accelerate

__all__ = ["LIVE", "accelerate", "record_tester"]

#: True when the compiled kernels are in use
LIVE = _match is not None

_EXACT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UI", "UR", "UT"})


def _build(cond, options=None):
    """The FieldTest (or CombinedTest) of a condition, or None."""
    if _match is None:
        return None
    combined = getattr(cond.test, "combined", None)
    if cond.kind == ConditionKind.COMBINED and combined is not None and len(cond.tags) == 2:
        (lo, hi), offset, empty = combined
        return _match.CombinedTest(cond.tags[0], cond.tags[1], lo, hi, offset, empty, cond.test)
    if len(cond.tags) != 1 or not cond.key_values:
        return None
    vr, kind = cond.vr, cond.kind
    empty = bool(cond.test(None))  # the reference's own answer for an absent value
    strip_lead = vr not in values.LEADING_SIGNIFICANT
    split = vr not in values.TEXT_VRS
    args = dict(empty=empty, strip_lead=strip_lead, split=split, fallback=cond.test)
    if kind == ConditionKind.UID_LIST and vr == "UI":
        # uid_list compares the key values as given; key_values are NFC'd, equal for ASCII
        if not all(v.isascii() for v in cond.key_values):
            return None
        return _match.FieldTest(cond.tags[0], _match.MODES["exact"], cond.key_values, fold=False, **args)
    if kind == ConditionKind.SINGLE and vr in _EXACT_VRS:
        return _match.FieldTest(cond.tags[0], _match.MODES["exact"], cond.key_values, fold=False, **args)
    if kind == ConditionKind.WILDCARD and vr in values.WILDCARD_VRS and vr != "PN":
        # an exact key value beside a pattern is a pattern without wild cards: same answers
        return _match.FieldTest(cond.tags[0], _match.MODES["wildcard"], cond.key_values, fold=False, **args)
    if vr == "DA" and kind in (ConditionKind.SINGLE, ConditionKind.RANGE) and len(cond.key_values) == 1:
        bounds = _da_bounds(kind, cond.key_values[0])
        if bounds is None:
            return None
        return _match.FieldTest(cond.tags[0], _match.MODES["da_range"], bounds, fold=False, **args)
    if vr in ("TM", "DT") and kind in (ConditionKind.SINGLE, ConditionKind.RANGE) and len(cond.key_values) == 1:
        # without timezone adjustment (one tag read): offset-less stored DT values are in
        # local_timezone, the offset the key's own offset-less bounds were read in too
        if options is None and vr == "DT":
            return None
        offset = _local_offset(options) if vr == "DT" else 0
        instants = temporal.key_bounds(vr, cond.key_values[0], offset)
        if instants is None:
            return None
        mode = _match.MODES["tm_range" if vr == "TM" else "dt_range"]
        return _match.FieldTest(cond.tags[0], mode, (*instants, offset), fold=False, **args)
    if kind == ConditionKind.WILDCARD and vr == "PN" and options is not None and not options.pn_match_all_groups:
        fold = values.fold_case if options.pn_case_insensitive else (lambda s: s)
        patterns, carets = [], []
        for v in cond.key_values:
            if "*" not in v and "?" not in v:
                return None  # a plain name beside a pattern follows person_name, not wild cards
            groups = values.pn_groups(values.nfc(v))
            if len(groups) != 1 or not groups[0]:
                return None
            patterns.append(fold(groups[0]))
            carets.append(groups[0].count("^"))
        return _match.FieldTest(
            cond.tags[0], _match.MODES["pn_wildcard"], patterns, fold=options.pn_case_insensitive, carets=carets, **args
        )
    return None


def _local_offset(options) -> int:
    """The UTC offset (µs) of offset-less DT values: ``local_timezone`` (validated by the
    condition compiler before any condition exists)."""
    return values.parse_offset(options.local_timezone)


def _da_bounds(kind: ConditionKind, key: str) -> tuple[str, str] | None:
    """``(low, high)`` of a DA single value or range as YYYYMMDD ("" for an open end), when
    both ends are plain valid dates (so that comparing the digits compares the days)."""
    if kind == ConditionKind.SINGLE:
        low = high = key.strip(" \0")
    else:
        try:
            first, last = values.split_range("DA", key)
        except ValueError:
            return None
        low, high = first or "", last or ""
    for end in (low, high):
        if end and not (len(end) == 8 and end.isascii() and end.isdigit() and _is_date(end)):
            return None
    return low, high


def _is_date(text: str) -> bool:
    try:
        values.parse_da(text)
    except ValueError:
        return False
    return True


def accelerate(cond, options=None) -> Callable[[object], bool] | None:
    """A compiled test equal to ``cond.test`` for one stored value, or None.

    ``options`` (the query's MatchOptions) is needed only for PN wild cards and DT keys.

    >>> from pacscore.query.conditions import compile_condition
    >>> from pacscore.query.options import MatchOptions
    >>> cond = compile_condition("Modality", 0x00080060, "CS", "CT\\\\MR", MatchOptions())
    >>> test = accelerate(cond) or cond.test
    >>> test("MR ")
    True
    """
    return _build(cond, options)


def record_tester(query, fallback: Callable[[str, bytes], bool]) -> Callable[[str, bytes], bool]:
    """``test(level, record)`` for every condition of ``query`` at that level; ``fallback``
    (the Executor's own test) when the kernels are not live."""
    if _match is None:
        return fallback
    per_level = {}
    for level, conds in query.conditions.items():
        checks = []
        for cond in conds:
            fast = _build(cond, query.options)
            checks.append(fast if fast is not None else (tuple(cond.tags), cond.test))
        per_level[level] = _match.RecordTest(checks)
    always = _match.RecordTest(())

    def test(level: str, rec: bytes) -> bool:
        return per_level.get(level, always)(rec)

    # for Executor's C scan loop
    test.record_test = lambda level: per_level.get(level, always)  # type: ignore[attr-defined]  # a function attribute
    return test
