"""Paloma in a plain accelerate loop: evaluate on every process, log once through the Accelerator's trackers."""

from __future__ import annotations


def evaluate_and_log(evaluator, model, accelerator, step: int, prefix: str = "paloma", domains: bool = False):
    """Score `model` (as `accelerator.prepare` returned it: DDP is unwrapped, FSDP scored through its own
    forward) on every process, log the scalars at `step` with `accelerator.log` (main process, every tracker
    of `init_trackers`), and return the results (the same on every process).

    Call it from every process at the same step: the ranks score their shares together.
    """
    results = evaluator.evaluate(model)
    accelerator.log(results.scalars(prefix=prefix, domains=domains), step=step)
    return results
