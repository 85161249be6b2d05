"""Benchmark: build the leaderboard site from many generated submissions over all public Paloma domains.

Run by hand (it takes minutes):  python benchmarks/site_bench.py --submissions 1000 --work /tmp/site-bench
Records: generation, validation (against a release manifest of the generated counts) and build time, output
size, and in headless Chromium (Debian's chromium) the leaderboard's load time and the time one sort or filter
takes. Results go to docs/performance.md by hand.

The generated submissions are what `paloma submit` would write: shared per-domain bytes and documents (the
same data for everyone), shared token counts among fixed-vocabulary models, per-model log-likelihoods, and
aggregates computed with `paloma.metrics` from those sums.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

from paloma import metrics
from paloma.io import write_json
from paloma.protocol import protocol_from_preset
from paloma.registry import load_registry
from paloma.site.builder import build
from paloma.submissions.manifest import FORMAT, preset_fingerprints

DATA_REVISION = "sha256:0123456789abcdef"  # one (generated) release for every submission


def domain_data(registry, rng: random.Random) -> dict:
    """Per-domain shared counts: documents, bytes, and tokens in the fixed vocabulary."""
    data = {}
    for source, domain in registry.domain_pairs(public_only=True):
        documents = rng.randint(20, 2000)
        n_bytes = documents * rng.randint(800, 6000)
        data[(source, domain)] = {
            "documents": documents,
            "bytes": n_bytes,
            "tokens": int(n_bytes / rng.uniform(3.5, 4.8)),
            "difficulty": rng.uniform(1.8, 3.6),
        }
    return data


def make_submission(i: int, registry, shared: dict, rng: random.Random) -> dict:
    params = int(10 ** rng.uniform(7.5, 11))
    tokens = int(10 ** rng.uniform(9, 13))
    fixed = rng.random() < 0.7
    quality = 1.3 - 0.05 * math.log10(params) - 0.03 * math.log10(tokens) + rng.gauss(0, 0.03)
    run = None
    if i % 10 in (1, 2):  # one run in ten has checkpoints: 0.25 and 0.5 of its schedule before the final
        run = {"run": f"run-{i // 10}", "step": 1000 * (i % 10), "lr_schedule_fraction": 0.25 * (i % 10)}
    by_domain = {}
    vocab_scale = 1.0 if fixed else rng.uniform(0.8, 1.25)
    for key, d in shared.items():
        n_tokens = d["tokens"] if fixed else int(d["tokens"] * vocab_scale)
        nll = n_tokens * d["difficulty"] * quality / vocab_scale * rng.uniform(0.97, 1.03)
        by_domain[key] = metrics.DomainSums(nll_sum=nll, tokens=n_tokens, bytes=d["bytes"], documents=d["documents"])
    agg = metrics.aggregate(by_domain, registry)
    name = f"model-{i:04d}"
    return {
        "schema": "paloma-submission/1",
        "name": name,
        "submitted": "2026-11-26",
        "model": {
            "display_name": f"Model {i:04d}",
            "organisation": f"Lab {i % 37}",
            "links": [{"label": "weights", "url": f"https://example.org/{name}"}],
            "model_id": f"lab-{i % 37}/{name}",
            "revision": "main",
            "parameters": params,
            "non_embedding_parameters": int(params * 0.8),
            "training_tokens": tokens,
            "tokenizer": "allenai/gpt-neox-olmo-dolma-v1_5" if fixed else f"lab-{i % 37}/tokenizer",
            "training_data": "generated benchmark data",
        },
        **({"checkpoint": run} if run else {}),
        "guidelines": {
            "decontamination": {"met": False},
            "fixed_training_order": rng.random() < 0.5,
            "fixed_vocabulary": fixed,
        },
        "benchmark": {"release": "paloma", "split": "test"},
        "protocol": protocol_from_preset("paloma", split="test", data_revision=DATA_REVISION).to_dict(),
        "results": {
            source: {
                domain: {k: getattr(s, k) for k in ("nll_sum", "tokens", "bytes", "documents")}
                for (src, domain), s in by_domain.items()
                if src == source
            }
            for source in agg["sources"]
        },
        "aggregates": {
            "suite": {k: agg["suite"][k] for k in ("macro_ppl", "macro_bpb", "ordinary_ppl", "ordinary_bpb")},
            "sources": {s: {k: m[k] for k in ("macro_ppl", "macro_bpb")} for s, m in agg["sources"].items()},
        },
    }


def manifest(registry, shared: dict) -> dict:
    """The release manifest the generated submissions were "evaluated" on: their shared counts, per domain."""
    domains: dict = {}
    for (source, domain), d in shared.items():
        counts = {"documents": d["documents"], "bytes": d["bytes"], "tokens": d["tokens"], "empty_documents": 0}
        domains.setdefault(source, {})[domain] = counts
    return {
        "format": FORMAT,
        "release": "paloma",
        "split": "test",
        "data_revision": DATA_REVISION,
        "reference_preset": "paloma",
        "fingerprints": preset_fingerprints(registry, "test", DATA_REVISION),
        "tokenizer": None,
        "decon": {},
        "domains": domains,
    }


def generate(folder: Path, count: int) -> float:
    started = time.perf_counter()
    registry = load_registry("paloma")
    rng = random.Random(1234)
    shared = domain_data(registry, rng)
    shutil.rmtree(folder, ignore_errors=True)
    for i in tqdm(range(count), desc="generating", unit="submission"):
        sub = make_submission(i, registry, shared, rng)
        write_json(folder / sub["name"] / "submission.json", sub)
    write_json(folder.parent / "paloma.test.manifest.json", manifest(registry, shared))
    return time.perf_counter() - started


def browser_timings(site: Path, repeats: int = 5) -> dict:
    """Load the leaderboard from disk and time sorts and filters (median of `repeats`)."""
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as p:
        args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        loads = []
        for _ in range(repeats):
            started = time.perf_counter()
            page.goto((site / "index.html").as_uri())
            page.wait_for_selector("#leaderboard tbody tr")
            loads.append(time.perf_counter() - started)
        results["leaderboard load (to rows shown)"] = statistics.median(loads)
        results["rows rendered"] = page.eval_on_selector_all("#leaderboard tbody tr", "r => r.length")
        # Time from the click until the next frame is painted (script, style, layout and paint).
        timed_click = """sel => new Promise(done => { const t = performance.now(); document.querySelector(sel).click();
                          requestAnimationFrame(() => setTimeout(() => done(performance.now() - t))); })"""
        for label, selector in (
            ("sort by a source column", "#leaderboard th[data-key='src:m2d2_s2orc_unsplit'] button"),
            ("sort by parameters", "#leaderboard th[data-key=params] button"),
        ):
            results[label] = statistics.median(page.evaluate(timed_click, selector) / 1000 for _ in range(repeats))
        results["filter (fixed vocabulary toggle)"] = statistics.median(
            page.evaluate(timed_click, "input[name=vocab]") / 1000 for _ in range(repeats)
        )
        results["show 100 more rows"] = page.evaluate(timed_click, "#show-more") / 1000
        tokens_header = "#leaderboard th[data-key=tokens] button"
        results["sort with 200 rows shown"] = statistics.median(
            page.evaluate(timed_click, tokens_header) / 1000 for _ in range(repeats)
        )
        for label, path, ready in (
            ("submission page load", "models/model-0000.html", "h1"),
            ("source page load (M2D2 S2ORC, 167 domains)", "sources/m2d2_s2orc_unsplit.html", "table"),
            ("Pareto page load", "pareto.html", "svg"),
            ("compare page load (546 domains)", "compare.html", "#compare-out table"),
        ):
            started = time.perf_counter()
            page.goto((site / path).as_uri())
            page.wait_for_selector(ready)
            results[label] = time.perf_counter() - started
        results["page errors"] = len(errors)
        browser.close()
    return results


def folder_size(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--work", default="/tmp/paloma-site-bench")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--browser-only", action="store_true", help="only time an already built site in --work")
    args = parser.parse_args()
    work = Path(args.work)
    if args.browser_only:
        for label, value in browser_timings(work / "site").items():
            print(f"{label}: {value * 1000:.0f} ms" if isinstance(value, float) else f"{label}: {value}")
        return 0
    gen_seconds = generate(work / "submissions", args.submissions)
    n_in, size_in = folder_size(work / "submissions")
    cpu_started = time.process_time()
    summary = build(work / "submissions", work / "site", manifest_files=[work / "paloma.test.manifest.json"])
    build_cpu = time.process_time() - cpu_started
    n_out, size_out = folder_size(work / "site")
    index_size = (work / "site" / "index.html").stat().st_size
    lines = [
        f"| submissions | {args.submissions} (546 public domains each) |",
        f"| generation (not part of the build) | {gen_seconds:.1f} s |",
        f"| submissions on disk | {n_in} files, {size_in / 1e6:.1f} MB |",
        f"| validate + build, wall clock | {summary.seconds:.1f} s |",
        f"| validate + build, CPU time of the process | {build_cpu:.1f} s |",
        f"| output | {n_out} files ({summary.pages} pages), {size_out / 1e6:.1f} MB |",
        f"| index.html (leaderboard with embedded data) | {index_size / 1e6:.2f} MB |",
    ]
    if not args.no_browser:
        for label, value in browser_timings(work / "site").items():
            shown = f"{value * 1000:.0f} ms" if isinstance(value, float) else str(value)
            lines.append(f"| browser: {label} | {shown} |")
    print("| measure | value |\n| --- | --- |")
    print("\n".join(lines))
    json.dump({"lines": lines}, sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
