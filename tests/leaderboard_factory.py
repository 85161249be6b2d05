"""Eval-like outputs for submission and site tests, made the way `paloma eval` makes them.

Per-document records are built from real text (bytes, characters and words counted from the text itself), with
a per-model log-likelihood; `paloma.metrics.aggregate_records` turns them into results.json, exactly as the
evaluator does. No aggregate is typed by hand.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
import tempfile
from pathlib import Path

from paloma.eval.data import DataSpec, describe, index_documents, iter_documents, resolve_data
from paloma.io import write_json
from paloma.metrics import aggregate_records
from paloma.protocol import protocol_from_preset
from paloma.registry import Registry, load_registry_file

ZEN = (
    "beautiful is better than ugly explicit implicit simple complex complicated flat nested sparse dense "
    "readability counts special cases are not enough to break the rules although practicality beats purity "
    "errors should never pass silently unless explicitly silenced in the face of ambiguity refuse temptation "
    "guess there one obvious way do it now often right namespaces honking great idea let us more those"
)
WORDS = ZEN.split()

TINY_REGISTRY = {
    "release": "tiny",
    "description": "A tiny release for tests: four public sources and one private source.",
    "sources": [
        {"name": "alpha", "paper_name": "Alpha", "group": "standard", "domains": ["a1", "a2", "a3"]},
        {"name": "beta", "paper_name": "Beta", "group": "standard", "domains": ["beta"]},
        {"name": "gamma", "paper_name": "Gamma", "group": "fine-grained", "domains": ["g1", "g2"]},
        {"name": "delta", "paper_name": "Delta", "group": "fringe", "fringe": True, "domains": ["delta"]},
        {"name": "hidden", "paper_name": "Hidden", "group": "standard", "redistributable": False, "domains": ["h1"]},
    ],
}


def write_tiny_registry(folder: Path, release: str = "tiny") -> Path:
    path = folder / f"{release}.json"
    path.write_text(json.dumps({**TINY_REGISTRY, "release": release}), encoding="utf-8")
    return path


def documents(source: str, domain: str, split: str = "val", count: int = 4) -> list[str]:
    """The same documents for every model: a seeded sample of words, with some non-ASCII text."""
    rng = random.Random(f"{source}/{domain}/{split}")
    docs = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(20, 60))]
        if rng.random() < 0.5:
            words.insert(rng.randrange(len(words)), "naïve-café—ünïcode")
        docs.append(" ".join(words))
    return docs


def count_tokens(text: str, fixed_vocabulary: bool) -> int:
    """Two stand-in tokenizers: words and punctuation (the fixed vocabulary), or 4-byte pieces."""
    if fixed_vocabulary:
        return len(re.findall(r"\w+|[^\w\s]", text))
    return math.ceil(len(text.encode("utf-8")) / 4)


def write_tiny_release(root: Path, registry_file: Path, splits=("val", "test"), count: int = 4) -> Path:
    """The factory's documents on disk in Paloma's layout (what `paloma eval` and `paloma release manifest` read)."""
    from fixtures import write_release

    registry = load_registry_file(registry_file)
    for split in splits:
        docs = {
            (source, None if registry.get(source).single_domain else domain): documents(source, domain, split, count)
            for source, domain in registry.domain_pairs(public_only=True)
        }
        write_release(root, docs, split=split)
    return root


@functools.cache
def _data_revision(registry_text: str, split: str, count: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        registry_file = Path(tmp) / "registry.json"
        registry_file.write_text(registry_text, encoding="utf-8")
        write_tiny_release(Path(tmp) / "data", registry_file, splits=(split,), count=count)
        return revision_as_evaluated(Path(tmp) / "data", split)


def revision_as_evaluated(data: Path, split: str) -> str:
    """The data revision `paloma eval` records when it scores every document of `data`'s split (its own path)."""
    spec = DataSpec(path=str(data), split=split)
    source = resolve_data(spec)
    return describe(source, spec, index_documents(iter_documents(source, spec)))["revision"]


