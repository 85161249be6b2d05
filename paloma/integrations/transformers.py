"""A `transformers.TrainerCallback` that evaluates a `paloma.Evaluator` every N steps and at the last step.

Values go through `Trainer.log`, which appends them to `state.log_history` and calls every callback's
`on_log`, the reporting ones included (W&B, TensorBoard, …). A callback cannot reach `Trainer.log` by itself
(callbacks get the model, not the trainer, and values a callback adds to `on_evaluate`'s metrics are never
logged), so the callback is attached to its trainer: `PalomaCallback(evaluator, every=500).attach(trainer)`.
"""

from __future__ import annotations

from transformers import TrainerCallback


class PalomaCallback(TrainerCallback):
    """Every `every` optimizer steps (and at the last step) score the model and log `<prefix>/<source>/bpb`, ….

    Every process evaluates (each scores its share; FSDP needs all of them), the Trainer's logging reports
    once. `history` keeps (step, results) of each evaluation, for notebooks and tests.
    """

    def __init__(self, evaluator, every: int, prefix: str = "paloma", domains: bool = False, at_end: bool = True):
        if every < 1:
            raise ValueError(f"every must be ≥ 1, got {every}")
        self.evaluator, self.every, self.prefix, self.domains, self.at_end = evaluator, every, prefix, domains, at_end
        self.trainer = None
        self.history: list[tuple[int, dict]] = []

    def attach(self, trainer) -> PalomaCallback:
        """Add this callback to `trainer` and log through it; returns the callback."""
        self.trainer = trainer
        trainer.add_callback(self)
        return self

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        last = self.at_end and step >= state.max_steps
        if step % self.every and not last:
            return
        if self.trainer is None:
            raise RuntimeError("PalomaCallback logs through its Trainer: attach it with callback.attach(trainer)")
        results = self.evaluator.evaluate(model if model is not None else self.trainer.model)
        self.history.append((step, results))
        self.trainer.log(results.scalars(prefix=self.prefix, domains=self.domains))
