"""`paloma demo`: the whole benchmark, offline, on one CPU: data, models, evaluation, submissions, site.

The demo runs each part of paloma the way a user would on the real benchmark, in order:

1. suite      build the demo suite (paloma.demo.suite): evaluation data in Paloma's layout, a training part,
              a tokenizer;
2. decon      index the evaluation paragraphs (`paloma decon`'s library) and remove training documents that
              contain one; the documents the suite planted on purpose must be among those removed;
3. train      train a ladder of baselines (`paloma_baselines.train`) that varies model size and training tokens;
4. eval       evaluate each model on the suite (`paloma.eval.evaluate`), per domain;
5. ladder     fit L(N, D) = E + A/N^α + B/D^β over the ladder (`paloma.analysis.ladder`);
6. submit     turn each result into a submission and validate them (`paloma.submissions`);
7. site       build the leaderboard for release "paloma-demo" (`paloma.site`);
and prints a summary table. Every stage writes its outputs atomically and is skipped when they exist, so a
rerun (or a run after an interruption) reuses finished work. The suite and decontamination are shared by
`--quick` and full runs; models and everything after them live in a folder per mode.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from paloma.demo.suite import RELEASE, Suite, SuiteConfig, build_suite, load_suite
from paloma.errors import PalomaError
from paloma.io import iter_jsonl, write_json
from paloma.table import format_table

EVAL_SPLIT = "test"  # the split the demo evaluates, submits and ranks
EVAL_MAX_LENGTH = SuiteConfig().max_length  # the release's window length L, also the ladder's training length


@dataclass(frozen=True)
class Rung:
    """One model of the ladder: a size and a training length."""

    d_model: int
    n_layers: int
    n_heads: int
    steps: int

    @property
    def name(self) -> str:
        return f"d{self.d_model}-l{self.n_layers}-s{self.steps}"


@dataclass(frozen=True)
class Ladder:
    """The ladder of a mode: every size trained for every step count (so N and D both vary)."""

    mode: str
    sizes: tuple[tuple[int, int, int], ...]  # (d_model, n_layers, n_heads)
    steps: tuple[int, ...]
    base_config: str = "ladder-xs"  # baselines config whose recipe every rung shares
    seq_len: int = EVAL_MAX_LENGTH
    batch_size: int = 16
    fit_levels: tuple[str, ...] = ("suite", "source", "domain")  # targets of the scaling-law fit

    @property
    def rungs(self) -> list[Rung]:
        return [Rung(d, n, h, s) for s in self.steps for (d, n, h) in self.sizes]


# Three sizes and three token budgets: the fewest that determine all five parameters of the law.
QUICK = Ladder("quick", sizes=((16, 1, 2), (32, 2, 2), (64, 2, 2)), steps=(20, 30, 40), fit_levels=("suite", "source"))
FULL = Ladder("full", sizes=QUICK.sizes, steps=(100, 150, 200))


@dataclass
class Demo:
    """Where a demo run writes, and how it reports."""

    root: Path
    ladder: Ladder
    progress: bool = True
    echo: Callable[[str], None] = print
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> wall and CPU seconds

    @property
    def mode_dir(self) -> Path:
        return self.root / self.ladder.mode

    def stage(self, number: int, name: str, detail: str) -> tuple[str, float, float]:
        """Announce a stage; returns what `done` needs to report its wall and CPU time."""
        self.echo(f"[{number}/7] {name}: {detail}")
        return name, time.perf_counter(), time.process_time()

    def done(self, started: tuple[str, float, float], what: str) -> None:
        name, wall, cpu = started
        self.timings[name] = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
        self.echo(f"      {what} ({self.timings[name]['wall']:.1f}s)")


class TrainingStopped(KeyboardInterrupt):
    """A rung's training was stopped by a signal and checkpointed; the CLI reports an interruption (exit 130)
    and the same command resumes, where `os.replace(None, …)` used to end the demo in a traceback."""


# --- stages -----------------------------------------------------------------------------------------


def stage_suite(demo: Demo) -> Suite:
    started = demo.stage(1, "suite", f"demo suite in {demo.root / 'suite'}")
    reused = load_suite(demo.root) is not None
    suite = build_suite(demo.root, progress=demo.progress)
    domains = sum(len(d) for d in suite.manifest["domains"].values())
    demo.done(
        started,
        f"{'reused' if reused else 'built'}: {len(suite.manifest['domains'])} sources, {domains} domains, "
        f"{suite.manifest['config']['tokens_per_split']} tokens per domain and split; "
        f"{suite.manifest['train']['documents']} training documents; revision {suite.revision}",
    )
    return suite


def check_mode_revision(demo: Demo, suite: Suite) -> None:
    """Models and results in the mode folder must come from this suite; a rebuilt suite (another Python or
    other dependency versions) would otherwise be mixed with models trained on the old one."""
    marker = demo.mode_dir / "suite-revision.txt"
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() != suite.revision:
        raise PalomaError(
            f"{demo.mode_dir} holds models of suite revision {marker.read_text(encoding='utf-8').strip()}, "
            f"but the suite is now {suite.revision}: remove {demo.mode_dir} (or use another --output) and rerun"
        )
    demo.mode_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(suite.revision + "\n", encoding="utf-8")


def prose_sources(suite: Suite) -> list[str]:
    """The sources decontamination indexes: all but the code source (code is left out, as in Paloma)."""
    registry = json.loads(suite.registry_path.read_text(encoding="utf-8"))
    return [s["name"] for s in registry["sources"] if set(s["code_domains"]) != set(s["domains"])]


def stage_decon(demo: Demo, suite: Suite) -> dict:
    """`paloma decon index` over the suite's prose, `paloma decon filter` over the training part; then check
    that every planted leak was among the removed documents."""
    from paloma.decon import build_index
    from paloma.decon.filter import REPORT_NAME, filter_files

    folder = demo.root / "decon"
    summary_path = folder / "demo-check.json"
    started = demo.stage(2, "decon", "index evaluation paragraphs, remove contaminated training documents")
    if summary_path.is_file():
        check = json.loads(summary_path.read_text(encoding="utf-8"))
        if check.get("suite_revision") == suite.revision and (demo.root / check["clean_corpus"]).is_file():
            demo.done(started, f"reused: {_decon_line(check)}")
            return check
    index = build_index(suite.suite_dir, sources=prose_sources(suite), progress=demo.progress)
    index.save(folder / "index.decon")
    train_file = suite.train_dir / suite.manifest["train"]["file"]
    # the index is rebuilt on every run, so an earlier (or killed) filter run in the folder is replaced
    report = filter_files(index, [train_file], folder / "filtered", progress=demo.progress, overwrite=True)
    removed = [r["id"] for _, r in iter_jsonl(folder / "filtered" / "removed" / train_file.name)]
    planted = sorted(p["train_id"] for p in suite.manifest["planted_contamination"])
    missed = sorted(set(planted) - set(removed))
    if missed:
        raise PalomaError(f"decontamination missed planted training documents: {', '.join(missed)}")
    check = {
        "suite_revision": suite.revision,
        "index_checksum": index.checksum,
        "report": str((folder / "filtered" / REPORT_NAME).relative_to(demo.root)),
        "clean_corpus": str((folder / "filtered" / "kept" / train_file.name).relative_to(demo.root)),
        "documents_read": report["totals"]["documents"],
        "documents_removed": report["totals"]["removed_documents"],
        "removed_fraction": report["totals"]["removal_rate_documents"],
        "planted": planted,
        "planted_removed": sorted(set(planted) & set(removed)),
        "removed_ids": removed,
    }
    write_json(summary_path, check)
    demo.done(started, _decon_line(check))
    return check


def _decon_line(check: dict) -> str:
    natural = check["documents_removed"] - len(check["planted_removed"])
    return (
        f"removed {check['documents_removed']} of {check['documents_read']} training documents: all "
        f"{len(check['planted'])} planted leaks, and {natural} that share a paragraph with the evaluation "
        f"text by themselves (licences and documentation repeat paragraphs); report {check['report']}"
    )


def stage_train(demo: Demo, suite: Suite, decon: dict) -> dict[str, Path]:
    """Train every rung (or reuse its exported model); returns rung name → exported model folder."""
    ladder = demo.ladder
    rungs = ladder.rungs
    started = demo.stage(3, "train", f"{len(rungs)} baselines ({ladder.mode} ladder): sizes x token budgets")
    from paloma_baselines.tokens import tokenize
    from paloma_baselines.train import train

    # Tokenized once (training never tokenizes): every rung reads the same token files.
    token_files = tokenize(
        ladder.base_config,
        demo.root / "cache" / "train-tokens" / suite.revision,
        overrides={"model": {"vocab_size": suite.manifest["config"]["vocab_size"]}},
        corpus=str(demo.root / decon["clean_corpus"]),
        tokenizer=str(suite.tokenizer_dir),
        quiet=True,
    ).output_dir
    models = {}
    for i, rung in enumerate(rungs, start=1):
        # The exported model gets the rung's name as its folder: runs are labelled by it (ladder, site).
        export = demo.mode_dir / "models" / rung.name
        tokens = rung.steps * ladder.batch_size * ladder.seq_len
        if (export / "paloma_training.json").is_file():
            demo.echo(f"      {i}/{len(rungs)} {rung.name}: reused")
            models[rung.name] = export
            continue
        t0 = time.perf_counter()
        result = train(
            ladder.base_config,
            output_dir=demo.mode_dir / "training" / rung.name,  # checkpoints and log.jsonl
            tokens=str(token_files),
            tokenizer=str(suite.tokenizer_dir),
            max_steps=rung.steps,
            overrides=_rung_overrides(demo, rung, suite),
            quiet=True,
        )
        if result.export_dir is None:  # stopped by SIGINT/SIGTERM: train said how to resume, nothing to export
            raise TrainingStopped
        export.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(export, ignore_errors=True)  # an export left by an interrupted earlier run
        os.replace(result.export_dir, export)
        demo.echo(
            f"      {i}/{len(rungs)} {rung.name}: {result.metrics['non_embedding_parameters']:,} non-embedding "
            f"parameters, {tokens:,} tokens, final loss {result.final_loss:.3f} ({time.perf_counter() - t0:.1f}s)"
        )
        models[rung.name] = export
    demo.done(started, f"{len(models)} models in {demo.mode_dir / 'models'}")
    return models


def _rung_overrides(demo: Demo, rung: Rung, suite: Suite) -> dict:
    ladder = demo.ladder
    return {
        "model": {
            "d_model": rung.d_model,
            "n_layers": rung.n_layers,
            "n_heads": rung.n_heads,
            "mlp_hidden": 4 * rung.d_model,
            "max_seq_len": ladder.seq_len,
            "vocab_size": suite.manifest["config"]["vocab_size"],
        },
        "schedule": {"total_steps": 2 * rung.steps},  # laid out for twice the run, as the baselines are
        "train": {
            "seq_len": ladder.seq_len,
            "global_batch_size": ladder.batch_size,
            "micro_batch_size": ladder.batch_size,
            "checkpoint_interval": rung.steps,
            "keep_checkpoints": 1,
            "log_interval": max(1, rung.steps // 5),
        },
    }


def stage_eval(demo: Demo, suite: Suite, models: dict[str, Path]) -> dict[str, Path]:
    """Evaluate every model on the suite's test split; returns rung name → eval output folder."""
    from paloma.eval.data import DataSpec
    from paloma.eval.evaluate import EvalConfig, evaluate

    started = demo.stage(4, "eval", f"{len(models)} models on {suite.suite_dir} ({EVAL_SPLIT} split), per domain")
    runs = {}
    for i, (name, model_dir) in enumerate(models.items(), start=1):
        output = demo.mode_dir / "runs" / name
        runs[name] = output
        if (output / "results.json").is_file():
            demo.echo(f"      {i}/{len(models)} {name}: reused")
            continue
        config = EvalConfig(
            model=str(model_dir),
            data=DataSpec(path=str(suite.suite_dir), split=EVAL_SPLIT),
            output=output,
            max_length=EVAL_MAX_LENGTH,
            device="cpu",
            registry=str(suite.registry_path),
            cache_dir=demo.root / "cache" / "eval-tokens",
            resume=(output / "run.json").is_file(),
            progress=demo.progress,
            command=["paloma", "demo", *([] if demo.ladder.mode == "full" else ["--quick"])],
        )
        results = evaluate(config)
        suite_metrics = results["suite"]
        demo.echo(
            f"      {i}/{len(models)} {name}: macro ppl {suite_metrics['macro_ppl']:.1f}, "
            f"{results['speed']['tokens_per_second']:,.0f} tokens/s"
        )
    demo.done(started, f"results in {demo.mode_dir / 'runs'}")
    return runs