def data_revision(registry_file: Path, split: str, count: int = 4) -> str:
    """The data revision `paloma eval` records for the factory's documents (read back from disk, as it would)."""
    return _data_revision(Path(registry_file).read_text(encoding="utf-8"), split, count)


def fixed_vocabulary_tokenizer(folder: Path):
    """A real tokenizer that counts as `count_tokens(text, True)` does: words and single punctuation marks."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(sorted(set(WORDS)))}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="<eos>")
    tokenizer.save_pretrained(folder)
    return folder


def _shared_release(folder: Path, registry_file: Path) -> Path:
    """The evaluation data of one test world, written once: the manifest and the decon index read the same files."""
    data = folder / "release"
    if not data.is_dir():
        write_tiny_release(data, registry_file)
    return data


@functools.cache
def fixed_vocabulary_hash() -> str:
    """`paloma.eval.tokens.tokenizer_hash` of the fixed-vocabulary tokenizer, as `paloma eval` would record it."""
    from transformers import AutoTokenizer

    from paloma.eval.tokens import tokenizer_hash

    with tempfile.TemporaryDirectory() as tmp:
        return tokenizer_hash(AutoTokenizer.from_pretrained(fixed_vocabulary_tokenizer(Path(tmp))))


def write_tiny_manifest(folder: Path, registry_file: Path, split: str = "val", tokens: bool = True) -> Path:
    """`paloma release manifest` of the factory's documents, beside the registry file (where validation finds it)."""
    from paloma.submissions.manifest import build_manifest, manifest_name

    data = _shared_release(folder, registry_file)
    tokenizer = str(fixed_vocabulary_tokenizer(folder / "fixed-tokenizer")) if tokens else None
    manifest = build_manifest(data, split, load_registry_file(registry_file), tokenizer, progress=False)
    path = Path(registry_file).with_name(manifest_name(manifest["release"], split))
    write_json(path, manifest)
    return path


