"""Results of a run: aggregates of per-document records plus the run's metadata, as files and a table.

`results.json` (see docs/formats.md), `domains.csv` (one tidy row per domain) and a readable table on
stdout. Building results is a pure function of the records and the metadata, so `paloma aggregate`
can redo it for a finished run without the model.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

from paloma.intervals import run_intervals
from paloma.io import atomic_write, write_json
from paloma.metrics import aggregate, sums_and_columns
from paloma.registry import Registry
from paloma.table import format_table

SCHEMA = "paloma-results/1"
CSV_COLUMNS = (
    "source",
    "domain",
    "documents",
    "empty_documents",
    "tokens",
    "bytes",
    "chars",
    "words",
    "nll_sum",
    "ppl",
    "bpb",
    "byte_ppl",
    "char_ppl",
    "word_ppl",
)


def build_results(
    records: Iterable[Mapping], registry: Registry | None, meta: dict, bootstrap: int = 0, bootstrap_seed: int = 0
) -> dict:
    """Aggregates (and, with `bootstrap` replicates, intervals) of the records, with `meta` merged in.

    Intervals follow `paloma.intervals`' policy, the same as `paloma compare`: a domain with fewer than
    MIN_EFFECTIVE_DOCUMENTS effective documents, and a macro value without enough parts with intervals, get
    `"ci": null`. `records` may be a stream (e.g. `paloma.eval.records.iter_unique_records`): it is read once.
    """
    sums, columns = sums_and_columns(records, with_columns=bootstrap > 0)
    aggregates = aggregate(sums, registry)
    if bootstrap:
        _attach_intervals(aggregates, run_intervals(columns, bootstrap, bootstrap_seed))
    evaluated = set(aggregates["sources"])
    selected = (meta.get("data") or {}).get("sources") or []
    missing_sources = [
        s.name
        for s in (registry.sources if registry else ())
        if s.name not in evaluated and (not selected or s.name in selected)
    ]
    # issue 19 (suite coverage): the suite aggregate says whether it covers the registry's whole public suite
    aggregates["suite"]["whole"] = covers_whole_suite(aggregates, registry)
    return {
        "schema": SCHEMA,
        **aggregates,
        "missing_sources": missing_sources,
        "unknown_sources": sorted(s for s, m in aggregates["sources"].items() if not m["in_registry"]),
        **meta,
    }


def covers_whole_suite(aggregates: Mapping, registry: Registry | None) -> bool:
    """Whether every public source of the registry was evaluated with all its domains (no part chosen by
    --sources or --domains, none missing from the data): only then is the suite aggregate the suite's."""
    if registry is None:
        return False
    for source in registry.public():
        entry = aggregates["sources"].get(source.name)
        if entry is None or entry["missing_domains"]:
            return False
    return True


def _attach_intervals(aggregates: dict, intervals: dict) -> None:
    for (source, domain), ci in intervals["domains"].items():
        aggregates["sources"][source]["domains"][domain]["ci"] = ci
    for source in aggregates["sources"]:
        aggregates["sources"][source]["ci"] = intervals["sources"].get(source)
    aggregates["suite"]["ci"] = intervals["suite"]


def domains_csv(results: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for source, entry in results["sources"].items():
        for domain, m in entry["domains"].items():
            writer.writerow([source, domain, *(m[c] for c in CSV_COLUMNS[2:])])
    return buffer.getvalue()


def write_results(output: Path, results: dict) -> None:
    """results.json and domains.csv, each written atomically."""
    write_json(output / "results.json", results)
    with atomic_write(output / "domains.csv") as handle:
        handle.write(domains_csv(results))


def format_results(results: dict) -> str:
    """One row per source (macro and micro ppl, bpb, sizes), then the suite aggregates."""
    rows = [
        [
            source,
            len(m["domains"]),
            m["documents"],
            m["tokens"],
            m["macro_ppl"],
            m["micro_ppl"],
            m["macro_bpb"],
            "" if m["in_registry"] else "not in registry",
        ]
        for source, m in results["sources"].items()
    ]
    table = format_table(
        ["source", "domains", "documents", "tokens", "macro ppl", "micro ppl", "macro bpb", "note"], rows
    )
    suite = results["suite"]
    lines = [
        table,
        "",
        f"suite: macro ppl {suite['macro_ppl']:.4f} over {suite['sources']} sources, "
        f"macro bpb {suite['macro_bpb']:.4f}, ordinary ppl (no fringe, no code) {suite['ordinary_ppl']:.4f}"
        + ("" if suite.get("whole", True) else " (a part of the suite, not the whole: sources or domains missing)"),
    ]
    missing = [f"{s} ({len(m['missing_domains'])})" for s, m in results["sources"].items() if m["missing_domains"]]
    if missing:
        lines.append("registry domains missing from the data: " + ", ".join(missing))
    if results.get("missing_sources"):
        lines.append("registry sources not evaluated: " + ", ".join(results["missing_sources"]))
    unknown = [f"{s}: {', '.join(m['unknown_domains'])}" for s, m in results["sources"].items() if m["unknown_domains"]]
    if unknown:
        lines.append("domains not in the registry (evaluated, flagged): " + "; ".join(unknown))
    return "\n".join(lines)


class Results(dict):
    """Results as plain data (the structure of results.json), plus a flat view for loggers."""

    def scalars(self, prefix: str = "paloma", domains: bool = False) -> dict[str, float]:
        """`{"<prefix>/<source>/bpb": …, "<prefix>/<source>/ppl": …, "<prefix>/suite/bpb": …}`: per source its
        macro bits per byte and perplexity (means over its domains), the suite's means over sources; with
        `domains`, also `<prefix>/<source>/<domain>/bpb` and `/ppl`. Keys use `/`, as W&B and TensorBoard group."""
        out: dict[str, float] = {}
        for source, entry in self["sources"].items():
            out[f"{prefix}/{source}/bpb"] = entry["macro_bpb"]
            out[f"{prefix}/{source}/ppl"] = entry["macro_ppl"]
            for domain, metrics in entry["domains"].items() if domains else ():
                out[f"{prefix}/{source}/{domain}/bpb"] = metrics["bpb"]
                out[f"{prefix}/{source}/{domain}/ppl"] = metrics["ppl"]
        out[f"{prefix}/suite/bpb"] = self["suite"]["macro_bpb"]
        out[f"{prefix}/suite/ppl"] = self["suite"]["macro_ppl"]
        return out
