"""Build the demo suite: a small benchmark in Paloma's layout, plus a training corpus and a tokenizer.

The suite is made the way Paloma was made, at a hundredth of the scale: several sources (prose and code),
each divided into domains; every domain gets the same token budget per split; the last document of a split
is cut to the budget and the cut text kept in `metadata.truncated_portion` (never scored). Documents not
set aside for evaluation form the training part, so training and evaluation text are disjoint documents;
a few evaluation paragraphs are then deliberately copied into training documents, the kind of leak a web
crawl has, so that `paloma decon` has something real to find.

Output (under ROOT):
    suite/<source>/{val,test}/*.jsonl.gz   the evaluation data (Paloma layout), read by `paloma eval --data`
    suite/paloma-demo.json                 its registry (same schema as domains/paloma.json)
    suite/manifest.json                    budgets, per-domain counts, planted contamination, data revision
    train/train-00000000.jsonl.gz          the training part (not yet decontaminated)
    tokenizer/                             the demo BPE tokenizer (transformers format)

Tokens are the demo tokenizer's. The tokenizer is trained on the training part, which must exist before
budgets in tokens can be measured; so each domain first sets aside evaluation candidates by bytes (an
upper bound of bytes per token times the budget), the tokenizer is trained on the rest, and then the
candidates are cut to exact token budgets. Candidates left unused go to the training part.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from paloma.demo import texts
from paloma.demo.texts import Document
from paloma.demo.tokenizer import save_for_transformers, train_bpe
from paloma.io import atomic_write, write_json

RELEASE = "paloma-demo"
SPLITS = ("val", "test")
SCHEMA = "paloma-demo-suite/1"


@dataclass(frozen=True)
class SuiteConfig:
    """Everything that decides the suite's content besides the installed Python and packages."""

    tokens_per_split: int = 1000  # per domain and split (Paloma: >= 100k GPT-NeoX tokens per domain)
    vocab_size: int = 4096
    max_bytes_per_token: float = 5.0  # bound used to set candidates aside before the tokenizer exists
    min_package_bytes: int = 40_000  # standard-library packages smaller than this are not code domains
    planted: int = 8  # evaluation paragraphs copied into training documents
    seed: int = 6198
    max_length: int = 128  # the release's evaluation window L (Paloma: 2048); the demo models train at 128

    @property
    def candidate_bytes(self) -> int:
        return int(len(SPLITS) * self.tokens_per_split * self.max_bytes_per_token)

    @property
    def min_domain_bytes(self) -> int:
        """A domain must leave at least as much training text as it sets aside for evaluation."""
        return 2 * self.candidate_bytes


@dataclass(frozen=True)
class SourceSpec:
    """One source of the demo suite: how it appears in the registry and where its text comes from."""

    name: str
    paper_name: str
    group: str
    code: bool
    single_domain: bool
    collect: Callable[[SuiteConfig], list[Document]]


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(
        "python_reference", "Python Language Reference", "standard", False, False,
        lambda c: texts.python_reference_documents("python_reference"),
    ),
    SourceSpec(
        "licenses", "Dependency licences", "standard", False, True,
        lambda c: texts.license_documents("licenses", "licenses"),
    ),
    SourceSpec(
        "stdlib_docstrings", "Standard-library docstrings", "fine-grained", False, False,
        lambda c: texts.stdlib_docstring_documents("stdlib_docstrings"),
    ),
    SourceSpec(
        "stdlib_code", "Standard-library source code", "fine-grained", True, False,
        lambda c: texts.stdlib_code_documents(c.min_package_bytes, "stdlib_code"),
    ),
)  # fmt: skip


@dataclass
class DomainPlan:
    """One domain on its way through the build: candidates for evaluation, training documents, outputs."""

    source: SourceSpec
    domain: str
    candidates: list[Document]
    train: list[Document]
    splits: dict[str, list[dict]] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """Paths of a built suite and its manifest."""

    root: Path
    manifest: dict

    @property
    def suite_dir(self) -> Path:
        return self.root / "suite"

    @property
    def registry_path(self) -> Path:
        return self.suite_dir / f"{RELEASE}.json"

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    @property
    def revision(self) -> str:
        return self.manifest["revision"]


# --- pure steps -------------------------------------------------------------------------------------


def shuffle_key(seed: int, doc_id: str) -> str:
    """A stable pseudo-random order: the same on every machine and Python version."""
    return hashlib.sha256(f"{seed}:{doc_id}".encode()).hexdigest()


def set_aside(docs: list[Document], candidate_bytes: int, seed: int) -> tuple[list[Document], list[Document]]:
    """Split a domain's documents into evaluation candidates (a shuffled prefix of `candidate_bytes`) and the rest."""
    ordered = sorted(docs, key=lambda d: shuffle_key(seed, d.id))
    taken, size = 0, 0
    while taken < len(ordered) and size < candidate_bytes:
        size += ordered[taken].n_bytes
        taken += 1
    return ordered[:taken], ordered[taken:]


