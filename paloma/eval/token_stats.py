"""Per-token-type statistics of a run: the file `paloma eval --token-stats` writes and the reports read.

For every (source, domain), two arrays of vocabulary length: `count[v]`, how many scored tokens had type v
(int64), and `nll[v]`, their summed negative log-likelihood in nats (float64). The evaluator accumulates them
on the model's device; this module only fixes the on-disk form, so both sides share one definition.

File: `<output>/token_stats.npz`, a NumPy archive with the arrays `count/<source>/<domain>` and
`nll/<source>/<domain>` and a scalar `vocab_size`. Source names never contain "/", domain names may.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paloma.errors import PalomaError
from paloma.io import atomic_write
from paloma.metrics import DomainSums

FILENAME = "token_stats.npz"
DomainKey = tuple[str, str]


@dataclass
class TokenStats:
    """Count and summed NLL per token type, per (source, domain)."""

    vocab_size: int
    domains: dict[DomainKey, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def total(self, keys: Iterable[DomainKey] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Counts and NLL summed over the given domains (all by default)."""
        count = np.zeros(self.vocab_size, dtype=np.int64)
        nll = np.zeros(self.vocab_size, dtype=np.float64)
        for key in self.domains if keys is None else keys:
            count += self.domains[key][0]
            nll += self.domains[key][1]
        return count, nll


def _as_numpy(array, dtype) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, possibly on an accelerator
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=dtype)


def save_token_stats(
    path: str | Path, stats: TokenStats | Mapping[DomainKey, tuple], vocab_size: int | None = None
) -> Path:
    """Write stats (a TokenStats, or {(source, domain): (count, nll)} of numpy arrays or tensors) atomically.

    `vocab_size` defaults to the arrays' length; when given, every array must have that length.
    """
    if not isinstance(stats, TokenStats):
        items = {k: (_as_numpy(c, np.int64), _as_numpy(n, np.float64)) for k, (c, n) in stats.items()}
        sizes = {len(c) for c, _ in items.values()} | {len(n) for _, n in items.values()}
        if vocab_size is not None:
            sizes.add(vocab_size)
        if len(sizes) > 1:
            raise PalomaError(f"token statistics of different lengths {sorted(sizes)}: one vocabulary expected")
        stats = TokenStats(vocab_size=sizes.pop() if sizes else 0, domains=items)
    arrays = {"vocab_size": np.array(stats.vocab_size, dtype=np.int64)}
    for (source, domain), (count, nll) in stats.domains.items():
        if "/" in source:
            raise PalomaError(f"source name {source!r} contains '/', which the token-stats keys reserve")
        arrays[f"count/{source}/{domain}"] = _as_numpy(count, np.int64)
        arrays[f"nll/{source}/{domain}"] = _as_numpy(nll, np.float64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return Path(path)


def load_token_stats(path: str | Path) -> TokenStats:
    """Read and validate a token-stats file (or the one in an eval output folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise PalomaError(f"{path}: no such file (run paloma eval with --token-stats)") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise PalomaError(f"{path}: not a token-stats file ({err})") from None
    with archive:
        if "vocab_size" not in archive.files:
            raise PalomaError(f"{path}: array 'vocab_size' is missing")
        vocab_size = int(archive["vocab_size"])
        stats = TokenStats(vocab_size=vocab_size)
        for name in archive.files:
            if not name.startswith("count/"):
                continue
            source, _, domain = name[len("count/") :].partition("/")
            nll_name = f"nll/{source}/{domain}"
            if nll_name not in archive.files:
                raise PalomaError(f"{path}: array {nll_name!r} is missing (its count array is present)")
            count, nll = archive[name], archive[nll_name]
            for label, array in ((name, count), (nll_name, nll)):
                if array.shape != (vocab_size,):
                    raise PalomaError(f"{path}: array {label!r} has shape {array.shape}, expected ({vocab_size},)")
            stats.domains[(source, domain)] = (count.astype(np.int64), nll.astype(np.float64))
        orphans = [n for n in archive.files if n.startswith("nll/") and "count/" + n[4:] not in archive.files]
        if orphans:
            raise PalomaError(f"{path}: array 'count/{orphans[0][4:]}' is missing (its nll array is present)")
    return stats


def check_against_sums(stats: TokenStats, sums: Mapping[DomainKey, DomainSums], rel_tol: float = 1e-6) -> list[str]:
    """Domains whose type counts or NLL do not add up to the run's per-domain totals (empty when consistent)."""
    problems = []
    for key, domain_sums in sums.items():
        if key not in stats.domains:
            if domain_sums.tokens:
                problems.append(f"{key[0]}/{key[1]}: no token statistics")
            continue
        count, nll = stats.domains[key]
        if int(count.sum()) != domain_sums.tokens:
            problems.append(f"{key[0]}/{key[1]}: {int(count.sum())} tokens by type, {domain_sums.tokens} in total")
        elif not np.isclose(nll.sum(), domain_sums.nll_sum, rtol=rel_tol, atol=1e-9):
            problems.append(f"{key[0]}/{key[1]}: NLL by type {nll.sum():.6f}, in total {domain_sums.nll_sum:.6f}")
    return problems
