"""LionW, the optimizer of the Paloma baselines (sign of an interpolated momentum, decoupled weight decay).

The update (Chen et al. 2023, as OLMo's `LionW` implements it), for each parameter p with gradient g and
momentum m:
    p ← p · (1 − lr·wd)
    p ← p − lr · sign(β1·m + (1 − β1)·g)
    m ← β2·m + (1 − β2)·g
We use the `lion-pytorch` implementation of exactly this rule; tests/test_baselines_model.py checks it.
"""

from __future__ import annotations

import torch

from baselines.config import OptimizerConfig
from paloma.errors import PalomaError


def lion_class() -> type[torch.optim.Optimizer]:
    """lion-pytorch's Lion, or a clear error when the `train` extra is not installed."""
    try:
        from lion_pytorch import Lion
    except ImportError:
        raise PalomaError("training needs lion-pytorch: pip install 'paloma-eval[train]'") from None
    return Lion


def build_optimizer(model: torch.nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    """LionW over the model's parameters; without decay_all, biases and embeddings are not decayed."""
    Lion = lion_class()
    if config.decay_all:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    else:
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            (no_decay if name.endswith("bias") or "wte" in name else decay).append(param)
        groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    return Lion(groups, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
