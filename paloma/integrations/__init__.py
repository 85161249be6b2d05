"""Paloma inside training loops: a `transformers.Trainer` callback and a helper for accelerate loops.

Imported only when used (`paloma` itself never imports transformers' Trainer or accelerate for these):

    from paloma.integrations.transformers import PalomaCallback
    from paloma.integrations.accelerate import evaluate_and_log

Both take a `paloma.Evaluator` built once before training and report its `results.scalars()` through the
loop's own logger, so every tracker it reports to (W&B, TensorBoard, MLflow, …) receives them. docs/in-training.md
has the examples.
"""
