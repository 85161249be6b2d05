"""Perplexity under another corpus's domain mix (paloma.md §3, paper App. F).

A suite's micro perplexity weights domains by how many tokens each has in the *evaluation* data. To ask how
well a model fits a different corpus made of the same domains, weight each domain's per-token loss by that
corpus's token share instead: ppl = exp(Σ_d α_d · NLL_d), with NLL_d = −Σℓ_d / T_d and Σ α_d = 1. With the
evaluation data's own shares (α_d = T_d / ΣT) this is exactly the micro perplexity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from paloma.analysis.runs import DomainKey
from paloma.errors import PalomaError
from paloma.metrics import DomainSums, perplexity


def token_shares(sums: Mapping[DomainKey, DomainSums]) -> dict[DomainKey, float]:
    """Each domain's share of all scored tokens: the mix under which reweighting gives micro perplexity."""
    total = sum(s.tokens for s in sums.values())
    return {k: s.tokens / total for k, s in sums.items() if s.tokens} if total else {}


def parse_shares(raw: object, origin: str = "<shares>") -> dict[DomainKey, float]:
    """Shares as {source: {domain: share}} or {"source/domain": share}; a bare "source" means its own domain."""
    if not isinstance(raw, dict) or not raw:
        raise PalomaError(f"{origin}: expected a non-empty JSON object of domain shares")
    shares: dict[DomainKey, float] = {}
    for name, value in raw.items():
        if isinstance(value, dict):
            items = [((name, domain), share, f"{name}.{domain}") for domain, share in value.items()]
        else:
            source, _, domain = name.partition("/")
            items = [((source, domain or source), value, name)]
        for key, share, label in items:
            if isinstance(share, bool) or not isinstance(share, (int, float)) or share < 0 or not math.isfinite(share):
                raise PalomaError(f"{origin}: field {label!r}: share must be a non-negative number, got {share!r}")
            if key in shares:
                raise PalomaError(f"{origin}: field {label!r}: domain {key[0]}/{key[1]} given twice")
            shares[key] = float(share)
    return shares


def read_shares(path: str | Path) -> dict[DomainKey, float]:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PalomaError(f"{path}: no such file") from None
    except json.JSONDecodeError as err:
        raise PalomaError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    return parse_shares(raw, str(path))


def reweight(sums: Mapping[DomainKey, DomainSums], shares: Mapping[DomainKey, float]) -> dict:
    """Perplexity of a run under the domain mix `shares` (normalised to sum to one)."""
    total = sum(shares.values())
    if total <= 0:
        raise PalomaError("the shares sum to zero")
    missing = [k for k, a in shares.items() if a > 0 and (k not in sums or sums[k].tokens == 0)]
    if missing:
        raise PalomaError(
            f"domain {missing[0][0]}/{missing[0][1]} has a share but no scored tokens in the run "
            f"({len(missing)} such domains)"
        )
    weighted = {k: a / total for k, a in shares.items() if a > 0}
    loss = sum(a * sums[k].nll_sum / sums[k].tokens for k, a in weighted.items())
    same_domains = DomainSums()
    for key in weighted:
        same_domains += sums[key]
    return {
        "domains": len(weighted),
        "shares_sum": total,
        "loss": loss,
        "ppl": math.exp(loss),
        "micro_ppl_same_domains": perplexity(same_domains.nll_sum, same_domains.tokens),
        "unweighted_domains": sorted(f"{s}/{d}" for s, d in sums if (s, d) not in weighted and sums[(s, d)].tokens),
        "contributions": [
            {"source": k[0], "domain": k[1], "share": a, "loss": sums[k].nll_sum / sums[k].tokens}
            for k, a in sorted(weighted.items(), key=lambda item: -item[1])
        ],
    }