def cut_to_budget(
    docs: Iterable[Document], budget: int, count_offsets: Callable[[str], list[tuple[int, int]]]
) -> tuple[list[dict], int]:
    """Take documents in order until `budget` tokens; cut the last one, keeping the rest as `truncated_portion`.

    `count_offsets(text)` returns the character offsets of the text's tokens. Returns the Paloma records
    and how many documents were used (the caller gives the unused ones back to training).
    """
    records, total, used = [], 0, 0
    for doc in docs:
        if total >= budget:
            break
        used += 1
        offsets = count_offsets(doc.text)
        metadata: dict = {}
        text = doc.text
        if total + len(offsets) > budget:
            keep = budget - total
            cut = offsets[keep][0]
            text, metadata["truncated_portion"] = doc.text[:cut], doc.text[cut:]
            total = budget
        else:
            total += len(offsets)
        record = {"id": doc.id, "text": text, "source": doc.source}
        if doc.domain != doc.source:
            record["subdomain"] = doc.domain
        records.append({**record, "metadata": metadata})
    return records, used


def eval_paragraphs(text: str, min_words: int = 13) -> list[str]:
    """Lines that `paloma decon` is sure to index: at least `min_words` whitespace words, with letters.

    Each whitespace word holds at least one Unicode word segment, so such a line also passes decon's
    threshold of 13 word segments.
    """
    return [p for p in text.split("\n") if len(p.split()) >= min_words and any(c.isalpha() for c in p)]


def plant_contamination(plans: list[DomainPlan], count: int, seed: int) -> list[dict]:
    """Copy one paragraph of `count` prose evaluation documents into a training document of the same domain.

    The paragraph becomes its own line, as a quoted passage would on a web page, so decontamination
    (exact paragraph match) must remove exactly these host documents, plus any natural duplicates.
    """
    options = []
    for plan in plans:
        if plan.source.code or not plan.train:
            continue
        for split in SPLITS:
            for record in plan.splits.get(split, []):
                lines = eval_paragraphs(record["text"])
                if lines:
                    options.append((shuffle_key(seed, f"plant:{record['id']}"), plan, split, record, lines))
    options.sort(key=lambda o: o[0])
    planted, used_domains = [], set()
    for _, plan, split, record, lines in options:
        if len(planted) == count:
            break
        key = (plan.source.name, plan.domain)
        if key in used_domains:  # spread the leaks over domains
            continue
        used_domains.add(key)
        paragraph = max(lines, key=lambda line: (len(line.split()), line))
        host_index = min(range(len(plan.train)), key=lambda i: shuffle_key(seed, f"host:{plan.train[i].id}"))
        host = plan.train[host_index]
        first_break = host.text.find("\n") + 1  # 0 when the host is a single line: the quote goes first
        new_text = host.text[:first_break] + paragraph + "\n" + host.text[first_break:]
        plan.train[host_index] = replace(host, text=new_text)
        planted.append({"train_id": host.id, "eval_id": record["id"], "split": split, "paragraph": paragraph})
    return planted


# --- writing ----------------------------------------------------------------------------------------


def write_jsonl_gz(path: Path, records: Iterable[dict]) -> None:
    """Write gzipped JSON lines byte-for-byte reproducibly (no timestamp or file name in the gzip header)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
        for record in records:
            gz.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())


def split_file(source: SourceSpec, split: str, domain: str) -> str:
    """File names as in Paloma: one file per domain, or shards for a single-domain source."""
    return f"{split}/{split}-00000000.jsonl.gz" if source.single_domain else f"{split}/{split}_{domain}.jsonl.gz"


def registry_dict(plans: list[DomainPlan], manifest_domains: dict, revision: str, config: SuiteConfig) -> dict:
    """The suite's registry, in the schema of `domains/paloma.json` (readable by `paloma.registry`)."""
    sources = []
    for spec in SOURCES:
        domains = [p.domain for p in plans if p.source is spec]
        if not domains:
            continue
        tokens = sum(manifest_domains[spec.name][d][s]["tokens"] for d in domains for s in SPLITS)
        sources.append(
            {
                "name": spec.name,
                "paper_name": spec.paper_name,
                "group": spec.group,
                "tokens_val_test": tokens,
                "redistributable": True,
                "fringe": False,
                "code_domains": list(domains) if spec.code else [],
                "domains": domains,
            }
        )
    return {
        "release": RELEASE,
        "description": (
            "The paloma demo suite: text every paloma installation has (Python's Language Reference, "
            "standard-library docstrings and source code, dependency licences), in Paloma's layout. "
            "A demonstration only; its numbers are not comparable with Paloma's."
        ),
        "hub_dataset": None,
        "revision": revision,
        "protocol": {"max_length": config.max_length},
        "split": "test",  # the split its leaderboard ranks (paloma demo evaluates and submits the test split)
        "sources": sources,
    }


