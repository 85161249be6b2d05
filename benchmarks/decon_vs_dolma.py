"""`paloma decon --rules dolma` against AI2's Dolma toolkit, run as AI2's Paloma decontamination pipeline.

Both tools get the same generated data: an evaluation release in Paloma's layout (prose sources, the code
domain `dolma-v1_5/stack_uniform`, the code source `dolma_100_programing_languages`) holding every rule case
of tests/decon_data.py, and a training corpus of JSONL.gz shards in which about 1% of documents carry an
evaluation paragraph and each rule and training case is planted. Dolma runs as configured for the Paloma
baselines (configs/dolma-v1_5/decontamination in allenai/dolma):

  1. dolma tag   uniseg_length_paragraphs_with_empty_v1, not_alphanum_paragraph_v1  (evaluation data)
  2. dolma mix   span replacement: paragraphs of <= 12 words and "all punctuation" paragraphs replaced by ""
  3. dolma dedupe  paragraphs, Bloom filter built (read_only: false), desired_false_positive_rate 1e-15
  4. dolma dedupe  read-only over the training corpus: attribute bff_duplicate_paragraph_spans_decontamination
  5. dolma mix   training corpus without the documents that have a span (the documented filter
                 `[0][2] >= 1.0` removes nothing with dolma 1.2.1, whose deduper writes the integer 1, so the
                 benchmark uses `[0][2] >= 1` and also runs the documented one to show it)

and paloma runs `decon index --rules dolma` and `decon filter` (dry run and writing). The script prints both
decision sets' sizes and every difference with its cause (at the evaluation-paragraph level and per training
document), checks the rule-case table against what dolma did, and times every step (wall, CPU, peak RSS,
MB/s of uncompressed training JSONL) with 1 and 2 processes. A shard with a lone-surrogate escape (valid JSON)
is run separately: dolma fails the whole shard, paloma filters it.

It installs nothing. Install dolma in a separate environment (its pins do not live beside paloma's):

    python3 -m venv /work/venvs/dolma && /work/venvs/dolma/bin/pip install "dolma==1.2.1" "boto3==1.28.17"

then, from the repository root (paloma's environment active):

    PYTHONPATH=. python benchmarks/decon_vs_dolma.py --dolma /work/venvs/dolma/bin/dolma --workdir /tmp/dvd
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.decon_bench import paragraph, sentences
from paloma.decon import ContaminationIndex
from paloma.decon.rules import WHITESPACE
from tests.decon_data import CLEAN, EVAL_WIKI, RULE_CASES, TRAINING_CASES

ATTRIBUTE = "bff_duplicate_paragraph_spans_decontamination"
DEDUPE_NAME = "paloma_decon"
# Sources AI2 fed into the filter (its v3 list; `ice_fixed` and `pile` are not in the public release), and the
# code source it left out.
PROSE_SOURCES = ("c4_en", "m2d2_wikipedia_unsplit", "dolma_100_subreddits", "dolma-v1_5")
CODE_SOURCE = "dolma_100_programing_languages"
DOLMA_V15_DOMAINS = ("books", "pes2o", "reddit_uniform", "stack_uniform", "wiki")
WORKING_FILTER = f"$@.attributes[?(@.{ATTRIBUTE} && @.{ATTRIBUTE}[0] && @.{ATTRIBUTE}[0][2] >= 1)]"
DOCUMENTED_FILTER = f"$@.attributes[?(@.{ATTRIBUTE} && @.{ATTRIBUTE}[0] && @.{ATTRIBUTE}[0][2] >= 1.0)]"


# ---- data --------------------------------------------------------------------------------------------------
@dataclass
class Planted:
    """What was planted where: the cause of any difference is looked up here."""

    eval_cause: dict[str, str]  # evaluation paragraph -> why it is special
    train_cause: dict[str, str]  # training document id -> what it carries


def make_eval(root: Path, pool: list[str], documents: int, seed: int) -> tuple[list[str], dict[str, str]]:
    """A Paloma-layout release; returns prose paragraphs to plant in training data and the special ones."""
    rng = random.Random(seed)
    special: dict[str, str] = {}
    cases = [(c.paragraph, f"rule case {c.name}: {c.why}") for c in RULE_CASES]
    code = [
        f"def handler_{i}(request, *args):  # returns the parsed body or raises a validation error {i}"
        for i in range(40)
    ]
    plantable: list[str] = []
    files: dict[Path, list[dict]] = {}
    for doc_no in range(documents):
        source = PROSE_SOURCES[doc_no % len(PROSE_SOURCES)]
        split = ("val", "test")[doc_no // len(PROSE_SOURCES) % 2]
        domain = DOLMA_V15_DOMAINS[doc_no % len(DOLMA_V15_DOMAINS)] if source == "dolma-v1_5" else None
        paras = [paragraph(rng, pool, fewest=2) for _ in range(rng.randint(4, 12))]
        paras.insert(0, rng.choice(pool)[:30])  # a title line: too short to be indexed
        if domain == "stack_uniform":
            paras.append(code[doc_no % len(code)])
            special[code[doc_no % len(code)]] = "code domain dolma-v1_5/stack_uniform"
        if doc_no < len(cases):
            paras.insert(rng.randint(1, len(paras)), cases[doc_no][0])
            special[cases[doc_no][0]] = cases[doc_no][1]
        elif doc_no % 40 == 0:
            plantable.append(paras[2])
        name = f"{split}_{domain}.jsonl.gz" if domain else f"{split}-00000000.jsonl.gz"
        record = {"text": "\n".join(paras), "id": f"{source}-{doc_no}", **({"subdomain": domain} if domain else {})}
        files.setdefault(root / source / split / name, []).append(record)
    for i in range(200):
        split = ("val", "test")[i % 2]
        text = "\n".join(code[(i + j) % len(code)] for j in range(5))
        files.setdefault(root / CODE_SOURCE / split / f"{split}_06_python.jsonl.gz", []).append(
            {"text": text, "id": f"code-{i}", "subdomain": "06_python"}
        )
    for c in code:
        special.setdefault(c, "code source " + CODE_SOURCE)
    for path, records in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wb", compresslevel=1) as handle:
            handle.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return plantable, special


def training_document(rng: random.Random, pool: list[str]) -> list[str]:
    parts = [paragraph(rng, pool) for _ in range(rng.randint(3, 12))]
    parts.insert(0, rng.choice(pool)[:40])
    if rng.random() < 0.3:
        parts.insert(rng.randint(1, len(parts)), "")
    return parts


def make_training(folder: Path, pool: list[str], plantable: list[str], megabytes: int, files: int, seed: int) -> dict:
    """JSONL.gz shards under `documents/`; returns the cause of every planted document."""
    rng = random.Random(seed)
    causes: dict[str, str] = {}
    planted = [(f"rule-{c.name}", f"{CLEAN[0]}\n{c.paragraph}\n{CLEAN[1]}", f"rule case {c.name}") for c in RULE_CASES]
    planted += [(f"training-{c.name}", c.text, f"training case {c.name}: {c.why}") for c in TRAINING_CASES]
    planted.append(("stack-code", f"intro\n{code_line(0)}\noutro", "code paragraph of stack_uniform"))
    planted.append(("code-source", f"intro\n{code_line(1)}", "code paragraph of the code source"))
    folder.mkdir(parents=True, exist_ok=True)
    target = megabytes * 1_000_000 // files
    for file_no in range(files):
        size, doc_no = 0, 0
        with gzip.open(folder / f"shard-{file_no:04d}.jsonl.gz", "wb", compresslevel=1) as handle:
            for doc_id, text, why in planted[file_no::files]:
                handle.write(orjson.dumps({"id": doc_id, "text": text, "source": "planted"}) + b"\n")
                causes[doc_id] = why
            while size < target:
                parts = training_document(rng, pool)
                doc_id = f"{file_no}-{doc_no}"
                if rng.random() < 0.01:
                    parts.insert(rng.randint(1, len(parts)), rng.choice(plantable))
                    causes[doc_id] = "an evaluation paragraph"
                line = orjson.dumps({"id": doc_id, "text": "\n".join(parts), "source": "generated"}) + b"\n"
                handle.write(line)
                size += len(line)
                doc_no += 1
    return causes


def code_line(i: int) -> str:
    return f"def handler_{i}(request, *args):  # returns the parsed body or raises a validation error {i}"


def make_surrogate_shard(folder: Path) -> None:
    """One shard whose second document has a lone-surrogate escape: valid JSON, not valid Unicode."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        orjson.dumps({"id": "s-clean", "text": CLEAN[0]}),
        b'{"id": "s-surrogate", "text": "odd \\ud800 escape\\n' + EVAL_WIKI.encode() + b'"}',
        orjson.dumps({"id": "s-dirty", "text": f"{CLEAN[1]}\n{EVAL_WIKI}"}),
    ]
    (folder / "surrogate.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))


# ---- measuring a step -------------------------------------------------------------------------------------
@dataclass
class Step:
    tool: str
    step: str
    processes: int
    wall: float
    cpu: float
    peak_rss_mb: float
    returncode: int
    corpus: bool = False  # a step over the training corpus: its MB/s is reported
    mb_per_s: float | None = None


# Commands are started by a small helper process, not by this one: on Linux a child's peak RSS starts at its
# parent's (the fork copies the memory counters), and this process holds the corpus's bookkeeping.
_LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    job = json.loads(line)
    with open(job["log"], "ab") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(job["cmd"], stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    print(json.dumps({"wall": time.perf_counter() - start, "cpu": usage.ru_utime + usage.ru_stime,
                      "maxrss_kb": usage.ru_maxrss, "code": os.waitstatus_to_exitcode(status)}), flush=True)
"""
_launcher: subprocess.Popen | None = None


def start_launcher() -> None:
    global _launcher
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    _launcher = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def timed(tool: str, step: str, processes: int, cmd: list[str], log: Path, corpus: bool = False) -> Step:
    """Run a command; wall time, CPU time and peak RSS of it and its children (os.wait4 in the launcher)."""
    if _launcher is None:
        start_launcher()
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
    _launcher.stdin.write(json.dumps({"cmd": cmd, "log": str(log)}) + "\n")
    _launcher.stdin.flush()
    done = json.loads(_launcher.stdout.readline())
    return Step(tool, step, processes, done["wall"], done["cpu"], done["maxrss_kb"] / 1024, done["code"], corpus)


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


# ---- dolma --------------------------------------------------------------------------------------------------
def run_dolma(dolma: str, work: Path, paloma_root: Path, train: Path, processes: int, paragraphs: int) -> dict:
    """AI2's pipeline in its own folder (dolma skips outputs that exist); returns steps and decisions."""
    run = work / f"dolma-p{processes}"
    shutil.rmtree(run, ignore_errors=True)
    evaldocs = run / "eval" / "documents"
    for source in PROSE_SOURCES:  # every file of the prose sources, stack_uniform included, as AI2 did
        shutil.copytree(paloma_root / source, evaldocs / source)
    (run / "train").mkdir(parents=True)
    (run / "train" / "documents").symlink_to(train.resolve())
    log = run / "dolma.log"
    steps = []
    tag = [dolma, "tag", "--documents", f"{evaldocs}/*/*/*.gz", "--processes", str(processes), "--taggers"]
    tag += ["uniseg_length_paragraphs_with_empty_v1", "not_alphanum_paragraph_v1"]
    steps.append(timed("dolma", "tag evaluation data", processes, tag, log))
    mix_eval = {
        "streams": [
            {
                "name": "paloma",
                "documents": [f"{evaldocs}/*/*/*.gz"],
                "output": {
                    "path": str(run / "evalmixed" / "documents"),
                    "max_size_in_bytes": 500_000_000,
                    "discard_fields": ["attributes"],
                },
                "attributes": ["uniseg_length_paragraphs_with_empty_v1", "not_alphanum_paragraph_v1"],
                "span_replacement": [
                    {
                        "span": "$.attributes.uniseg_length_paragraphs_with_empty_v1__uniseg_length_paragraphs_with_"
                        "empty_v1__negative_paragraph",
                        "min_score": -12,
                        "replacement": "",
                    },
                    {
                        "span": "$.attributes.not_alphanum_paragraph_v1__not_alphanum_paragraph_v1__all_punct",
                        "min_score": 0.5,
                        "replacement": "",
                    },
                ],
            }
        ],
        "processes": processes,
    }
    cmd = [dolma, "-c", str(write_yaml(run / "mix-eval.yaml", mix_eval)), "mix"]
    steps.append(timed("dolma", "mix evaluation data (span replacement)", processes, cmd, log))
    bloom = {
        "read_only": False,
        "estimated_doc_count": max(paragraphs, 1000),
        "desired_false_positive_rate": 1e-15,
        "file": str(run / "filter.bin"),
    }
    dedupe = {"name": DEDUPE_NAME, "paragraphs": {"attribute_name": ATTRIBUTE}, "skip_empty": True}
    build = {
        "documents": [str(run / "evalmixed" / "documents" / "*.gz")],
        "dedupe": dedupe,
        "bloom_filter": bloom,
        "processes": processes,
    }
    cmd = [dolma, "-c", str(write_yaml(run / "bloom.yaml", build)), "dedupe"]
    steps.append(timed("dolma", "dedupe: build the Bloom filter", processes, cmd, log))
    mark = {
        **build,
        "documents": [str(run / "train" / "documents" / "*.gz")],
        "bloom_filter": {**bloom, "read_only": True},
    }
    cmd = [dolma, "-c", str(write_yaml(run / "dedupe-train.yaml", mark)), "dedupe"]
    steps.append(timed("dolma", "dedupe: mark training documents", processes, cmd, log, corpus=True))
    shard_bytes = int(2.5 * max(p.stat().st_size for p in train.glob("*.gz")))
    filters = [("mixed", WORKING_FILTER, "mix: write kept documents")]
    if processes == 1:  # once is enough to show that it removes nothing
        filters.append(("mixed-documented-filter", DOCUMENTED_FILTER, "mix with the documented filter"))
    for name, expression, label in filters:
        mix = {
            "streams": [
                {
                    "name": "train",
                    "documents": [str(run / "train" / "documents" / "*.gz")],
                    # two input files per output shard: the mixer runs one process per output shard
                    "output": {"path": str(run / name / "documents"), "max_size_in_bytes": shard_bytes},
                    "attributes": [DEDUPE_NAME],
                    "filter": {"exclude": [expression]},
                }
            ],
            "processes": processes,
        }
        cmd = [dolma, "-c", str(write_yaml(run / f"{name}.yaml", mix)), "mix"]
        steps.append(timed("dolma", label, processes, cmd, log, corpus=True))
    return {
        "steps": steps,
        "indexed": dolma_indexed_paragraphs(run / "evalmixed" / "documents"),
        "removed": dolma_removed(run / "train" / "attributes" / DEDUPE_NAME),
        "kept_by_mix": count_lines(run / "mixed" / "documents"),
        "kept_by_documented_filter": count_lines(run / "mixed-documented-filter" / "documents"),
    }


def dolma_indexed_paragraphs(folder: Path) -> set[str]:
    """What dolma put into its Bloom filter: the non-blank paragraphs of the span-replaced evaluation data."""
    found = set()
    for path in sorted(folder.glob("*.gz")):
        with gzip.open(path, "rb") as handle:
            for line in handle:
                found.update(p for p in orjson.loads(line)["text"].split("\n") if p.strip("".join(WHITESPACE)))
    return found


def dolma_removed(folder: Path) -> set[str]:
    removed = set()
    for path in sorted(folder.rglob("*.gz")):
        with gzip.open(path, "rb") as handle:
            for line in handle:
                record = orjson.loads(line)
                if record["attributes"].get(ATTRIBUTE):
                    removed.add(record["id"])
    return removed


def count_lines(folder: Path) -> int | None:
    if not folder.is_dir():
        return None
    total = 0
    for path in folder.glob("*.gz"):
        with gzip.open(path, "rb") as handle:
            total += sum(1 for _ in handle)
    return total


# ---- paloma -------------------------------------------------------------------------------------------------
def run_paloma(work: Path, paloma_root: Path, train: Path, processes: int) -> dict:
    run = work / f"paloma-p{processes}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    log = run / "paloma.log"
    paloma = [sys.executable, "-m", "paloma", "decon"]
    index = run / "paloma.decon"
    steps = [
        timed(
            "paloma", "index (--rules dolma)", 1, [*paloma, "index", str(paloma_root), "-o", str(index), "--quiet"], log
        ),
    ]
    # what every `paloma` command costs before its work: starting Python and importing the CLI
    steps.append(timed("paloma", "start-up only (decon info)", 1, [*paloma, "info", str(index)], log))
    common = [str(train), "-i", str(index), "--workers", str(processes), "--quiet"]
    steps.append(
        timed(
            "paloma",
            "filter --dry-run (mark)",
            processes,
            [*paloma, "filter", *common, "--dry-run", "-o", str(run / "dry")],
            log,
            corpus=True,
        )
    )
    steps.append(
        timed(
            "paloma",
            "filter (mark and write kept/removed)",
            processes,
            [*paloma, "filter", *common, "-o", str(run / "out")],
            log,
            corpus=True,
        )
    )
    removed = set()
    for path in sorted((run / "out" / "removed").rglob("*.gz")):
        with gzip.open(path, "rb") as handle:
            removed.update(orjson.loads(line)["id"] for line in handle)
    return {"steps": steps, "index": index, "removed": removed}


def surrogate_shard(dolma: str, work: Path, index: Path) -> dict:
    """Dolma on a shard with a lone surrogate; paloma on the same shard."""
    run = work / "surrogate"
    shutil.rmtree(run, ignore_errors=True)
    make_surrogate_shard(run / "train" / "documents")
    config = {
        "documents": [str(run / "train" / "documents" / "*.gz")],
        "dedupe": {"name": DEDUPE_NAME, "paragraphs": {"attribute_name": ATTRIBUTE}, "skip_empty": True},
        "bloom_filter": {
            "read_only": True,
            "estimated_doc_count": 1000,
            "desired_false_positive_rate": 1e-15,
            "file": str(work / "dolma-p1" / "filter.bin"),
        },
        "processes": 1,
    }
    log = run / "dolma.log"
    step = timed(
        "dolma",
        "dedupe a shard with a lone surrogate",
        1,
        [dolma, "-c", str(write_yaml(run / "dedupe.yaml", config)), "dedupe"],
        log,
    )
    attributes = sorted((run / "train" / "attributes").rglob("*.gz"))
    error = next(
        (line.strip() for line in log.read_text(errors="replace").splitlines() if "Failed to process" in line), ""
    )
    paloma = subprocess.run(
        [
            sys.executable,
            "-m",
            "paloma",
            "decon",
            "filter",
            str(run / "train" / "documents"),
            "-i",
            str(index),
            "-o",
            str(run / "paloma"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    removed = []
    if (run / "paloma" / "removed" / "surrogate.jsonl.gz").exists():
        with gzip.open(run / "paloma" / "removed" / "surrogate.jsonl.gz", "rb") as handle:
            removed = [json.loads(line)["id"] for line in handle]
    return {
        "dolma_exit": step.returncode,
        "dolma_attribute_files": len(attributes),
        "dolma_error": error[:200],
        "paloma_exit": paloma.returncode,
        "paloma_removed": removed,
    }


# ---- comparing ----------------------------------------------------------------------------------------------
def eval_paragraphs(root: Path, sources: tuple[str, ...]) -> list[str]:
    found = []
    for source in sources:
        for path in sorted((root / source).rglob("*.jsonl.gz")):
            with gzip.open(path, "rb") as handle:
                for line in handle:
                    found += [p for p in orjson.loads(line)["text"].split("\n") if p.strip("".join(WHITESPACE))]
    return found


def compare(paloma_root: Path, index_path: Path, dolma: dict, paloma: dict, planted: Planted) -> dict:
    index = ContaminationIndex.load(index_path)
    candidates = sorted(set(eval_paragraphs(paloma_root, (*PROSE_SOURCES, CODE_SOURCE))))
    paloma_indexed = {p for p in candidates if p in index}
    eval_diff = [
        {
            "paragraph": p[:80],
            "dolma": p in dolma["indexed"],
            "paloma": p in paloma_indexed,
            "cause": planted.eval_cause.get(p, "generated prose"),
        }
        for p in candidates
        if (p in dolma["indexed"]) != (p in paloma_indexed)
    ]
    doc_diff = [
        {
            "id": i,
            "dolma": i in dolma["removed"],
            "paloma": i in paloma["removed"],
            "cause": planted.train_cause.get(i, "generated prose"),
        }
        for i in sorted(dolma["removed"] ^ paloma["removed"])
    ]
    table = []
    for case in RULE_CASES:
        observed = case.paragraph in dolma["indexed"]
        if observed != case.dolma:
            table.append({"case": case.name, "table says": case.dolma, "dolma did": observed})
    for case in TRAINING_CASES:
        observed = f"training-{case.name}" in dolma["removed"]
        if observed != case.dolma:
            table.append({"case": case.name, "table says": case.dolma, "dolma did": observed})
    return {
        "evaluation_paragraphs": len(candidates),
        "indexed": {"dolma": len(dolma["indexed"]), "paloma": len(paloma_indexed)},
        "removed_documents": {"dolma": len(dolma["removed"]), "paloma": len(paloma["removed"])},
        "paragraph_differences": eval_diff,
        "document_differences": doc_diff,
        "rule_table_mismatches": table,
    }


def markdown(rows: list[list], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dolma", default=shutil.which("dolma"), help="the dolma executable (dolma 1.2.1)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/decon-vs-dolma"))
    parser.add_argument("--eval-documents", type=int, default=4000)
    parser.add_argument("--corpus-mb", type=int, default=200, help="uncompressed JSONL megabytes of training data")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    start_launcher()
    if not args.dolma or not Path(args.dolma).exists():
        sys.exit(
            "dolma is not installed: python3 -m venv /work/venvs/dolma && "
            '/work/venvs/dolma/bin/pip install "dolma==1.2.1" "boto3==1.28.17", then pass --dolma'
        )
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    paloma_root, train = work / "paloma", work / "train" / "documents"
    if not (work / "planted.json").exists():  # generated once per work folder (parsing the stdlib takes a while)
        pool = sentences()
        shutil.rmtree(paloma_root, ignore_errors=True)
        shutil.rmtree(train, ignore_errors=True)
        plantable, eval_cause = make_eval(paloma_root, pool, args.eval_documents, seed=1)
        train_cause = make_training(train, pool, plantable, args.corpus_mb, args.files, seed=2)
        (work / "planted.json").write_text(json.dumps({"eval": eval_cause, "train": train_cause}))
    saved = json.loads((work / "planted.json").read_text())
    planted = Planted(saved["eval"], saved["train"])
    jsonl_bytes = sum(len(gzip.decompress(p.read_bytes())) for p in train.glob("*.gz"))
    paragraphs = len(eval_paragraphs(paloma_root, PROSE_SOURCES))
    results: dict = {"loadavg_start": os.getloadavg(), "training_jsonl_bytes": jsonl_bytes, "runs": {}}
    steps: list[Step] = []
    for processes in args.processes:
        dolma = run_dolma(args.dolma, work, paloma_root, train, processes, paragraphs)
        paloma = run_paloma(work, paloma_root, train, processes)
        steps += dolma["steps"] + paloma["steps"]
        results["runs"][processes] = {
            "comparison": compare(paloma_root, paloma["index"], dolma, paloma, planted),
            "dolma_mix_kept": dolma["kept_by_mix"],
            "dolma_documented_filter_kept": dolma["kept_by_documented_filter"],
        }
    for step in steps:
        if step.corpus:
            step.mb_per_s = round(jsonl_bytes / 1e6 / step.wall, 1)
    results["surrogate_shard"] = surrogate_shard(
        args.dolma, work, work / f"paloma-p{args.processes[0]}" / "paloma.decon"
    )
    results["loadavg_end"] = os.getloadavg()
    results["steps"] = [step.__dict__ for step in steps]
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    report(results, steps)


def report(results: dict, steps: list[Step]) -> None:
    print(
        f"training corpus: {results['training_jsonl_bytes'] / 1e6:,.0f} MB of JSONL; "
        f"load {results['loadavg_start'][0]:.2f} -> {results['loadavg_end'][0]:.2f}\n"
    )
    rows = [
        [
            s.tool,
            s.step,
            s.processes,
            f"{s.wall:.1f}",
            f"{s.cpu:.1f}",
            f"{s.peak_rss_mb:.0f}",
            s.mb_per_s if s.mb_per_s is not None else "",
            s.returncode,
        ]
        for s in steps
    ]
    print(markdown(rows, ["tool", "step", "processes", "wall s", "CPU s", "peak RSS MB", "JSONL MB/s", "exit"]))
    for processes, run in results["runs"].items():
        c = run["comparison"]
        print(f"\n## {processes} process(es)")
        print(
            f"evaluation paragraphs: {c['evaluation_paragraphs']:,}; indexed: dolma {c['indexed']['dolma']:,}, "
            f"paloma {c['indexed']['paloma']:,}"
        )
        print(
            f"training documents removed: dolma {c['removed_documents']['dolma']:,}, "
            f"paloma {c['removed_documents']['paloma']:,}; dolma's mix kept {run['dolma_mix_kept']}, "
            f"with the documented filter {run['dolma_documented_filter_kept']}"
        )
        causes = Counter(d["cause"] for d in c["paragraph_differences"])
        print(f"paragraph differences: {len(c['paragraph_differences'])} {dict(causes)}")
        for d in c["paragraph_differences"][:40]:
            print(f"  dolma={d['dolma']!s:5} paloma={d['paloma']!s:5} {d['cause']}: {d['paragraph']!r}")
        print(f"document differences: {len(c['document_differences'])}")
        for d in c["document_differences"][:40]:
            print(f"  {d['id']}: dolma={d['dolma']} paloma={d['paloma']} ({d['cause']})")
        print(f"rule-table mismatches (tests/decon_data.py vs dolma): {c['rule_table_mismatches'] or 'none'}")
    s = results["surrogate_shard"]
    print(
        f"\nlone-surrogate shard: dolma exit {s['dolma_exit']}, {s['dolma_attribute_files']} attribute files "
        f"({s['dolma_error'] or 'no message'})\n  paloma exit {s['paloma_exit']}, removed {s['paloma_removed']}"
    )


if __name__ == "__main__":
    main()