def write_decon_report(folder: Path, registry_file: Path) -> Path:
    """A real `paloma decon filter --report` of a small corpus against the factory's evaluation data."""
    from paloma.decon import build_index
    from paloma.decon.filter import REPORT_NAME, filter_files

    data = _shared_release(folder, registry_file)
    index = build_index(data, min_words=5, progress=False)
    corpus = folder / "decon-corpus.jsonl"
    leaked = documents("alpha", "a1", "val")[0]
    rows = [{"id": "leak", "text": f"intro line\n{leaked}"}, {"id": "clean", "text": "nothing from the benchmark"}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = filter_files(index, [corpus], folder / "decon-filtered", progress=False)
    assert report["totals"]["removed_documents"] == 1
    return folder / "decon-filtered" / REPORT_NAME


def records(
    registry: Registry, quality: float, fixed_vocabulary: bool, split: str, seed: str, skip=(), count: int = 4
) -> list[dict]:
    """Per-document records of one model: nll per token varies with the domain and the model's quality."""
    rng = random.Random(seed)
    out = []
    for source, domain in registry.domain_pairs(public_only=True):
        if (source, domain) in skip:
            continue
        difficulty = 1.5 + (sum(map(ord, domain)) % 17) / 10
        for i, text in enumerate(documents(source, domain, split, count)):
            tokens = count_tokens(text, fixed_vocabulary)
            per_token = difficulty * quality * rng.uniform(0.9, 1.1) * (1.0 if fixed_vocabulary else 1.3)
            out.append(
                {
                    "id": f"{domain}-{i}",
                    "source": source,
                    "domain": domain,
                    "tokens": tokens,
                    "bytes": len(text.encode("utf-8")),
                    "chars": len(text),
                    "words": len(text.split()),
                    "nll_sum": per_token * tokens,
                }
            )
    return out


def bootstrap_intervals(docs: list[dict], seed: str, resamples: int = 200) -> dict:
    """95% percentile-bootstrap intervals of each domain's ppl and bpb, resampling its documents."""
    rng = random.Random(seed)
    by_domain: dict[tuple[str, str], list[dict]] = {}
    for doc in docs:
        by_domain.setdefault((doc["source"], doc["domain"]), []).append(doc)
    intervals = {}
    for key, group in by_domain.items():
        ppl, bpb = [], []
        for _ in range(resamples):
            sample = [rng.choice(group) for _ in group]
            nll = sum(d["nll_sum"] for d in sample)
            ppl.append(math.exp(nll / sum(d["tokens"] for d in sample)))
            bpb.append(nll / (sum(d["bytes"] for d in sample) * math.log(2)))
        lo, hi = int(0.025 * resamples), int(0.975 * resamples) - 1
        intervals[key] = {
            "level": 0.95,
            "n": len(group),
            "ppl": [sorted(ppl)[lo], sorted(ppl)[hi]],
            "bpb": [sorted(bpb)[lo], sorted(bpb)[hi]],
        }
    return intervals


def eval_output(
    folder: Path,
    registry_file: Path,
    *,
    model: str = "tiny-model",
    quality: float = 1.0,
    parameters: int = 120_000_000,
    non_embedding_parameters: int = 85_000_000,
    fixed_vocabulary: bool = True,
    split: str = "val",
    skip=(),
    protocol: dict | None = None,
    with_ci: bool = False,
    documents_per_domain: int = 4,
) -> Path:
    """Write a `paloma eval`-like output folder (results.json) and return it."""
    registry = load_registry_file(registry_file)
    docs = records(registry, quality, fixed_vocabulary, split, model, skip, documents_per_domain)
    results = aggregate_records(docs, registry)
    if with_ci:
        for (source, domain), interval in bootstrap_intervals(docs, seed=model).items():
            results["sources"][source]["domains"][domain]["ci"] = interval
    overrides = {"max_length": registry.protocol.get("max_length"), **(protocol or {})}
    preset = overrides.pop("preset", "paloma")
    revision = data_revision(registry_file, split, documents_per_domain)
    made = protocol_from_preset(preset, split=split, data_revision=revision, **overrides)
    results.update(
        schema="paloma-results/1",
        protocol=made.with_(
            prefix_token_id=0, tokenizer_hash=fixed_vocabulary_hash() if fixed_vocabulary else "sha256:own-vocabulary"
        ).to_dict(),
        model={
            "name_or_path": f"org/{model}",
            "revision": "main",
            "parameters": parameters,
            "non_embedding_parameters": non_embedding_parameters,
        },
        data={"path": "/data/paloma", "split": split, "release": registry.release},
    )
    write_json(folder / "results.json", results)
    return folder


def metadata(name: str, **overrides) -> dict:
    """Metadata as a user writes it for `paloma submit` (YAML or flags)."""
    meta = {
        "name": name,
        "display_name": name.replace("-", " ").title(),
        "organisation": "Test Lab",
        "links": [{"label": "weights", "url": f"https://example.org/{name}"}],
        "training_tokens": 2_000_000_000,
        "tokenizer": "allenai/gpt-neox-olmo-dolma-v1_5",
        "training_data": "A decontaminated web corpus",
        "fixed_vocabulary": True,
        "fixed_training_order": True,
        "decontamination": {},
    }
    meta.update(overrides)
    return meta


def write_submissions_quickly(folder: Path, registry_file: Path, count: int) -> None:
    """Many valid submissions, written without re-validating the folder after each (which `submit` does)."""
    from paloma.io import write_json as write
    from paloma.submissions.schema import Submission
    from paloma.submissions.submit import build_submission

    for i in range(count):
        name = f"bulk-{i:03d}"
        out = eval_output(folder / "evals" / name, registry_file, model=name, quality=0.5 + (i * 7 % count) / count,
                          parameters=100_000_000 * (i + 1), non_embedding_parameters=50_000_000 * (i + 1))  # fmt: skip
        results = json.loads((out / "results.json").read_text())
        submission = Submission.model_validate(build_submission(results, metadata(name), None))
        write(folder / "subs" / name / "submission.json", submission.to_json_dict())