def stage_ladder(demo: Demo, suite: Suite, runs: dict[str, Path]) -> dict:
    """Fit the scaling law to every target over the ladder and write fits.json, fits.csv, ladder.svg."""
    from paloma.analysis.ladder import fit_runs
    from paloma.analysis.ladder.chart import write_ladder_outputs
    from paloma.analysis.runs import load_run
    from paloma.registry import load_registry_file

    folder = demo.mode_dir / "ladder"
    started = demo.stage(5, "ladder", f"fit L(N, D) over {len(runs)} runs")
    inputs = [r / "results.json" for r in runs.values()]
    if (folder / "fits.json").is_file() and _newer_than(folder / "fits.json", inputs):
        ladder = json.loads((folder / "fits.json").read_text(encoding="utf-8"))
        demo.done(started, f"reused: {folder / 'ladder.svg'}")
        return ladder
    ladder = fit_runs(
        [load_run(path) for path in runs.values()],
        registry=load_registry_file(suite.registry_path),
        levels=demo.ladder.fit_levels,
    )
    write_ladder_outputs(ladder, folder)
    suite_fit = next(f for f in ladder["fits"] if f["target"] == "suite")
    law = suite_fit["law"]
    demo.done(
        started,
        f"suite: L = {law['E']:.3g} + {law['A']:.3g}/N^{law['alpha']:.3g} + {law['B']:.3g}/D^{law['beta']:.3g}; "
        f"{len(ladder['fits'])} targets fitted; {folder / 'ladder.svg'}"
        + "".join(f"; warning: {w}" for w in suite_fit["warnings"]),
    )
    return ladder


