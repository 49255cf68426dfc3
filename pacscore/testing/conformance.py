"""Differential conformance testing of the C-FIND / QIDO-RS matching rules of any PACS.

    pacscore conformance dimse://PACS@127.0.0.1:11112 --seed 1 --queries 300
    pacscore conformance http://127.0.0.1:8042/dicomweb --json
    pacscore conformance ./archive

The runner stores a seeded synthetic data set (``strategies.data_sets``) through the target
(C-STORE, STOW-RS or ``Archive.store``; ``--no-store`` when it already holds it: the same
seed gives the same data), then asks Hypothesis for queries, one matching rule at a time. Each
query is answered by the target and by the reference matcher (``pacscore.match``) applied by
brute force to the stored data set, with pacscore's defaults (docs/matching.md §6): Study Root,
hierarchical (series and image queries name their study / series), combined date-time matching
for QIDO-RS only. Every query whose answer differs is a deviation, grouped by what caused it:
the rule of the key, or the stored value it met (empty, absent, multi-valued). Hypothesis
shrinks each group to its smallest example.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st

from . import strategies as ps
from .targets import UNIQUE, TargetError, open_target

__all__ = ["RULES", "LEVELS", "Deviation", "Report", "Reference", "run_conformance", "main"]

#: the rules queried (sequence matching is not: the data set has no sequences)
RULES = ("single", "wildcard", "range", "uid_list", "universal", "multi_value", "combined")
LEVELS = ("STUDY", "SERIES", "IMAGE")
ATTRIBUTES = {level: ps.level_attributes(level, "STUDY") for level in LEVELS}


def _value(ds, kw: str):
    """A stored attribute as the reference sees it: str, "" (zero length) or None (absent)."""
    if kw not in ds:
        return None
    v = ds[kw].value
    if v is None:
        return ""
    if type(v).__name__ == "MultiValue":
        return "\\".join(str(x) for x in v)
    return str(v)


class Reference:
    """The data set as entities per level, matched by brute force with ``pacscore.match``."""

    def __init__(self, datasets, **options) -> None:
        self.options = options
        self.records: dict[str, dict[str, dict]] = {level: {} for level in LEVELS}
        modalities: dict[str, list[str]] = defaultdict(list)
        for ds in datasets:
            study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
            rec = self.records["STUDY"].setdefault(study, {kw: _value(ds, kw) for kw in ATTRIBUTES["STUDY"]})
            if ds.Modality not in modalities[study]:
                modalities[study].append(str(ds.Modality))
            rec["ModalitiesInStudy"] = "\\".join(sorted(modalities[study]))
            s = self.records["SERIES"].setdefault(series, {kw: _value(ds, kw) for kw in ATTRIBUTES["SERIES"]})
            s["_study"] = study
            i = self.records["IMAGE"].setdefault(
                str(ds.SOPInstanceUID), {kw: _value(ds, kw) for kw in ATTRIBUTES["IMAGE"]}
            )
            i["_study"], i["_series"] = study, series

    def pool(self, level: str, kw: str) -> list[str]:
        """The distinct non-empty stored values (each value of a multi-valued one) of ``kw``."""
        out: set[str] = set()
        for rec in self.records[level].values():
            v = rec.get(kw)
            if v:
                out.update(x for x in (v.split("\\") if kw != "PatientName" else [v]) if x)
        return sorted(out)

    def answer(self, query: Query) -> set[str]:
        from ..query.oracle import match

        out = set()
        for uid, rec in self.records[query.level].items():
            if query.study and rec.get("_study") != query.study:
                continue
            if query.series and rec.get("_series") != query.series:
                continue
            if match("combined", query.keys, {k: v for k, v in rec.items() if not k.startswith("_")}, **self.options):
                out.add(uid)
        return out


@dataclass(frozen=True)
class Query:
    rule: str
    level: str
    keys: dict
    study: str | None = None
    series: str | None = None

    def identifier(self) -> dict:
        ident = {"QueryRetrieveLevel": self.level}
        if self.study:
            ident["StudyInstanceUID"] = self.study
        if self.series:
            ident["SeriesInstanceUID"] = self.series
        ident.update(self.keys)
        ident.setdefault(UNIQUE[self.level], "")
        return ident

    def __str__(self) -> str:
        where = f" in study {self.study}" if self.study else ""
        where += f" series {self.series}" if self.series else ""
        return f"{self.level}{where}: " + " ".join(f"{k}={v!r}" for k, v in self.keys.items())


@dataclass
class Deviation:
    category: str
    rule: str
    query: Query
    missing: list  # (uid, stored values) the reference matched and the target did not
    extra: list  # (uid, stored values) the target returned and the reference did not
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "category": self.category,
            "rule": self.rule,
            "level": self.query.level,
            "identifier": self.query.identifier(),
            "error": self.error,
            "missing": [{"uid": u, "stored": s} for u, s in self.missing],
            "extra": [{"uid": u, "stored": s} for u, s in self.extra],
        }


class _Found(AssertionError):
    deviation: Deviation


_CLASSES: dict[str, type] = {}


def _raise(dev: Deviation):
    cls = _CLASSES.setdefault(dev.category, type(f"Deviation_{len(_CLASSES)}", (_Found,), {}))
    exc = cls(f"{dev.category}: {dev.query}")
    exc.deviation = dev
    raise exc


def _stored_kind(query: Query, rec: dict) -> str | None:
    """ "absent", "empty" or "multi-valued" for a record's key attribute(s), None if plain."""
    kinds = set()
    for kw, key in query.keys.items():
        if key == "":
            continue
        v = rec.get(kw)
        kinds.add("absent" if v is None else "empty" if v == "" else "multi-valued" if "\\" in v else None)
    for kind in ("absent", "empty", "multi-valued"):
        if kind in kinds:
            return kind
    return None


