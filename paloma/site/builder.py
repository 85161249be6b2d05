"""`paloma site build`: validated submissions in, a static site out (no server, no network, no CDN).

Pages: the leaderboard (index.html), Pareto charts, a page per submission, a page per source, a comparison
page for two models, and an about page. Every number is recomputed from the submissions' sums with
`paloma.metrics`; the templates, stylesheet and script ship inside the package (`paloma/_data/site`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from paloma import __version__
from paloma.errors import PalomaError
from paloma.intervals import MIN_EFFECTIVE_DOCUMENTS
from paloma.io import atomic_dir, check_not_overlapping, check_output_dir
from paloma.registry import Registry
from paloma.resources import data_dir
from paloma.site.entries import ALL, Entry, assign_ranks, comparable, make_entry, purpose_groups
from paloma.site.extras import render_extras
from paloma.site.pareto import Point, make_chart
from paloma.site.render import csv_cell, fmt_count, fmt_metric, make_environment, round_sig, safe_json
from paloma.site.stability import LEVEL, REPLICATES, leaderboard_stability
from paloma.submissions.validate import Loaded, ManifestFiles, RegistryCache, RegistryFiles, validate

GROUP_LABELS = {
    ALL: "All sources",
    "standard": "Standard",
    "fine-grained": "Fine-grained",
    "disparities": "Disparities",
    "fringe": "Fringe",
}
METRIC_LABELS = {"bpb": "bits per byte", "ppl": "perplexity"}
TOP_MODELS_PER_SOURCE = 10
PARAMETER_STEPS = [m * 10.0**e for e in range(7, 13) for m in (1, 3) if m * 10.0**e <= 1e12]  # 10M … 1T
SITE_MARKER = ".paloma-site"  # marks a folder as a site paloma built, which a later build may replace


@dataclass(frozen=True)
class BuildSummary:
    output: Path
    release: str
    split: str
    submissions: int
    pages: int
    bytes: int
    seconds: float


@dataclass
class SiteContext:
    """What every page knows about the site as a whole."""

    title: str
    release: str
    split: str
    demo: bool
    description: str
    built: str
    version: str
    submissions: int
    unverified: bool  # the release and split have no manifest: every entry's data is as submitted


def build(
    submissions_dir: str | Path,
    output: str | Path,
    release: str | None = None,
    split: str | None = None,
    registry_file: RegistryFiles = None,
    progress: bool = True,
    manifest_files: ManifestFiles = None,
) -> BuildSummary:
    """Validate the submissions, then render the site for one release and split into `output`.

    The output location is checked first (before any submission is read); any invalid submission stops the
    build with one line and leaves the previous site in place.
    """
    started = time.perf_counter()
    output = Path(output)
    if not Path(submissions_dir).exists():
        raise PalomaError(f"{submissions_dir}: no such file or folder")
    check_output_dir(output)
    check_not_overlapping(output, [submissions_dir])
    _check_replaceable(output)
    report = validate([submissions_dir], registry_file, progress=progress, manifest_files=manifest_files)
    if report.problems:
        shown = "; ".join(map(str, report.problems[:3]))
        more = (
            f" (and {len(report.problems) - 3} more: run `paloma submissions validate`)"
            if len(report.problems) > 3
            else ""
        )
        raise PalomaError(f"invalid submissions, nothing built: {shown}{more}")
    release = _release(report.submissions, release)
    registry = RegistryCache(registry_file).get(release)
    if registry is None:
        raise PalomaError(f"no registry for release {release!r} (pass --registry FILE)")
    split, chosen = _select(report.submissions, release, split, registry.split)
    entries = [_entry(x, registry) for x in tqdm(chosen, desc="aggregating", unit="submission", disable=not progress)]
    groups = list(purpose_groups(registry))
    assign_ranks(entries, groups)
    with atomic_dir(output, replace=True) as staging:
        pages = SiteWriter(staging, entries, registry, release, split, progress).write_all()
        (staging / SITE_MARKER).write_text(f"paloma {__version__} site of release {release}, split {split}\n")
    size = sum(p.stat().st_size for p in output.rglob("*") if p.is_file())
    return BuildSummary(output, release, split, len(entries), pages, size, time.perf_counter() - started)


def _entry(loaded: Loaded, registry: Registry) -> Entry:
    return _one_entry(loaded.submission.name, make_entry, loaded.submission, loaded.path, registry, loaded.recomputed,
                      preset=loaded.preset, decon_evidence=loaded.decon_evidence,
                      data_verified=loaded.data_verified)  # fmt: skip


def _one_entry(name: str, work, *args, **kwargs):
    """Run one submission's part of the build; a failure names the submission (one line, nothing built)."""
    try:
        return work(*args, **kwargs)
    except (ArithmeticError, ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as err:
        raise PalomaError(
            f"submission {name!r} cannot be rendered ({type(err).__name__}: {err}); nothing built"
        ) from None


def _release(loaded: list[Loaded], release: str | None) -> str:
    """One release (never mixed: a demo leaderboard must not mix with the real one)."""
    releases = {x.submission.benchmark.release for x in loaded}
    if release is None and len(releases) > 1:
        raise PalomaError(f"submissions of several releases ({', '.join(sorted(releases))}): choose one with --release")
    return release or next(iter(releases), "paloma")


def _select(loaded: list[Loaded], release: str, split: str | None, pinned: str | None) -> tuple[str, list[Loaded]]:
    """The split the release's registry pins (validation refused the other); for a release that pins none, the
    one split present or the one asked for. Never the most submitted: a crowd must not choose what is ranked."""
    of_release = [x for x in loaded if x.submission.benchmark.release == release]
    if pinned is not None and split not in (None, pinned):
        raise PalomaError(f"--split {split}: release {release!r} ranks the {pinned} split (its registry pins it)")
    splits = sorted({x.submission.benchmark.split for x in of_release})
    if pinned is None and split is None and len(splits) > 1:
        raise PalomaError(f"submissions of both splits of release {release!r}, which pins none: choose with --split")
    split = pinned or split or next(iter(splits), "test")
    # An empty leaderboard is a valid site (a new release has no submissions yet).
    return split, [x for x in of_release if x.submission.benchmark.split == split]


def _check_replaceable(output: Path) -> None:
    """Only an empty folder or a site paloma built (it holds SITE_MARKER) may be replaced."""
    if output.exists() and not (output.is_dir() and ((output / SITE_MARKER).is_file() or not any(output.iterdir()))):
        raise PalomaError(f"{output} exists and is not a paloma site: refusing to replace it")


class SiteWriter:
    """Renders every page of one release's site into a folder."""

    def __init__(
        self, out: Path, entries: list[Entry], registry: Registry, release: str, split: str, progress: bool
    ) -> None:
        self.out, self.entries, self.registry, self.progress = out, entries, registry, progress
        self.groups = purpose_groups(registry)
        self.public = list(registry.public())
        self.finals = [e for e in entries if e.submission.is_final and e.reference]
        self.env = make_environment()
        demo = release != "paloma"
        self.site = SiteContext(
            title="Paloma leaderboard" if not demo else f"{release} leaderboard (not Paloma)",
            release=release,
            split=split,
            demo=demo,
            description=registry.description,
            built=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            version=__version__,
            submissions=len(entries),
            unverified=any(not e.data_verified for e in entries),
        )
        self.pages = 0

    def write_all(self) -> int:
        _copy_assets(data_dir("site") / "assets", self.out / "assets")
        self.write_leaderboard()
        self.write_pareto()
        self.write_sources()
        self.write_compare()
        self.page("about.html", "about.html", title="About", description="How the leaderboard is made.")
        self.page(
            "maintainers.html",
            "maintainers.html",
            title="How entries are accepted",
            description="How submissions are accepted, checked, corrected, withdrawn and contested.",
            body=maintainers_page(),
        )
        for entry in tqdm(self.entries, desc="submission pages", unit="page", disable=not self.progress):
            _one_entry(entry.name, self.write_submission, entry)
        return self.pages

    def page(self, path: str, template: str, **context) -> None:
        root = "../" * path.count("/")
        html = self.env.get_template(template).render(site=self.site, root=root, page=path, **context)
        target = self.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
        self.pages += 1

    def write_data(self, path: str, text: str) -> None:
        target = self.out / "data" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    # -- the leaderboard -------------------------------------------------------------------------------------
    def leaderboard_data(self) -> dict:
        sources = [
            {"name": s.name, "label": s.paper_name, "group": s.group, "domains": len(s.domains)} for s in self.public
        ]
        stability = leaderboard_stability([e for e in self.entries if e.reference], self.groups)
        rows = [self.leaderboard_row(e, stability) for e in self.entries]
        return {
            "release": self.site.release,
            "split": self.site.split,
            "groups": [{"key": g, "label": GROUP_LABELS.get(g, g), "sources": m} for g, m in self.groups.items()],
            "sources": sources,
            "protocols": sorted({e.preset for e in self.entries if not e.reference}),
            "fractions": sorted(
                {e.submission.checkpoint.lr_schedule_fraction for e in self.entries if e.submission.checkpoint}
            ),
            "rows": rows,
            "stability": {"replicates": REPLICATES, "level": LEVEL, "resampled": "domains within sources"},
        }

    def leaderboard_row(self, entry: Entry, stability: dict[str, dict[str, list]] | None = None) -> dict:
        sub = entry.submission
        guidelines = sub.guidelines
        return {
            "name": sub.name,
            "label": sub.model.display_name,
            "org": sub.model.organisation,
            "params": sub.model.parameters,
            "nonemb": sub.model.non_embedding_parameters,
            "tokens": sub.model.training_tokens,
            "compute": entry.compute,
            "decon": guidelines.decontamination.met,
            "evidence": entry.decon_evidence,
            "verified": entry.data_verified,
            "declared": sub.model.parameters_source is None,
            "protocol": entry.preset,
            "order": guidelines.fixed_training_order,
            "vocab": guidelines.fixed_vocabulary,
            "run": sub.checkpoint.run if sub.checkpoint else None,
            "frac": sub.checkpoint.lr_schedule_fraction if sub.checkpoint else None,
            "final": sub.is_final,
            "bpb": [round_sig(entry.sources.get(s.name, {}).get("macro_bpb")) for s in self.public],
            "ppl": [round_sig(entry.sources.get(s.name, {}).get("macro_ppl")) for s in self.public],
            "suite": {g: {m: round_sig(entry.fit(m, g)) for m in ("bpb", "ppl")} for g in self.groups},
            # "<group>/<metric>" → [rank low, rank high, flip with the next model] in the default view
            "stab": {view: by_name[sub.name] for view, by_name in (stability or {}).items() if sub.name in by_name},
        }

    def write_leaderboard(self) -> None:
        data = self.leaderboard_data()
        self.write_data("leaderboard.json", safe_json(data))
        self.write_data("leaderboard.csv", self.leaderboard_csv())
        best = min(self.finals, key=lambda e: _nan_last(e.fit("bpb")), default=None)
        description = f"{len(self.entries)} models ranked by fit on {len(self.public)} sources of {self.site.release}"
        if best is not None:
            description += (
                f"; best bits per byte: {best.submission.model.display_name} ({fmt_metric(best.fit('bpb'), 'bpb')})"
            )
        self.page(
            "index.html",
            "leaderboard.html",
            title="Leaderboard",
            description=description,
            data=data,
            groups=[(g, GROUP_LABELS.get(g, g)) for g in self.groups],
            param_steps=[(int(v), fmt_count(v)) for v in PARAMETER_STEPS],
        )

    def leaderboard_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = ["name", "display_name", "organisation", "parameters", "non_embedding_parameters"]
        header += ["training_tokens", "decontaminated", "decontamination_evidence", "fixed_training_order"]
        header += ["fixed_vocabulary", "protocol", "run", "lr_schedule_fraction"]
        header += [f"suite_{g}_macro_{m}" for g in self.groups for m in ("bpb", "ppl")]
        writer.writerow(map(csv_cell, header + [f"{s.name}_macro_{m}" for s in self.public for m in ("bpb", "ppl")]))
        for e in self.entries:
            sub = e.submission
            writer.writerow(
                map(
                    csv_cell,
                    [sub.name, sub.model.display_name, sub.model.organisation, sub.model.parameters]
                    + [sub.model.non_embedding_parameters, sub.model.training_tokens]
                    + [sub.guidelines.decontamination.met, e.decon_evidence, sub.guidelines.fixed_training_order]
                    + [sub.guidelines.fixed_vocabulary, e.preset, sub.checkpoint.run if sub.checkpoint else ""]
                    + [sub.checkpoint.lr_schedule_fraction if sub.checkpoint else ""]
                    + [_csv_num(e.fit(m, g)) for g in self.groups for m in ("bpb", "ppl")]
                    + [
                        _csv_num(e.sources.get(s.name, {}).get(f"macro_{m}"))
                        for s in self.public
                        for m in ("bpb", "ppl")
                    ],
                )
            )
        return buffer.getvalue()

    # -- Pareto charts ---------------------------------------------------------------------------------------
    def write_pareto(self) -> None:
        views = []
        for key, label, keep in (
            ("all", "All final models", lambda e: True),
            ("guidelines", "Meeting all guidelines", _meets_all),
        ):
            chosen = [e for e in self.finals if keep(e)]
            charts = [
                (axis, self.chart(chosen, cost, axis_label, fmt))
                for axis, cost, axis_label, fmt in (
                    ("parameters", lambda e: e.submission.model.parameters, "Parameters (log scale)", fmt_count),
                    ("tokens", lambda e: e.submission.model.training_tokens, "Training tokens (log scale)", fmt_count),
                    ("compute", lambda e: e.compute, "Compute 6·N·D, FLOPs (log scale)", _fmt_flops),
                )
            ]
            views.append({"key": key, "label": label, "count": len(chosen), "charts": charts})
        self.page(
            "pareto.html",
            "pareto.html",
            title="Pareto frontiers",
            description="Fit (bits per byte) against parameters, training tokens and compute: who is on the frontier.",
            views=views,
        )

    def chart(self, entries: list[Entry], cost, x_label: str, fmt_x):
        points = [
            Point(
                cost=float(cost(e)),
                fit=e.fit("bpb"),
                label=e.submission.model.display_name,
                href=f"models/{e.name}.html",
                detail=f"{fmt_metric(e.fit('bpb'), 'bpb')} bits per byte · {fmt_x(cost(e))}",
                cost_label=fmt_x(cost(e)),
                fit_label=fmt_metric(e.fit("bpb"), "bpb"),
            )
            for e in entries
        ]
        return make_chart(points, x_label, "Bits per byte (macro over sources)", fmt_x, lambda v: f"{v:.3g}", True)

    # -- sources ---------------------------------------------------------------------------------------------
    def write_sources(self) -> None:
        summaries = []
        for source in self.public:
            tables = [self.source_table(source, m) for m in ("bpb", "ppl")]
            tables = [t for t in tables if t is not None]
            self.page(
                f"sources/{source.name}.html",
                "source.html",
                title=f"{source.paper_name}",
                description=f"{source.paper_name}: {len(source.domains)} domain(s) of {self.site.release}, "
                f"each model's fit per domain and the best model per domain.",
                source=source,
                tables=tables,
                group_label=GROUP_LABELS.get(source.group, source.group),
            )
            best = tables[0]["ranked"][0] if tables and tables[0]["ranked"] else None
            summaries.append({"source": source, "best": best, "group": GROUP_LABELS.get(source.group, source.group)})
        self.page(
            "sources.html",
            "sources.html",
            title="Sources",
            description=f"The {len(self.public)} public sources of {self.site.release} and the best model on each.",
            summaries=summaries,
        )

    def source_table(self, source, metric: str) -> dict | None:
        """Domains × models, for the best few models; the best model per domain is chosen among all of them."""
        pool = [e for e in self.finals if comparable(e, metric) and source.name in e.sources]
        if not pool:
            return None
        key = f"macro_{metric}"
        ranked = sorted(pool, key=lambda e: _nan_last(e.sources[source.name][key]))
        shown = ranked[:TOP_MODELS_PER_SOURCE]
        domains = list(ranked[0].sources[source.name]["domains"])
        rows = []
        for domain in domains:
            values = [(e.sources[source.name]["domains"].get(domain, {}).get(metric, math.nan), e) for e in pool]
            finite = [(v, e) for v, e in values if math.isfinite(v)]
            best_value = min((v for v, _ in finite), default=math.nan)
            winners = [e for v, e in finite if v == best_value]
            cells = [
                (e.sources[source.name]["domains"].get(domain, {}).get(metric, math.nan), e in winners) for e in shown
            ]
            rows.append({"domain": domain, "cells": cells, "best": winners, "best_value": best_value})
        macro = [(e.sources[source.name][key], e) for e in shown]
        return {
            "metric": metric,
            "label": METRIC_LABELS[metric],
            "ranked": ranked,
            "shown": shown,
            "rows": rows,
            "macro": macro,
        }

    # -- comparison ------------------------------------------------------------------------------------------
    def write_compare(self) -> None:
        domains = [(s.name, d) for s in self.public for d in s.domains]
        models = []
        for e in self.entries:
            per_domain = {
                m: [round_sig(e.sources.get(s, {}).get("domains", {}).get(d, {}).get(m)) for s, d in domains]
                for m in ("bpb", "ppl")
            }
            intervals = {f"{m}_ci": [_interval(e, s, d, m) for s, d in domains] for m in ("bpb", "ppl")}
            payload = {"name": e.name, **per_domain, **intervals}
            self.write_data(f"models/{e.name}.js", f"PALOMA.registerModel({safe_json(payload)});\n")
            models.append(
                {
                    "name": e.name,
                    "label": e.submission.model.display_name,
                    "org": e.submission.model.organisation,
                    "vocab": e.submission.guidelines.fixed_vocabulary,
                    "final": e.submission.is_final,
                    "protocol": e.preset,
                    "bpb": round_sig(e.fit("bpb")),
                    "ppl": round_sig(e.fit("ppl")),
                }
            )
        models.sort(key=lambda m: (not m["final"], _nan_last(m["bpb"])))
        labels = {s.name: s.paper_name for s in self.public}
        self.page(
            "compare.html",
            "compare.html",
            title="Compare two models",
            description="Per-domain differences between two models: who wins where, most improved and regressed.",
            compare={
                "domains": [[labels[s], d] for s, d in domains],
                "models": models,
                "min_documents": MIN_EFFECTIVE_DOCUMENTS,
            },
        )

    # -- one page per submission -----------------------------------------------------------------------------
    def write_submission(self, entry: Entry) -> None:
        sub = entry.submission
        name = sub.name
        self.write_data(f"submissions/{name}.json", safe_json(sub.to_json_dict()))
        self.write_data(f"submissions/{name}.csv", _domains_csv(entry))
        decon = sub.guidelines.decontamination
        report_href = None
        if decon.met and decon.report:
            if decon.report.startswith(("http://", "https://")):
                report_href = decon.report
            else:  # validation checked it: a plain file inside the submission's folder, a real `paloma decon` report
                shutil.copyfile(
                    entry.path.parent / decon.report, self.out / "data" / "submissions" / f"{name}-decon-report.json"
                )
                report_href = f"../data/submissions/{name}-decon-report.json"
        siblings = []
        if sub.checkpoint:
            siblings = sorted(
                (
                    e
                    for e in self.entries
                    if e.submission.checkpoint and e.submission.checkpoint.run == sub.checkpoint.run
                ),
                key=lambda e: e.submission.model.training_tokens,
            )
        sources = [(self.registry.get(s), m) for s, m in entry.sources.items()]
        self.page(
            f"models/{name}.html",
            "submission.html",
            title=sub.model.display_name,
            description=f"{sub.model.display_name} by {sub.model.organisation}: {fmt_count(sub.model.parameters)} "
            f"parameters, {fmt_count(sub.model.training_tokens)} training tokens; "
            f"{fmt_metric(entry.fit('bpb'), 'bpb')} bits per byte on {self.site.release} ({self.site.split}).",
            entry=entry,
            sub=sub,
            sources=sources,
            groups=[(g, GROUP_LABELS.get(g, g)) for g in self.groups],
            report_href=report_href,
            siblings=siblings,
            extras=render_extras(sub, self.env),
            finals=len(self.finals),
        )


def maintainers_page() -> str:
    """docs/maintainers.md (shipped in the wheel) as HTML: the same process the repository documents. Raw HTML in
    the Markdown is escaped, not passed through."""
    from markdown_it import MarkdownIt

    text = (data_dir("docs") / "maintainers.md").read_text(encoding="utf-8")
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def _interval(entry: Entry, source: str, domain: str, metric: str) -> list[float] | None:
    """The submission's own bootstrap interval of one domain, under the one interval policy (`paloma.intervals`:
    none below MIN_EFFECTIVE_DOCUMENTS effective documents, never more than a domain's document count)."""
    sums = entry.submission.results.get(source, {}).get(domain)
    if sums is None or sums.ci is None or sums.documents < MIN_EFFECTIVE_DOCUMENTS:
        return None
    bounds = getattr(sums.ci, metric)
    return [round_sig(bounds[0]), round_sig(bounds[1])] if bounds else None


def _fmt_flops(value: float) -> str:
    """Compute in scientific notation, as scaling papers write it: 3e21, 1.5e22."""
    mantissa, _, exponent = f"{value:.1e}".partition("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _meets_all(entry: Entry) -> bool:
    g = entry.submission.guidelines
    return g.decontamination.met and g.fixed_training_order and g.fixed_vocabulary


def _nan_last(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else math.inf


def _csv_num(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(value)


def _domains_csv(entry: Entry) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["source", "domain", "documents", "tokens", "bytes", "nll_sum", "ppl", "bpb", "ppl_ci_low", "ppl_ci_high"]
    )
    for source, domains in entry.submission.results.items():
        for domain, sums in domains.items():
            m = entry.sources[source]["domains"][domain]
            ci = sums.ci.ppl if sums.ci and sums.ci.ppl else ("", "")
            counts = [sums.documents, sums.tokens, sums.bytes, repr(sums.nll_sum)]
            row = [source, domain, *counts, _csv_num(m["ppl"]), _csv_num(m["bpb"]), *ci]
            writer.writerow(map(csv_cell, row))
    return buffer.getvalue()


def _copy_assets(source: Path, target: Path) -> None:
    """Copy the stylesheet and script as new files, so they get the umask's modes (0644/0755), not the package's."""
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