def _hash_tree(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# --- the build --------------------------------------------------------------------------------------


def load_suite(root: str | Path, config: SuiteConfig | None = None) -> Suite | None:
    """The suite already built under `root` with this config and this Python, or None."""
    root = Path(root)
    path = root / "suite" / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    config = config or SuiteConfig()
    if manifest.get("config") != asdict(config) or manifest.get("python") != platform.python_version():
        return None
    suite = Suite(root, manifest)
    required = [suite.registry_path, suite.tokenizer_dir / "tokenizer.json"]
    required += [suite.train_dir / manifest["train"]["file"]]
    required += [suite.suite_dir / name for name in manifest["files"]]
    return suite if all(p.is_file() for p in required) else None


def build_suite(root: str | Path, config: SuiteConfig | None = None, progress: bool = True) -> Suite:
    """Build the demo suite under `root` (see the module docstring), or reuse one built with the same config."""
    root = Path(root)
    config = config or SuiteConfig()
    existing = load_suite(root, config)
    if existing is not None:
        return existing
    if (root / "suite" / "manifest.json").is_file():  # a demo suite of another config or Python: replace it
        for name in ("suite", "train", "tokenizer"):
            shutil.rmtree(root / name, ignore_errors=True)

    plans, skipped = _plan_domains(config, progress)
    tokenizer = train_bpe((d.text for p in plans for d in p.train), config.vocab_size)
    save_for_transformers(tokenizer, root / "tokenizer")

    def offsets(text: str) -> list[tuple[int, int]]:
        return tokenizer.encode(text, add_special_tokens=False).offsets

    for plan in tqdm(plans, desc="demo suite: cutting to budgets", unit="domain", disable=not progress):
        remaining = plan.candidates
        for split in SPLITS:
            plan.splits[split], used = cut_to_budget(remaining, config.tokens_per_split, offsets)
            remaining = remaining[used:]
        plan.train.extend(remaining)  # unused candidates were never evaluation text
        plan.train.sort(key=lambda d: d.id)
    planted = plant_contamination(plans, config.planted, config.seed)
    return _write(root, config, plans, skipped, planted, offsets)


def _plan_domains(config: SuiteConfig, progress: bool) -> tuple[list[DomainPlan], list[dict]]:
    plans, skipped = [], []
    for spec in tqdm(SOURCES, desc="demo suite: reading texts", unit="source", disable=not progress):
        by_domain: dict[str, list[Document]] = {}
        for doc in spec.collect(config):
            by_domain.setdefault(doc.domain, []).append(doc)
        for domain in sorted(by_domain):
            docs = by_domain[domain]
            size = sum(d.n_bytes for d in docs)
            if size < config.min_domain_bytes:
                skipped.append({"source": spec.name, "domain": domain, "bytes": size, "reason": "too little text"})
                continue
            candidates, train = set_aside(docs, config.candidate_bytes, config.seed)
            plans.append(DomainPlan(spec, domain, candidates, train))
    return plans, skipped


OffsetsFn = Callable[[str], list[tuple[int, int]]]


def _write(
    root: Path,
    config: SuiteConfig,
    plans: list[DomainPlan],
    skipped: list[dict],
    planted: list[dict],
    offsets: OffsetsFn,
) -> Suite:
    suite_dir = root / "suite"
    files, domains = [], {}
    for plan in plans:
        stats = {}
        for split in SPLITS:
            name = f"{plan.source.name}/{split_file(plan.source, split, plan.domain)}"
            write_jsonl_gz(suite_dir / name, plan.splits[split])
            files.append(name)
            stats[split] = _stats(plan.splits[split], offsets)
        stats["train"] = {"documents": len(plan.train), "bytes": sum(d.n_bytes for d in plan.train)}
        domains.setdefault(plan.source.name, {})[plan.domain] = stats

    train_file = "train-00000000.jsonl.gz"
    train_docs = sorted((d for p in plans for d in p.train), key=lambda d: d.id)
    write_jsonl_gz(
        root / "train" / train_file,
        ({"id": d.id, "text": d.text, "source": d.source, "domain": d.domain} for d in train_docs),
    )
    content = _hash_tree(
        [suite_dir / f for f in files] + [root / "train" / train_file, root / "tokenizer" / "tokenizer.json"],
        root,
    )
    revision = f"python-{platform.python_version()}+{content[:12]}"
    write_json(suite_dir / f"{RELEASE}.json", registry_dict(plans, domains, revision, config))
    manifest = {
        "schema": SCHEMA,
        "release": RELEASE,
        "revision": revision,
        "python": platform.python_version(),
        "content_sha256": content,
        "config": asdict(config),
        "tokens": "demo BPE tokenizer tokens (tokenizer/), no special tokens",
        "domains": domains,
        "skipped_domains": skipped,
        "files": files,
        "train": {"file": train_file, "documents": len(train_docs), "bytes": sum(d.n_bytes for d in train_docs)},
        "planted_contamination": planted,
        "licence_packages": texts.runtime_dependencies(),
    }
    write_json(suite_dir / "manifest.json", manifest)
    return Suite(root, manifest)


def _stats(records: list[dict], offsets: OffsetsFn) -> dict:
    return {
        "documents": len(records),
        "tokens": sum(len(offsets(r["text"])) for r in records),
        "bytes": sum(len(r["text"].encode("utf-8")) for r in records),
        "truncated": sum("truncated_portion" in r["metadata"] for r in records),
    }