def _category(rule: str, query: Query, uids: list[str], reference: Reference) -> str:
    """What caused a deviation: the rule of the key when a record with plain stored values is
    answered differently; otherwise the stored values of the disagreeing records (empty,
    absent, multi-valued) and the rule, e.g. "absent stored value (universal)"."""
    recs = reference.records[query.level]
    kinds = {_stored_kind(query, recs.get(uid, {})) for uid in uids}
    if None in kinds or not kinds:
        return rule
    if kinds == {"multi-valued"}:
        return f"multi-valued stored value ({rule})"
    if kinds <= {"absent", "empty"}:
        return f"{' or '.join(sorted(kinds))} stored value ({rule})"  # type: ignore[arg-type]  # no None: returned above
    return f"empty, absent or multi-valued stored value ({rule})"


@dataclass
class Report:
    target: str
    seed: int
    queries: int = 0
    stored: int = 0
    per_rule: dict = field(default_factory=dict)  # rule -> queries run
    deviating: dict = field(default_factory=lambda: defaultdict(int))  # category -> distinct queries
    smallest: dict = field(default_factory=dict)  # category -> Deviation (Hypothesis' shrunk example)
    options: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.smallest

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "seed": self.seed,
            "queries": self.queries,
            "stored": self.stored,
            "options": self.options,
            "queries_per_rule": self.per_rule,
            "deviations": len(self.smallest),
            "groups": [
                {"category": c, "deviating_queries": self.deviating[c], **d.to_dict()}
                for c, d in sorted(self.smallest.items())
            ],
        }

    def table(self) -> str:
        lines = [
            f"conformance of {self.target}: {self.queries} queries (seed {self.seed}), {self.stored} instances stored"
            if self.stored
            else f"conformance of {self.target}: {self.queries} queries (seed {self.seed})",
            "queries per rule: " + ", ".join(f"{r} {n}" for r, n in self.per_rule.items()),
        ]
        if self.ok:
            lines.append("no deviation from the reference matcher")
            return "\n".join(lines)
        rows = [("group", "rule", "queries", "smallest example", "reference vs target")]
        for c, d in sorted(self.smallest.items()):
            if d.error:
                diff = f"error: {d.error}"
            else:
                parts = []
                if d.missing:
                    u, s = d.missing[0]
                    parts.append(f"missing {len(d.missing)} (e.g. {_short(u)} {s})")
                if d.extra:
                    u, s = d.extra[0]
                    parts.append(f"extra {len(d.extra)} (e.g. {_short(u)} {s})")
                diff = "; ".join(parts)
            rows.append((c, d.rule, str(self.deviating[c]), str(d.query), diff))
        widths = [min(60, max(len(r[i]) for r in rows)) for i in range(4)]
        lines.append("")
        for n, r in enumerate(rows):
            lines.append("  ".join(r[i][:60].ljust(widths[i]) for i in range(4)) + "  " + r[4])
            if n == 0:
                lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 20)
        lines.append(f"\n{len(self.smallest)} group(s) of deviations")
        return "\n".join(lines)


