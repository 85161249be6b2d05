"""The static leaderboard site: validated submissions in, pages out (`paloma site build`).

builder    the build: validated submissions → every page, written whole
entries    what a page shows of a submission, recomputed from its sums with `paloma.metrics`
pareto     Pareto frontiers of fit against cost, drawn as inline SVG
stability  how often neighbouring ranks swap under resampling
extras     a submission's `extra` data, drawn or shown as escaped JSON
render     the Jinja2 environment and the formatting helpers every page shares
"""

from paloma.site.builder import BuildSummary, build
from paloma.site.extras import register_extension
from paloma.site.pareto import pareto_frontier

__all__ = ["BuildSummary", "build", "pareto_frontier", "register_extension"]
