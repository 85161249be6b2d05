"""LionW, the optimizer of the Paloma baselines (sign of an interpolated momentum, decoupled weight decay).

The update (Chen et al. 2023, as OLMo's `LionW` implements it), for each parameter p with gradient g and
momentum m:
    p ← p · (1 − lr·wd)
    p ← p − lr · sign(β1·m + (1 − β1)·g)
    m ← β2·m + (1 − β2)·g
We use the `lion-pytorch` implementation of exactly this rule. Which parameters are decayed follows OLMo's
`get_param_groups` at commit 1f2f020 (`no_decay_norm_and_bias=True`): the weights of linear layers are
decayed; biases, norm weights and the embedding are not. tests/test_baselines_olmo.py compares the groups
and the updates with ai2-olmo's own.
"""

from __future__ import annotations

import torch
from torch import nn

from paloma.errors import PalomaError
from paloma_baselines.config import OptimizerConfig


def lion_class() -> type[torch.optim.Optimizer]:
    """lion-pytorch's Lion, or a clear error when the `train` extra is not installed."""
    try:
        from lion_pytorch import Lion
    except ImportError:
        raise PalomaError("training needs lion-pytorch: pip install 'paloma-eval[train]'") from None
    return Lion


def parameter_groups(model: nn.Module, no_decay_norm_and_bias: bool = True) -> list[dict]:
    """OLMo's parameter groups: [decayed, not decayed (weight_decay 0)], each sorted by parameter name.

    A parameter is classified by the module that owns it, as OLMo does: a bias is never decayed, the weight of
    an `nn.Linear` always is, any other weight (embeddings, norms) is not. The order within a group does not
    change a LionW update (each parameter is updated on its own) but matches OLMo's for state-dict audits.
    """
    named = dict(model.named_parameters())
    if not no_decay_norm_and_bias:
        return [{"params": list(named.values()), "param_names": list(named)}]
    decay, no_decay = set(), set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            full = f"{module_name}.{name}" if module_name else name
            is_linear_weight = name.endswith("weight") and isinstance(module, nn.Linear)
            (decay if is_linear_weight and not name.endswith("bias") else no_decay).add(full)
    groups = [
        {"params": [named[n] for n in sorted(decay)], "param_names": sorted(decay)},
        {"params": [named[n] for n in sorted(no_decay)], "param_names": sorted(no_decay), "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    """LionW over OLMo's parameter groups of `model`."""
    Lion = lion_class()
    groups = parameter_groups(model, config.no_decay_norm_and_bias)
    return Lion(groups, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