def _short(uid: str) -> str:
    return uid if len(uid) <= 24 else "…" + uid[-20:]


def query_strategy(rule: str, reference: Reference, levels=LEVELS) -> st.SearchStrategy[Query]:
    """Queries of one ``rule`` over the stored data set (keys drawn around stored values)."""
    studies = sorted(reference.records["STUDY"])
    series = sorted(reference.records["SERIES"])

    def at_level(level: str) -> st.SearchStrategy[Query]:
        if rule == "combined":
            if level != "STUDY":
                return st.nothing()
            form = st.sampled_from(["closed", "open_start", "open_end"])
            return form.flatmap(
                lambda f: st.tuples(
                    ps.range_keys("DA", reference.pool("STUDY", "StudyDate"), form=f),
                    ps.range_keys("TM", reference.pool("STUDY", "StudyTime") or None, form=f),
                )
            ).map(lambda t: Query(rule, level, {"StudyDate": t[0], "StudyTime": t[1]}))
        attrs = [
            kw
            for kw, vr in ATTRIBUTES[level].items()
            if rule in ps.rules_for(vr) and not (rule == "uid_list" and kw == "StudyInstanceUID" and level != "STUDY")
        ]
        if rule in ("single", "multi_value"):
            attrs = [kw for kw in attrs if kw != UNIQUE[level] or rule == "single"]
        if not attrs:
            return st.nothing()

        def keyed(kw: str) -> st.SearchStrategy[Query]:
            vr = ATTRIBUTES[level][kw]
            key = ps.matching_keys(vr, rule, reference.pool(level, kw) or None)
            parent: st.SearchStrategy[tuple[str | None, str | None]]
            if level == "STUDY":
                parent = st.just((None, None))
            elif level == "SERIES":
                parent = st.sampled_from(studies).map(lambda s: (s, None))
            else:
                parent = st.sampled_from(series).map(lambda s: (reference.records["SERIES"][s]["_study"], s))
            return st.tuples(key, parent).map(lambda t: Query(rule, level, {kw: t[0]}, *t[1]))

        return st.sampled_from(attrs).flatmap(keyed)

    usable = [lv for lv in levels if lv in LEVELS]
    return st.sampled_from(usable).flatmap(at_level)