def _newer_than(path: Path, inputs: list[Path]) -> bool:
    return all(p.is_file() and p.stat().st_mtime_ns <= path.stat().st_mtime_ns for p in inputs)


def stage_submit(demo: Demo, suite: Suite, decon: dict, runs: dict[str, Path], ladder: dict) -> Path:
    """`paloma submit` for every run (the ladder's fits ride along), then `paloma submissions validate`."""
    from paloma.analysis.ladder.extension import KEY, ladder_extra
    from paloma.submissions.submit import submit
    from paloma.submissions.validate import validate

    folder = demo.mode_dir / "submissions"
    started = demo.stage(6, "submit", f"{len(runs)} submissions to {folder}, then validate them")
    write_release_manifest(suite)  # validation checks each submission against it, not only against the others
    extra = {KEY: ladder_extra(ladder)}
    for name, run in runs.items():
        target = folder / f"demo-{name}" / "submission.json"
        if target.is_file() and _newer_than(target, [run / "results.json", demo.mode_dir / "ladder" / "fits.json"]):
            continue
        training_tokens = json.loads((run / "results.json").read_text(encoding="utf-8"))["model"]["training_tokens"]
        meta = submission_metadata(demo, suite, decon, name, training_tokens, extra)
        submit(run, meta, folder, suite.registry_path, overwrite=True)
    report = validate([folder], suite.registry_path, progress=False)
    if report.problems:
        raise PalomaError(f"demo submissions are invalid: {'; '.join(map(str, report.problems[:3]))}")
    demo.done(started, f"{len(report.submissions)} submissions valid for release {RELEASE}")
    return folder


