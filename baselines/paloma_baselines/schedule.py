"""The learning rate at each step: linear warmup, then a cosine to a floor, as OLMo's `CosWithWarmup`.

The cosine is laid out over `total_steps` (70k for the baselines) even though training stops earlier
(35k), so a stopped run sits at a known fraction of its schedule; Paloma compares checkpoints only at the
same fraction. A pure function of the step: there is no scheduler state to save or restore.
"""

from __future__ import annotations

import math

from paloma_baselines.config import OptimizerConfig, ScheduleConfig


def lr_at(step: int, optimizer: OptimizerConfig, schedule: ScheduleConfig) -> float:
    """Learning rate of optimizer update number `step` (1-based, as OLMo counts: the first update is step 1).

    warmup (step < W):   lr·(s + (1 − s)·step/W), s = warmup_start_factor
    cosine (W ≤ step < T): lr_min + (lr − lr_min)·(1 + cos(π·(step − W)/(T − W)))/2, lr_min = lr·final_lr_factor
    after T:             lr_min
    """
    peak, warmup, total = optimizer.lr, schedule.warmup_steps, schedule.total_steps
    floor = peak * schedule.final_lr_factor
    if step < warmup:
        start = peak * schedule.warmup_start_factor
        return start + (peak - start) * step / warmup
    if step >= total:
        return floor
    progress = (step - warmup) / (total - warmup)
    return floor + (peak - floor) * (1 + math.cos(math.pi * progress)) / 2


def schedule_fraction(step: int, schedule: ScheduleConfig) -> float:
    """How far through its laid-out schedule a run is after `step` updates (0.5 for the baselines)."""
    return step / schedule.total_steps
