"""The static leaderboard site: validated submissions in, pages out (`paloma site build`)."""

from paloma.site.builder import BuildSummary, build
from paloma.site.extras import register_extension
from paloma.site.pareto import pareto_frontier

__all__ = ["BuildSummary", "build", "pareto_frontier", "register_extension"]
