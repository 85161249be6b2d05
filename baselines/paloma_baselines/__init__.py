"""Training code that reproduces the Paloma reference baselines (see docs/baselines.md).

`paloma_baselines.train.train(...)` runs a recipe from `baselines/configs/`; `paloma_baselines.params` prints the
parameter arithmetic; `paloma_baselines.export` writes standard `transformers` folders.
"""
