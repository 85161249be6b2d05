"""Subcommands of the `paloma` CLI, one module each (see paloma.cli)."""
