"""Analyses of finished evaluation runs that go beyond one table (paloma.md §3 and §7).

Every module takes plain data (per-domain sums, per-document arrays) and returns plain data (dicts and lists
that serialise to JSON), so the CLI, the demo and the site all call the same functions. A *run* here is one
`paloma eval` output folder (`runs.Run`). Importing this package imports none of its modules.

- `runs`: read `paloma eval` output folders (results.json and per-document records).
- `compare`: per-domain differences between two runs with paired bootstrap intervals (`paloma compare`);
  `forest` draws them as a forest plot.
- `ranking`: each entry's rank interval and how often pairs swap places under resampling
  (`paloma rank-stability`, and the site's stability columns).
- `ladder` (a package): scaling-law fits of a ladder of models and the downstream metric they predict
  (`paloma ladder fit`); its `__init__` maps its modules.
- `reweight`: perplexity under another corpus's domain mix (`paloma reweight`).
- `tokens`: the share of loss carried by frequent token types, and types where one model beats another
  (`paloma tokens`).
- `merge`: parameter averages of same-architecture checkpoints (`paloma merge`, and recipes `paloma eval`
  scores in memory).
- `output`: CSV writing shared by the commands.

The bootstrap itself (resampling, studentized intervals, the minimum of effective documents) is
`paloma.intervals`, below both the evaluator and these analyses, so results and comparisons share one policy.
"""