def write_release_manifest(suite: Suite) -> Path:
    """`paloma release manifest` of the demo's release and split, beside its registry (where validation looks)."""
    from paloma.registry import load_registry_file
    from paloma.submissions.manifest import build_manifest, manifest_name

    path = suite.registry_path.with_name(manifest_name(RELEASE, EVAL_SPLIT))
    registry = load_registry_file(suite.registry_path)
    write_json(path, build_manifest(suite.suite_dir, EVAL_SPLIT, registry, str(suite.tokenizer_dir), progress=False))
    return path


def submission_metadata(demo: Demo, suite: Suite, decon: dict, name: str, training_tokens: int, extra: dict) -> dict:
    """What `paloma submit --metadata FILE` would hold for one demo model."""
    rung = next(r for r in demo.ladder.rungs if r.name == name)
    return {
        "name": f"demo-{name}",
        "display_name": f"demo {name}",
        "organisation": "paloma demo",
        "model_id": f"paloma-demo/{name}",
        "training_tokens": training_tokens,
        "tokenizer": f"paloma demo BPE ({suite.manifest['config']['vocab_size']:,} tokens)",
        "training_data": (
            f"the paloma demo training part (suite revision {suite.revision}), decontaminated with paloma decon"
        ),
        "description": (
            f"A {demo.ladder.mode} demo ladder rung: d_model {rung.d_model}, {rung.n_layers} layer(s), "
            f"{rung.steps} steps of {demo.ladder.batch_size} x {demo.ladder.seq_len} tokens, recipe "
            f"{demo.ladder.base_config} (baselines/). Trained and evaluated by `paloma demo` on this machine."
        ),
        "decontamination": {
            "report": str(demo.root / decon["report"]),
            "index_checksum": decon["index_checksum"],
            "removed_fraction": decon["removed_fraction"],
        },
        "fixed_training_order": True,  # one seeded global order, independent of the process count
        "fixed_vocabulary": True,  # every demo model uses the demo tokenizer
        "extra": extra,
    }


