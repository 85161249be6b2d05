"""Training code that reproduces the Paloma reference baselines (see baselines/README.md)."""
