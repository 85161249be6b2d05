"""Parameter counts and training budgets of the shipped configs, from the recipe's arithmetic.

    python -m paloma_baselines.params            # or: paloma baselines params

Counts come from `paloma_baselines.model.count_parameters` (a formula, so the 1B configs need no memory);
tests/test_baselines_model.py checks the formula against built models and the paper's ~1.2B.
"""

from __future__ import annotations

import sys

from paloma.table import format_table
from paloma_baselines.config import available_configs, load_config
from paloma_baselines.model import count_parameters, flops_per_token


def config_rows(names: list[str] | None = None) -> list[dict]:
    """One row per config: shape, parameters (total / non-embedding), tokens and training FLOPs of the run."""
    rows = []
    for name in names or available_configs():
        config = load_config(name)
        m, t = config.model, config.train
        params = count_parameters(m)
        tokens = t.max_steps * t.global_batch_size * t.seq_len
        rows.append(
            {
                "config": name,
                "d_model": m.d_model,
                "layers": m.n_layers,
                "heads": m.n_heads,
                "mlp_hidden": m.mlp_hidden,
                "vocab": m.vocab_size,
                "parameters": params.total,
                "non_embedding": params.non_embedding,
                "batch": f"{t.global_batch_size}x{t.seq_len}",
                "steps": t.max_steps,
                "tokens": tokens,
                "train_flops": flops_per_token(m, t.seq_len) * tokens,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or None
    rows = config_rows(names)
    headers = list(rows[0])
    cells = [[f"{r[h]:.3g}" if h == "train_flops" else r[h] for h in headers] for r in rows]
    print(format_table(headers, cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