def stage_site(demo: Demo, suite: Suite, submissions: Path) -> Path:
    """`paloma site build --release paloma-demo` (model pages show the ladder charts the submissions carry)."""
    from paloma.site import build

    output = demo.mode_dir / "site"
    started = demo.stage(7, "site", f"leaderboard of release {RELEASE} in {output}")
    summary = build(submissions, output, RELEASE, EVAL_SPLIT, suite.registry_path, progress=demo.progress)
    demo.done(started, f"{summary.pages} pages for {summary.submissions} submissions")
    return output / "index.html"


# --- summary ----------------------------------------------------------------------------------------


def larger_wins(results: dict[str, dict], ladder: Ladder) -> dict:
    """For each token budget and each pair of neighbouring sizes: on how many domains the larger model's
    perplexity is lower. The demo's real scaling effect, reported (and asserted by the tests)."""
    comparisons = []
    for steps in ladder.steps:
        for small, large in zip(ladder.sizes, ladder.sizes[1:], strict=False):
            a = results[Rung(*small, steps).name]
            b = results[Rung(*large, steps).name]
            pairs = [
                (dom["ppl"], b["sources"][src]["domains"][name]["ppl"])
                for src, entry in a["sources"].items()
                for name, dom in entry["domains"].items()
            ]
            wins = sum(large_ppl < small_ppl for small_ppl, large_ppl in pairs)
            comparisons.append(
                {
                    "smaller": Rung(*small, steps).name,
                    "larger": Rung(*large, steps).name,
                    "wins": wins,
                    "domains": len(pairs),
                }
            )
    return {
        "comparisons": comparisons,
        "wins": sum(c["wins"] for c in comparisons),
        "pairs": sum(c["domains"] for c in comparisons),
    }


def summary_rows(results: dict[str, dict]) -> list[list]:
    rows = []
    for name, r in results.items():
        s = r["suite"]
        rows.append(
            [name, r["model"]["non_embedding_parameters"], r["model"].get("training_tokens"), s["macro_ppl"],
             s["ordinary_ppl"], s["macro_bpb"], s["domains"]]
        )  # fmt: skip
    return rows


# "macro bpb" is what the site ranks by (the mean over sources of each source's mean over its domains).
SUMMARY_HEADERS = ["model", "N (non-emb.)", "D (tokens)", "macro ppl", "ordinary ppl", "macro bpb", "domains"]


def run_demo(
    output: str | Path = "paloma-demo",
    quick: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict:
    """Run the whole demo (see the module docstring) into `output`; returns the summary it also writes."""
    started, cpu_started = time.perf_counter(), time.process_time()
    demo = Demo(Path(output), QUICK if quick else FULL, progress, echo)
    suite = stage_suite(demo)
    check_mode_revision(demo, suite)
    decon = stage_decon(demo, suite)
    models = stage_train(demo, suite, decon)
    runs = stage_eval(demo, suite, models)
    results = {name: json.loads((path / "results.json").read_text(encoding="utf-8")) for name, path in runs.items()}
    ladder = stage_ladder(demo, suite, runs)
    submissions = stage_submit(demo, suite, decon, runs, ladder)
    index_html = stage_site(demo, suite, submissions)
    summary = {
        "release": RELEASE,
        "mode": demo.ladder.mode,
        "suite_revision": suite.revision,
        "ladder": asdict(demo.ladder),
        "decontamination": {k: v for k, v in decon.items() if k != "removed_ids"},
        "models": {name: str(path) for name, path in models.items()},
        "runs": {name: str(path) for name, path in runs.items()},
        "larger_wins": larger_wins(results, demo.ladder),
        "ladder_fit": str(demo.mode_dir / "ladder" / "fits.json"),
        "submissions": str(submissions),
        "site": str(index_html),
        "suite_fit": next(f for f in ladder["fits"] if f["target"] == "suite")["law"],
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "timings": demo.timings,
    }
    write_json(demo.mode_dir / "summary.json", summary)
    echo("")
    echo(format_table(SUMMARY_HEADERS, summary_rows(results)))
    wins = summary["larger_wins"]
    echo(
        f"\nLarger models beat the next smaller one (same training tokens) on {wins['wins']} of {wins['pairs']} "
        f"domain comparisons."
    )
    echo(f"\nOpen the leaderboard: {index_html.resolve().as_uri()}")
    echo(f"Demo ({demo.ladder.mode}) finished in {summary['seconds']:.0f}s; summary: {demo.mode_dir / 'summary.json'}")
    return summary
