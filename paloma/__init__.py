"""paloma: exact Paloma-style evaluation of language-model fit.

The public Python API mirrors the CLI: each `paloma` subcommand is a thin wrapper around one library function.
`from paloma import Evaluator` scores a model in memory (a notebook, a training loop; docs/in-training.md); it is
imported on first use, so `import paloma` stays cheap (no torch).
The stages, in the order data flows (docs/architecture.md):

    eval         `paloma eval`: documents → token windows → model forward → per-document records → results
    decon        decontamination of training data against the evaluation data
    submissions  results + metadata → validated leaderboard submissions
    site         validated submissions → the static leaderboard
    analysis     analyses of finished runs: compare, ladder fits, merges, reweighting, rank stability, token types
    integrations paloma.Evaluator inside training loops: a transformers Trainer callback, accelerate loops
    demo         the whole pipeline offline on text already on this machine
    commands     the CLI's subcommands, one thin module each; `cli` dispatches to them (`__main__`: python -m paloma)

Foundations more than one stage uses: `protocol` (what makes numbers comparable), `metrics` (aggregation, pure
functions of per-document sums), `intervals` (the one bootstrap and interval policy of results, compare and the
site), `registry` (sources and domains), `io` (atomic writes, readers), `outputs` (resumable output folders,
local or in buckets), `hub`, `errors`, `resources`, `table`, `svg`. `merge` is the documented alias of
`paloma.analysis.merge` (`paloma.merge.load_merged` was public before the analyses moved).
"""

__version__ = "0.1.0"

_LAZY = {"Evaluator": "paloma.eval.evaluate", "ModelAdapter": "paloma.eval.live"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'paloma' has no attribute {name!r}")


__all__ = ["Evaluator", "ModelAdapter", "__version__"]
