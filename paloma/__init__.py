"""paloma: exact Paloma-style evaluation of language-model fit.

The public Python API mirrors the CLI: each `paloma` subcommand is a thin wrapper around one function here.
"""

__version__ = "0.1.0"
