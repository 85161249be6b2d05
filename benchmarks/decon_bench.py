"""Benchmark `paloma decon`: index build time and size for ~2.5M paragraphs, filter throughput per stage.

Run by hand (not in CI), from the repository root:
    PYTHONPATH=. python benchmarks/decon_bench.py --workdir /tmp/decon-bench
Results are printed as markdown and saved as JSON; docs/performance.md records them.

The text is real English (sentences of the docstrings of Python's standard library, recombined into
paragraphs and documents), so paragraph lengths and character mixes resemble prose, not random tokens.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import random
import resource
import sysconfig
import time
from pathlib import Path

import orjson

from paloma.decon import ContaminationIndex, build_index
from paloma.decon.decision import decide, key_digests
from paloma.decon.filter import FilterOptions, Unit, filter_files, filter_unit
from paloma.decon.hashing import digests_to_halves
from paloma.outputs import Outputs


def sentences() -> list[str]:
    """Sentences from the docstrings of the standard library: real prose, shipped with every Python."""
    found = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node) or ""
                for part in " ".join(doc.split()).split(". "):
                    if 6 <= len(part.split()) <= 40:
                        found.append(part.rstrip(".") + ".")
    return sorted(set(found))


def paragraph(rng: random.Random, pool: list[str], fewest: int = 1) -> str:
    return " ".join(rng.choice(pool) for _ in range(rng.randint(fewest, 4)))


def document(rng: random.Random, pool: list[str], planted: list[str] | None = None) -> str:
    parts = [paragraph(rng, pool) for _ in range(rng.randint(3, 12))]
    parts.insert(0, pool[rng.randrange(len(pool))][:40])  # a short title line
    if rng.random() < 0.3:
        parts.insert(rng.randint(1, len(parts)), "")
    if planted:
        parts.insert(rng.randint(1, len(parts)), rng.choice(planted))
    return "\n".join(parts)


def make_eval(root: Path, pool: list[str], paragraphs: int, seed: int) -> list[str]:
    """A Paloma-layout folder with about `paragraphs` paragraphs; returns some of them for planting."""
    rng = random.Random(seed)
    per_doc, per_file = 25, 4000
    planted: list[str] = []
    written = 0
    file_no = 0
    while written < paragraphs:
        source = ("c4_en", "m2d2_wikipedia_unsplit", "dolma_100_subreddits")[file_no % 3]
        split = ("val", "test")[file_no // 3 % 2]
        path = root / source / split / f"{split}-{file_no:05d}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wb", compresslevel=1) as handle:
            for doc_no in range(per_file):
                # two sentences at least, so that training text rarely repeats an evaluation paragraph by chance
                paras = [paragraph(rng, pool, fewest=2) for _ in range(per_doc)]
                if len(planted) < 2000 and doc_no % 50 == 0:
                    planted.append(paras[3])
                handle.write(orjson.dumps({"text": "\n".join(paras), "id": f"{file_no}-{doc_no}"}) + b"\n")
        written += per_doc * per_file
        file_no += 1
    return planted


def make_corpus(folder: Path, pool: list[str], planted: list[str], megabytes: int, files: int, seed: int) -> None:
    """JSONL.gz training shards; about 1% of documents carry an evaluation paragraph."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    target = megabytes * 1_000_000 // files
    for file_no in range(files):
        size = 0
        with gzip.open(folder / f"shard-{file_no:03d}.jsonl.gz", "wb", compresslevel=6) as handle:
            doc_no = 0
            while size < target:
                text = document(rng, pool, planted if rng.random() < 0.01 else None)
                line = orjson.dumps({"id": f"{file_no}-{doc_no}", "text": text, "meta": {"url": "https://x"}}) + b"\n"
                handle.write(line)
                size += len(line)
                doc_no += 1


