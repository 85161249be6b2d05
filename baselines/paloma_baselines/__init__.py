"""Training code that reproduces the Paloma reference baselines (docs/baselines.md), imported as
`paloma_baselines` (the recipes live beside it in `baselines/configs/`, and inside it in the wheel).

    config    the recipe as plain dataclasses, read from YAML; the architecture is `paloma.eval.olmo.OlmoConfig`
    tokens    `paloma baselines tokenize`: corpus → OLMo's token files, a datatrove pipeline
    data      OLMo's token files, instances and global order
    model     the decoder written out (OLMo's module names), its chunked loss and parameter arithmetic
    optim     LionW over OLMo's parameter groups
    schedule  the learning rate as a pure function of the step
    train     one training run, top to bottom; `train()` is the Python API (held-out numbers: `paloma.Evaluator`)
    export    a run's checkpoints exported through `paloma.eval.olmo` with their training facts
    params    parameter counts and budgets of the shipped configs

It uses only `paloma`'s public modules; `paloma` reaches it only from the commands that run training.
"""
