"""Analyses of finished evaluation runs that go beyond one table (paloma.md §3 and §7).

Every module takes plain data (per-domain sums, per-document arrays) and returns plain data (dicts and lists
that serialise to JSON), so the CLI, the demo and the site all call the same functions:

- `runs`: read `paloma eval` output folders (results.json and per-document records).
- `compare`: per-domain differences between two runs with paired bootstrap confidence intervals.
- `ladder`: fit L(N, D) = E + A/N^α + B/D^β to a ladder of models, per domain and per source;
  `ladder_chart` draws the fits as SVG and writes fits.json / fits.csv / ladder.svg.
- `reweight`: perplexity under another corpus's domain mix.
- `ranking`: how often the leaderboard order of two submissions flips under bootstrap resampling.
- `tokens`: the share of loss carried by frequent token types, and types where one model beats another.
- `bootstrap` (vectorised resampling of additive per-document sums) and `output` (CSV) are shared helpers.
"""