def run_conformance(
    target: str,
    *,
    seed: int = 0,
    queries: int = 200,
    rules=RULES,
    levels=LEVELS,
    pn_case: str = "insensitive",
    calling_ae: str = "PACSCORE-TEST",
    store: bool = True,
    patients: int = 6,
    progress=None,
) -> Report:
    """Run the differential conformance test against ``target``; returns a Report."""
    tgt = open_target(target, calling_ae=calling_ae, create=True)
    data = ps.draw_seeded(ps.data_sets(patients=patients), seed)
    options = {"pn_case_insensitive": pn_case == "insensitive", "combined_datetime": tgt.kind == "qido"}
    reference = Reference(data, **options)
    report = Report(target=target, seed=seed, options={**options, "model": "STUDY", "levels": list(levels)})
    try:
        if store:
            report.stored = tgt.store(data)
        per_rule = max(1, queries // max(1, len(rules)))
        for rule in rules:
            if rule not in RULES:
                raise ValueError(f"unknown rule {rule!r} (known: {', '.join(RULES)})")
            seen: set[str] = set()
            ran = [0]

            @hseed(seed)
            @settings(
                max_examples=per_rule,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                report_multiple_bugs=True,
                phases=[Phase.generate, Phase.shrink],
            )
            @given(query_strategy(rule, reference, levels))
            def check(q: Query) -> None:
                ran[0] += 1
                expected = reference.answer(q)
                try:
                    got_rows = tgt.find(q.level, q.identifier())
                except TargetError as exc:
                    dev = Deviation(f"{rule}: target error", rule, q, [], [], error=str(exc))
                    seen.add(dev.category + "|" + str(q))
                    _raise(dev)
                got = {r.get(UNIQUE[q.level], "") for r in got_rows}
                if got == expected:
                    return
                recs = reference.records[q.level]
                strip = lambda u: {k: v for k, v in recs.get(u, {}).items() if not k.startswith("_") and k in q.keys}  # noqa: E731
                plain_first = lambda u: (_stored_kind(q, recs.get(u, {})) is not None, u)  # noqa: E731
                missing = sorted(expected - got, key=plain_first)
                extra = sorted(got - expected, key=plain_first)
                cat = _category(rule, q, missing + [u for u in extra if u in recs], reference)
                dev = Deviation(cat, rule, q, [(u, strip(u)) for u in missing], [(u, strip(u)) for u in extra])
                seen.add(cat + "|" + str(q))
                _raise(dev)

            try:
                with ps.seeded_generation():
                    check()
            except BaseException as exc:  # Hypothesis raises one error or a group
                found = _collect(exc)
                if not found:
                    raise
                for dev in found:
                    old = report.smallest.get(dev.category)
                    if old is None or len(str(dev.query)) < len(str(old.query)):
                        report.smallest[dev.category] = dev
            for s in seen:
                report.deviating[s.split("|", 1)[0]] += 1
            report.per_rule[rule] = ran[0]
            report.queries += ran[0]
            if progress:
                progress(rule, ran[0], len(seen))
    finally:
        tgt.close()
    return report


def _collect(exc: BaseException) -> list[Deviation]:
    if isinstance(exc, _Found):
        return [exc.deviation]
    if isinstance(exc, BaseExceptionGroup):
        out = []
        for e in exc.exceptions:
            got = _collect(e)
            if not got:
                return []
            out += got
        return out
    return []


def add_arguments(p) -> None:
    p.add_argument("target", help="dimse://AE@host:port, http(s)://host:port/dicomweb or an archive folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the data set and of the queries (default 0)")
    p.add_argument("--queries", type=int, default=200, help="queries in all, spread over the rules (default 200)")
    p.add_argument("--rules", default=",".join(RULES), help=f"comma-separated rules (default {','.join(RULES)})")
    p.add_argument("--levels", default=",".join(LEVELS), help="comma-separated levels (default STUDY,SERIES,IMAGE)")
    p.add_argument(
        "--pn-case",
        choices=("insensitive", "sensitive"),
        default="insensitive",
        help="how the target is expected to compare person names (default insensitive)",
    )
    p.add_argument("--calling-ae", default="PACSCORE-TEST", help="our AE title for DIMSE targets")
    p.add_argument("--patients", type=int, default=6, help="patients in the generated data set (default 6)")
    p.add_argument("--no-store", action="store_true", help="the target already holds the data set of this seed")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def main(args) -> int:
    import sys
    import warnings

    warnings.filterwarnings("ignore", module="pydicom")

    def progress(rule, n, bad):
        if not args.json:
            print(f"  {rule}: {n} queries, {bad} deviating", file=sys.stderr)

    report = run_conformance(
        args.target,
        seed=args.seed,
        queries=args.queries,
        rules=[r for r in args.rules.split(",") if r],
        levels=[lv.upper() for lv in args.levels.split(",") if lv],
        pn_case=args.pn_case,
        calling_ae=args.calling_ae,
        store=not args.no_store,
        patients=args.patients,
        progress=progress,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, ensure_ascii=False))
    else:
        print(report.table())
    return 0 if report.ok else 1
