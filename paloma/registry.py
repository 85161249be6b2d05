"""The registry of Paloma's sources and domains, loaded from data (`domains/paloma.json`).

The registry is data, not code (as lm-evaluation-harness does with task YAML), so adding a release or a
source needs no code change. Everything else asks it which domains exist, which are code or fringe, and
which cannot be redistributed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from paloma.errors import PalomaError
from paloma.io import read_json
from paloma.resources import data_dir

GROUPS = ("standard", "fine-grained", "disparities", "fringe")


@dataclass(frozen=True)
class Source:
    """One Paloma source: a folder of the release, holding one or more domains."""

    name: str
    paper_name: str
    group: str
    domains: tuple[str, ...]
    tokens_val_test: int | None = None
    redistributable: bool = True
    fringe: bool = False
    code_domains: tuple[str, ...] = ()
    undivided_allowed: bool = False
    note: str = ""

    @property
    def is_code(self) -> bool:
        """True when every domain of the source is code (e.g. Dolma-100-Programming-Languages)."""
        return bool(self.code_domains) and set(self.code_domains) == set(self.domains)

    @property
    def single_domain(self) -> bool:
        return self.domains == (self.name,)

    def is_code_domain(self, domain: str) -> bool:
        return domain in self.code_domains

    def accepts_domain(self, domain: str) -> bool:
        """Whether records of this source may carry `domain` (Manosphere may be undivided)."""
        return domain in self.domains or (self.undivided_allowed and domain == self.name)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "paper_name": self.paper_name,
            "group": self.group,
            "tokens_val_test": self.tokens_val_test,
            "redistributable": self.redistributable,
            "fringe": self.fringe,
            "code": self.is_code,
            "code_domains": list(self.code_domains),
            "undivided_allowed": self.undivided_allowed,
            "note": self.note,
            "domains": list(self.domains),
        }


@dataclass(frozen=True)
class Registry:
    """A benchmark release: its sources in registry order."""

    release: str
    sources: tuple[Source, ...]
    description: str = ""
    hub_dataset: str | None = None
    # Protocol fields where this release differs from Paloma's (e.g. the demo's window length of 128).
    protocol: dict = field(default_factory=dict, compare=False)
    # The one split its leaderboard ranks (submissions of the other are refused, never outvoted) and the size of
    # its fixed vocabulary (the guideline's tokenizer), which bounds a fixed-vocabulary model's embedding.
    split: str | None = None
    vocabulary: int | None = None
    _by_name: dict[str, Source] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({s.name: s for s in self.sources})

    def __contains__(self, source: str) -> bool:
        return source in self._by_name

    def get(self, source: str) -> Source | None:
        return self._by_name.get(source)

    def public(self) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.redistributable)

    def domain_pairs(self, public_only: bool = False) -> list[tuple[str, str]]:
        """Every (source, domain) pair, in registry order."""
        sources = self.public() if public_only else self.sources
        return [(s.name, d) for s in sources for d in s.domains]

    def totals(self) -> dict:
        public = self.public()
        return {
            "sources": len(self.sources),
            "domains": sum(len(s.domains) for s in self.sources),
            "public_sources": len(public),
            "public_domains": sum(len(s.domains) for s in public),
            "public_tokens_val_test": sum(s.tokens_val_test or 0 for s in public),
        }

    def to_dict(self) -> dict:
        return {
            "release": self.release,
            "description": self.description,
            "hub_dataset": self.hub_dataset,
            **({"protocol": dict(self.protocol)} if self.protocol else {}),
            **({"split": self.split} if self.split else {}),
            **({"vocabulary": self.vocabulary} if self.vocabulary else {}),
            "totals": self.totals(),
            "sources": [s.to_dict() for s in self.sources],
        }


def parse_registry(raw: dict, origin: str = "<registry>") -> Registry:
    """Build a Registry from its JSON form, naming the offending field on error."""
    try:
        sources = tuple(
            Source(
                name=s["name"],
                paper_name=s.get("paper_name", s["name"]),
                group=s["group"],
                domains=tuple(s["domains"]),
                tokens_val_test=s.get("tokens_val_test"),
                redistributable=s.get("redistributable", True),
                fringe=s.get("fringe", False),
                code_domains=tuple(s.get("code_domains", ())),
                undivided_allowed=s.get("undivided_allowed", False),
                note=s.get("note", ""),
            )
            for s in raw["sources"]
        )
    except KeyError as err:
        raise PalomaError(f"{origin}: a source lacks the field {err.args[0]!r}") from None
    for source in sources:
        if source.group not in GROUPS:
            raise PalomaError(f"{origin}: source {source.name!r} has unknown group {source.group!r}")
    if raw.get("split") not in (None, "val", "test"):
        raise PalomaError(f"{origin}: split {raw['split']!r} is not 'val' or 'test'")
    vocabulary = raw.get("vocabulary")
    if vocabulary is not None and (not isinstance(vocabulary, int) or isinstance(vocabulary, bool) or vocabulary < 1):
        raise PalomaError(f"{origin}: vocabulary {vocabulary!r} is not a positive integer")
    return Registry(
        release=raw.get("release", Path(origin).stem),
        sources=sources,
        description=raw.get("description", ""),
        hub_dataset=raw.get("hub_dataset"),
        protocol=dict(raw.get("protocol") or {}),
        split=raw.get("split"),
        vocabulary=vocabulary,
    )


def load_registry_file(path: str | Path) -> Registry:
    path = Path(path)
    raw = read_json(path, "registry")
    if not isinstance(raw, dict) or not isinstance(raw.get("sources"), list):
        raise PalomaError(f"{path}: not a registry (expected an object with a 'sources' list)")
    return parse_registry(raw, origin=str(path))


@cache
def load_registry(release: str = "paloma") -> Registry:
    """Load a shipped release's registry (default: Paloma)."""
    path = data_dir("domains") / f"{release}.json"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in path.parent.glob("*.json")))
        raise PalomaError(f"no registry named {release!r} ships with paloma (shipped: {shipped}; or pass a JSON file)")
    return load_registry_file(path)


def resolve_registry(name_or_path: str) -> Registry | None:
    """`--registry` as every command takes it: a shipped release's name, a JSON file, or 'none' for no registry."""
    if name_or_path == "none":
        return None
    if name_or_path.endswith(".json") or Path(name_or_path).is_file():
        return load_registry_file(name_or_path)
    return load_registry(name_or_path)
