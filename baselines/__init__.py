"""Training code that reproduces the Paloma reference baselines (see docs/baselines.md).

`baselines.train.train(...)` runs a recipe from `baselines/configs/`; `baselines.params` prints the
parameter arithmetic; `baselines.export` writes standard `transformers` folders.
"""
