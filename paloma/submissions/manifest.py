"""Release manifests: what a complete evaluation of one release and split must have counted, per domain.

A manifest is computed once from the real data (`paloma release manifest`) and committed beside the registry
(`domains/<release>.<split>.manifest.json`). It holds every domain's document count, UTF-8 bytes, characters,
words and (for the release's fixed vocabulary) tokens, the data revision the evaluator records, and the
protocol fingerprints of the release's presets, so that `paloma submissions validate` can check a submission on
its own: a partial evaluation, zeroed domains, another data revision or a forged fingerprint no longer depend on
other submissions to be caught. It also records the evaluation data's identity as `paloma decon index` would
(its sources and file fingerprint), so a decontamination report can be checked to cover the release.

The split is read as a stream (one Paloma split is about 2M documents): documents are counted as they are
read and tokenized in batches, never held in memory together.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paloma import __version__
from paloma.errors import PalomaError
from paloma.eval.data import DataSpec, Document, data_revision, iter_documents, resolve_data
from paloma.io import read_json
from paloma.protocol import FINGERPRINT_FIELDS, MODEL_MAX_LENGTH, PRESETS, protocol_from_preset
from paloma.registry import Registry

FORMAT = "paloma-release-manifest/1"
REFERENCE_PRESET = "paloma"
COUNT_FIELDS = ("documents", "bytes", "chars", "words", "empty_documents", "zlib_bytes")
TOKENIZE_BATCH = 256


@dataclass
class Manifest:
    """A release manifest as loaded for validation (see the module docstring for what each part means)."""

    path: Path
    release: str
    split: str
    data_revision: str
    reference_preset: str
    fingerprints: dict[str, str]
    domains: dict[str, dict[str, dict[str, int]]]
    tokenizer: dict | None = None
    decon: dict = field(default_factory=dict)
    protocol_overrides: dict = field(default_factory=dict)  # the release registry's protocol fields

    @property
    def reference_fingerprint(self) -> str:
        return self.fingerprints[self.reference_preset]

    def preset_of(self, fingerprint: str, preset: str | None = None, max_length: object = None) -> str | None:
        """The release preset whose fingerprint this is, or None for a fingerprint of no preset of the release.

        A model-length preset (`preset`, with the submission's recorded `max_length`) is recomputed.
        """
        fixed = next((name for name, fp in self.fingerprints.items() if fp == fingerprint), None)
        if fixed is None and preset is not None and expected_fingerprint(self, preset, max_length) == fingerprint:
            return preset
        return fixed


def preset_fingerprints(registry: Registry, split: str, data_revision: str) -> dict[str, str]:
    """The comparability fingerprint of each protocol preset on this data (the release's overrides applied).

    A preset whose window length is the model's own (lm-evaluation-harness's) has no fingerprint of its own:
    each model's L gives another one, found by `expected_fingerprint` from the submission's recorded L.
    """
    overrides = _fingerprint_overrides(registry)
    return {
        preset: protocol_from_preset(
            preset, **{**overrides, "split": split, "data_revision": data_revision}
        ).fingerprint()
        for preset, values in PRESETS.items()
        if values["max_length"] != MODEL_MAX_LENGTH or "max_length" in overrides
    }


def _fingerprint_overrides(registry: Registry) -> dict:
    return {k: v for k, v in registry.protocol.items() if k in FINGERPRINT_FIELDS}


def expected_fingerprint(manifest: Manifest, preset: str, max_length: object) -> str | None:
    """The fingerprint a model-length preset gives on the manifest's data at the submission's recorded L."""
    if preset not in PRESETS or PRESETS[preset]["max_length"] != MODEL_MAX_LENGTH:
        return None
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        return None
    fields = {"split": manifest.split, "data_revision": manifest.data_revision, **manifest.protocol_overrides}
    return protocol_from_preset(preset, model_max_length=max_length, **fields).fingerprint()


# ---- building ----------------------------------------------------------------------------------------------


def raw_deflate_size(data: bytes) -> int:
    """Bytes of `data` compressed alone by zlib at level 9, raw deflate (no header or checksum): a size any
    language model beats by a bounded factor, so the release can put a floor under each domain's loss."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return len(packer.compress(data)) + len(packer.flush())


class _Counter:
    """Per-domain counts of a stream of documents; token counts in batches when a tokenizer is given."""

    def __init__(self, tokenizer=None) -> None:
        self.tokenizer = tokenizer
        self.counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
        self.batch: list[Document] = []

    def add(self, doc: Document) -> None:
        counts = self.counts[(doc.source, doc.domain)]
        counts["documents"] += 1
        data = doc.text.encode("utf-8", "surrogatepass")
        counts["bytes"] += len(data)
        counts["zlib_bytes"] += raw_deflate_size(data)
        counts["chars"] += len(doc.text)
        counts["words"] += len(doc.text.split())
        if self.tokenizer is None:
            counts["empty_documents"] += doc.text == ""
            return
        self.batch.append(doc)
        if len(self.batch) >= TOKENIZE_BATCH:
            self.flush()

    def flush(self) -> None:
        """Tokenize the pending batch exactly as the evaluator does (whole documents, no special tokens)."""
        if not self.batch:
            return
        from paloma.eval.tokens import encode_texts

        pieces = encode_texts(self.tokenizer, [(d.where, d.text) for d in self.batch])
        for doc, piece in zip(self.batch, pieces, strict=True):
            counts = self.counts[(doc.source, doc.domain)]
            counts["tokens"] += len(piece)
            counts["empty_documents"] += len(piece) == 0
        self.batch = []


def _stream(documents: Iterator[Document], counter: _Counter, progress) -> Iterator[Document]:
    for doc in documents:
        counter.add(doc)
        if progress is not None:
            progress.update(1)
        yield doc


def build_manifest(
    data: str | Path,
    split: str,
    registry: Registry,
    tokenizer: str | None = None,
    revision: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Count a release's split (local Paloma layout, or a hub dataset) and return the manifest as plain data.

    `tokenizer` is the release's fixed vocabulary (for Paloma `allenai/gpt-neox-olmo-dolma-v1_5`); without it
    the manifest holds no token counts and validation checks tokens across fixed-vocabulary submissions only.
    """
    from tqdm.auto import tqdm

    spec = DataSpec(path=str(data), split=split, revision=revision, layout="paloma")
    loaded_tokenizer, tokenizer_info = _load_tokenizer(tokenizer)
    source = resolve_data(spec)
    root, hub_revision = source.root, source.hub_commit
    counter = _Counter(loaded_tokenizer)
    bar = tqdm(desc=f"counting {split}", unit="doc", disable=not progress, smoothing=0.05)
    with bar:
        for _ in _stream(iter_documents(source, spec), counter, bar):
            pass
    counter.flush()
    revision = data_revision(source)  # the content identity `paloma eval` records, for any copy of the data
    return {
        "format": FORMAT,
        "release": registry.release,
        "split": split,
        "data_revision": revision,
        "reference_preset": REFERENCE_PRESET,
        "fingerprints": preset_fingerprints(registry, split, revision),
        "protocol_overrides": _fingerprint_overrides(registry),
        "tokenizer": tokenizer_info,
        "decon": _decon_identity(root, registry, hub_revision),
        "created_by": f"paloma {__version__}",
        "totals": _totals(counter.counts),
        "domains": _domains(counter.counts, registry),
    }


def _load_tokenizer(name: str | None):
    if name is None:
        return None, None
    from transformers import AutoTokenizer

    from paloma.eval.tokens import tokenizer_hash

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PalomaError(f"--tokenizer {name!r}: cannot load ({first})") from None
    return tokenizer, {"name": str(name), "hash": tokenizer_hash(tokenizer), "vocabulary": len(tokenizer)}


def _decon_identity(root: Path, registry: Registry, hub_revision: str | None) -> dict:
    """What `paloma decon index` records of this data by default: its prose sources and their fingerprint."""
    from paloma.decon.evaldata import SPLITS, discover_sources, eval_files, fingerprint

    sources = [s for s in discover_sources(root) if not (registry.get(s) and registry.get(s).is_code)]
    identity: dict[str, Any] = {"sources": sources}
    if hub_revision:
        identity["hub_revision"] = hub_revision
    else:
        identity["fingerprint"] = fingerprint(
            [f for s in sources for sp in SPLITS for f in eval_files(root, s, sp)], root
        )
    return identity


def _totals(counts: dict[tuple[str, str], Counter]) -> dict[str, int]:
    total: Counter = Counter()
    for c in counts.values():
        total.update(c)
    return {"domains": len(counts), **{k: int(v) for k, v in sorted(total.items())}}


def _domains(counts: dict[tuple[str, str], Counter], registry: Registry) -> dict:
    """Every domain of the data, and the registry's public domains the data lacks (recorded as empty)."""
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    keys = (*COUNT_FIELDS, "tokens")
    for (source, domain), c in sorted(counts.items()):
        out[source][domain] = {k: int(c[k]) for k in keys if k != "tokens" or "tokens" in c}
    for source, domain in registry.domain_pairs(public_only=True):
        out[source].setdefault(domain, dict.fromkeys(COUNT_FIELDS, 0))
    return dict(out)


# ---- loading -----------------------------------------------------------------------------------------------


def load_manifest(path: str | Path) -> Manifest:
    """Read a manifest file; every error names the file and the field."""
    path = Path(path)
    raw = read_json(path, "manifest")
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise PalomaError(f'{path}: not a release manifest (expected "format": "{FORMAT}")')
    try:
        manifest = Manifest(
            path=path,
            release=str(raw["release"]),
            split=str(raw["split"]),
            data_revision=str(raw["data_revision"]),
            reference_preset=str(raw["reference_preset"]),
            fingerprints={str(k): str(v) for k, v in raw["fingerprints"].items()},
            domains={
                str(s): {str(d): {str(k): int(v) for k, v in c.items()} for d, c in ds.items()}
                for s, ds in raw["domains"].items()
            },
            tokenizer=raw.get("tokenizer"),
            decon=raw.get("decon") or {},
            protocol_overrides=dict(raw.get("protocol_overrides") or {}),
        )
    except (KeyError, AttributeError, TypeError, ValueError) as err:
        raise PalomaError(f"{path}: malformed manifest ({type(err).__name__}: {err})") from None
    if manifest.reference_preset not in manifest.fingerprints:
        raise PalomaError(f"{path}: reference_preset {manifest.reference_preset!r} has no fingerprint")
    return manifest


def manifest_name(release: str, split: str) -> str:
    return f"{release}.{split}.manifest.json"