def stage_times(index: ContaminationIndex, path: Path, out_dir: Path) -> dict:
    """CPU seconds of each stage on one file (CPU time, not wall time: the machine is shared)."""
    out: dict[str, float] = {}
    clock = time.process_time
    for name, opener in (("decompress (zlib)", gzip.open), ("decompress (isal)", _isal_open())):
        if opener is None:
            continue
        t = clock()
        with opener(path, "rb") as handle:
            lines = list(handle)
        out[name] = clock() - t
    t = clock()
    texts = [orjson.loads(line)["text"] for line in lines]
    out["json (orjson)"] = clock() - t
    batches = [texts[i : i + 2048] for i in range(0, len(texts), 2048)]
    t = clock()
    digests = [key_digests(index, batch)[0] for batch in batches]
    out["split + hash"] = clock() - t
    t = clock()
    for batch_digests in digests:
        index.lookup(*digests_to_halves(batch_digests))
    out["lookup"] = clock() - t
    t = clock()
    for batch in batches:
        decide(index, batch)
    out["decide = split + hash + lookup + mask"] = clock() - t
    unit = Unit(path, path.name, "jsonl")
    t = clock()
    filter_unit(index, unit, None, FilterOptions(dry_run=True, samples=0))
    out["whole file, dry run"] = clock() - t
    t = clock()
    filter_unit(index, unit, Outputs(out_dir), FilterOptions(samples=0))
    out["whole file, writing kept/removed (gzip level 1)"] = clock() - t
    return {
        "documents": len(texts),
        "jsonl_bytes": sum(map(len, lines)),
        "text_bytes": sum(len(x.encode()) for x in texts),
        "seconds": out,
    }


def _isal_open():
    try:
        from isal import igzip
    except ImportError:
        return None
    return igzip.open


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/decon-bench"))
    parser.add_argument("--paragraphs", type=int, default=2_500_000)
    parser.add_argument("--corpus-mb", type=int, default=200, help="uncompressed JSONL megabytes of training data")
    parser.add_argument("--files", type=int, default=8)
    args = parser.parse_args()
    work = args.workdir
    pool = sentences()
    results: dict = {"sentences": len(pool), "cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg()}
    if not (work / "paloma").exists():
        planted = make_eval(work / "paloma", pool, args.paragraphs, seed=1)
        (work / "planted.json").write_text(json.dumps(planted))
    planted = json.loads((work / "planted.json").read_text())
    if not (work / "corpus").exists():
        make_corpus(work / "corpus", pool, planted, args.corpus_mb, args.files, seed=2)

    t, cpu = time.perf_counter(), time.process_time()
    index = build_index(work / "paloma", progress=False)
    build_seconds, build_cpu = time.perf_counter() - t, time.process_time() - cpu
    index_path = index.save(work / "paloma.decon")
    t = time.perf_counter()
    index = ContaminationIndex.load(index_path)
    results["index"] = {
        "unique_paragraphs": len(index),
        "indexed_occurrences": index.header["counts"]["indexed_occurrences"],
        "build_seconds": round(build_seconds, 1),
        "build_cpu_seconds": round(build_cpu, 1),
        "load_and_verify_seconds": round(time.perf_counter() - t, 2),
        "file_bytes": index_path.stat().st_size,
        "hash_bytes": 16 * len(index),
    }
    shard = sorted((work / "corpus").glob("*.jsonl.gz"))[0]
    results["stages"] = stage_times(index, shard, work / "stage-out")
    corpus_jsonl = sum(len(gzip.decompress(p.read_bytes())) for p in (work / "corpus").glob("*.jsonl.gz"))
    runs = []
    for workers, dry in ((1, True), (2, True), (1, False), (2, False)):
        out = work / f"out-{workers}-{dry}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        cpu = time.process_time()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        report = filter_files(
            index_path, [work / "corpus"], None if dry else out, workers=workers, dry_run=dry, progress=False
        )
        seconds = time.perf_counter() - t
        cpu = time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        totals = report["totals"]
        runs.append(
            {
                "workers": workers,
                "dry_run": dry,
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                "jsonl_MB_per_cpu_s": round(corpus_jsonl / cpu / 1e6, 1),
                "documents": totals["documents"],
                "removed": totals["removed_documents"],
                "jsonl_MB_per_s": round(corpus_jsonl / seconds / 1e6, 1),
                "text_MB_per_s": round(totals["bytes"] / seconds / 1e6, 1),
                "docs_per_s": round(totals["documents"] / seconds),
            }
        )
    results["filter"] = runs
    results["loadavg_end"] = os.getloadavg()
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
